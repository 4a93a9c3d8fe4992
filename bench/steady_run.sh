#!/usr/bin/env bash
# Does `make run` stay up? Run it in a checkout for a while, post mentions throughout with the
# README's sandbox_post command (from a clean "second terminal" environment), and fail if
#   - any process exits (honcho's "stopped", a respawned helper's "exited with", make itself),
#   - a posted mention is not stored as a message within --store-deadline seconds,
#   - the web stops answering (/monitoring/health/ or /login/ not 200 for --max-misses polls
#     in a row).
# At the end (or on Ctrl-C, or on failure) it stops everything it started as Ctrl-C would, then
# kills, bounded, whatever is left; every process it started carries STEADY_RUN_TAG in its
# environment, so none can hide. Everything listens on 127.0.0.1 only.
#
#   bench/steady_run.sh                      # 60 minutes in the checkout this script is in
#   bench/steady_run.sh --minutes 5 --checkout /tmp/steady --port 8100 --sandbox-port 8865
#
# DATABASE_URL / REDIS_URL, when set, pass through to make run (and to the storage check).
# Results: <checkout>/var/steady_run/<start time>/ (make.log, posts.tsv, polls.tsv, summary.md).
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
minutes=60 checkout="$repo" port=8100 sandbox_port=8865
post_every=10 store_deadline=60 poll_every=5 max_misses=3 start_timeout=900

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --checkout) checkout="$(cd "$2" && pwd)"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --sandbox-port) sandbox_port="$2"; shift 2 ;;
    --post-every) post_every="$2"; shift 2 ;;
    --store-deadline) store_deadline="$2"; shift 2 ;;
    --poll-every) poll_every="$2"; shift 2 ;;
    --max-misses) max_misses="$2"; shift 2 ;;
    --start-timeout) start_timeout="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
[ -f "$checkout/Makefile" ] && [ -f "$checkout/Procfile.dev" ] || { echo "not a CareInbox checkout: $checkout" >&2; exit 2; }

now_ms() { date +%s%3N; }
stamp() { date '+%H:%M:%S'; }
say() { echo "$(stamp) steady_run: $*"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$sandbox_port"; do
  if port_busy "$p"; then echo "127.0.0.1:$p is already in use; choose --port / --sandbox-port" >&2; exit 2; fi
done

started_at="$(date -u '+%Y-%m-%dT%H-%M-%SZ')"
out="$checkout/var/steady_run/$started_at"
mkdir -p "$out"
log="$out/make.log" posts="$out/posts.tsv" polls="$out/polls.tsv" summary="$out/summary.md"
: >"$log"
printf 'n\tpost_id\tposted_ms\tstored_ms\n' >"$posts"
printf 'at_ms\tpath\tcode\tseconds\tstatus\n' >"$polls"
tag="steady-$$-$(date +%s)"
failure=""
fail() { [ -n "$failure" ] || failure="$*"; say "FAIL: $*"; }

# --- everything this run started, found by its tag --------------------------------------------
tagged_pids() {  # one grep over every process's environment (NUL-separated entries)
  grep -lzx "STEADY_RUN_TAG=$tag" /proc/[0-9]*/environ 2>/dev/null | sed 's#^/proc/\([0-9]*\)/environ$#\1#'
}
rss_kib() {  # the tagged processes' resident memory, in KiB
  local total=0 pid kib
  for pid in $(tagged_pids); do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}
leader=""
stopped_cleanly=""
stop_everything() {  # Ctrl-C as a terminal sends it, then bounded force
  [ -n "$leader" ] || return 0
  local waited=0 left
  kill -INT -- "-$leader" 2>/dev/null
  while [ $waited -lt 60 ]; do
    left="$(tagged_pids)"
    [ -z "$left" ] && break
    sleep 0.5; waited=$((waited + 1))
  done
  if [ -z "$(tagged_pids)" ]; then
    stopped_cleanly="yes, $((waited / 2)) s after Ctrl-C"
  else
    stopped_cleanly="no: still running 30 s after Ctrl-C: $(tagged_pids | tr '\n' ' ')"
    ps -o pid,pgid,cmd -p "$(tagged_pids | paste -sd, -)" >>"$out/leftovers.txt" 2>/dev/null
    for pid in $(tagged_pids); do kill -TERM "$pid" 2>/dev/null; done
    sleep 5
    for pid in $(tagged_pids); do kill -KILL "$pid" 2>/dev/null; done
    sleep 1
    fail "$stopped_cleanly"
  fi
  leader=""
}
trap 'fail "interrupted"; stop_everything; exit 130' INT TERM
trap 'stop_everything' EXIT

# --- the stack -------------------------------------------------------------------------------
commit="$(git -C "$checkout" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "make run in $checkout ($commit) on 127.0.0.1:$port (sandbox :$sandbox_port) for $minutes min; results in $out"
STEADY_RUN_TAG="$tag" setsid make -C "$checkout" run PORT="$port" SANDBOX_PORT="$sandbox_port" >"$log" 2>&1 &
leader=$!
t0=$(now_ms)
until grep -q "CareInbox is running" "$log"; do
  if ! kill -0 "$leader" 2>/dev/null; then fail "make run exited before the banner"; tail -40 "$log"; exit 1; fi
  if [ $(( ($(now_ms) - t0) / 1000 )) -ge "$start_timeout" ]; then fail "no banner within $start_timeout s"; tail -40 "$log"; exit 1; fi
  sleep 0.5
done
banner_s=$(( ($(now_ms) - t0) / 1000 ))
say "banner after $banner_s s"
rss_start=$(rss_kib) rss_max=$rss_start

# --- helpers for the loop --------------------------------------------------------------------
second_terminal() {  # a fresh shell in the checkout: no DEBUG, no X_SANDBOX_URL, no ports
  (cd "$checkout" && env -i HOME="$HOME" PATH="/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 "$@")
}
post_one() {  # the README's command, with a customer and text of its own
  local n="$1" id
  local customer=$(( n % 25 ))
  id=$(second_terminal .venv/bin/python manage.py sandbox_post --to AcmeSupport \
        --author-id "$((4200 + customer))" --author-username "steady_$customer" --followers 1200 \
        --text "Steady run post $n: my parcel is a week late ($(stamp))" 2>>"$out/sandbox_post.err")
  if [[ "$id" =~ ^[0-9]+$ ]]; then echo "$id"; else return 1; fi
}
STORED_QUERY='
import os
from django.apps import apps
Message = apps.get_model("tickets", "Message")
ids = os.environ["PENDING_IDS"].split()
for external_id, received in Message.objects.filter(external_id__in=ids).values_list("external_id", "received_at"):
    print(external_id, int(received.timestamp() * 1000))
'
stored_ids() {  # "post_id stored_ms" for those of the given ids stored as messages
  (cd "$checkout" && PENDING_IDS="$*" DEBUG=1 .venv/bin/python manage.py shell --verbosity 0 -c "$STORED_QUERY" 2>>"$out/check.err")
}
poll() {  # one GET; appends to polls.tsv; returns 0 when 200
  local path="$1" result code seconds body status=""
  result=$(curl -s --noproxy '*' --max-time 5 -o "$out/last_body" -w '%{http_code} %{time_total}' "http://127.0.0.1:$port$path")
  code="${result%% *}" seconds="${result##* }"
  if [ "$path" = "/monitoring/health/" ] && [ "$code" = 200 ]; then
    status=$(sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p' "$out/last_body")
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$path" "$code" "$seconds" "$status" >>"$polls"
  [ "$code" = 200 ]
}
exits_in_log() {
  grep -E "stopped \(rc=|respawn\[[a-z_]+\]: (exited with|cannot start)" "$log" || true
}

# --- the run ---------------------------------------------------------------------------------
declare -A pending=()   # post id -> posted at (ms)
declare -A number=()    # post id -> n
n=0 health_misses=0 login_misses=0
end=$(( $(now_ms) + minutes * 60000 ))
next_post=$(now_ms) next_poll=$(now_ms) next_check=$(( $(now_ms) + 5000 )) next_rss=$(( $(now_ms) + 60000 ))
while [ -z "$failure" ] && [ "$(now_ms)" -lt "$end" ]; do
  t=$(now_ms)
  if ! kill -0 "$leader" 2>/dev/null; then fail "make run exited"; break; fi
  exits="$(exits_in_log)"
  if [ -n "$exits" ]; then fail "a process exited: $(echo "$exits" | head -3 | tr '\n' ' ')"; break; fi
  if [ "$t" -ge "$next_poll" ]; then
    if poll /monitoring/health/; then health_misses=0; else health_misses=$((health_misses + 1)); fi
    if poll /login/; then login_misses=0; else login_misses=$((login_misses + 1)); fi
    [ $health_misses -ge "$max_misses" ] && fail "/monitoring/health/ did not answer 200 $health_misses times in a row"
    [ $login_misses -ge "$max_misses" ] && fail "/login/ did not answer 200 $login_misses times in a row"
    next_poll=$(( t + poll_every * 1000 ))
  fi
  if [ "$t" -ge "$next_post" ]; then
    n=$((n + 1))
    posted=$(now_ms)
    if id=$(post_one "$n"); then
      pending[$id]=$posted; number[$id]=$n
    else
      fail "sandbox_post #$n failed: $(tail -2 "$out/sandbox_post.err" | tr '\n' ' ')"
    fi
    next_post=$(( posted + post_every * 1000 ))
  fi
  if [ "$t" -ge "$next_check" ] && [ ${#pending[@]} -gt 0 ]; then
    while read -r id stored; do
      [ -n "${pending[$id]:-}" ] || continue
      printf '%s\t%s\t%s\t%s\n' "${number[$id]}" "$id" "${pending[$id]}" "$stored" >>"$posts"
      unset "pending[$id]"
    done < <(stored_ids "${!pending[@]}")
    for id in "${!pending[@]}"; do
      if [ $(( $(now_ms) - ${pending[$id]} )) -gt $(( store_deadline * 1000 )) ]; then
        fail "post #${number[$id]} ($id) not stored as a message within $store_deadline s"
      fi
    done
    next_check=$(( $(now_ms) + 10000 ))
  fi
  if [ "$t" -ge "$next_rss" ]; then
    rss=$(rss_kib); [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    printf '%s\t%s\n' "$(now_ms)" "$rss" >>"$out/rss.tsv"
    next_rss=$(( t + 60000 ))
  fi
  sleep 0.5
done

# The last posts get their deadline to be stored.
drain_until=$(( $(now_ms) + store_deadline * 1000 ))
while [ -z "$failure" ] && [ ${#pending[@]} -gt 0 ] && [ "$(now_ms)" -lt "$drain_until" ]; do
  sleep 2
  while read -r id stored; do
    [ -n "${pending[$id]:-}" ] || continue
    printf '%s\t%s\t%s\t%s\n' "${number[$id]}" "$id" "${pending[$id]}" "$stored" >>"$posts"
    unset "pending[$id]"
  done < <(stored_ids "${!pending[@]}")
done
[ -z "$failure" ] && [ ${#pending[@]} -gt 0 ] && fail "${#pending[@]} posts not stored within $store_deadline s of the end"
exits="$(exits_in_log)"
[ -z "$failure" ] && [ -n "$exits" ] && fail "a process exited: $(echo "$exits" | head -3 | tr '\n' ' ')"
rss_end=$(rss_kib)
ran_s=$(( ($(now_ms) - t0) / 1000 ))
exit_count=$(exits_in_log | grep -c . || true)  # before the stop, whose exits are asked for
errors=$(grep -cE "ERROR|CRITICAL|Traceback" "$log" || true)
stop_everything
trap - EXIT

# --- the report ------------------------------------------------------------------------------
stats() {  # median p95 max of numbers on stdin
  sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "-"; exit}
    m=v[int((NR+1)/2)]; p=v[int(NR*0.95+0.999)]; if (p=="") p=v[NR]; printf "median %s, p95 %s, max %s", m, p, v[NR]}'
}
stored=$(($(wc -l <"$posts") - 1))
latency=$(awk -F'\t' 'NR>1 {printf "%.2f\n", ($4-$3)/1000}' "$posts" | stats)
health_total=$(awk -F'\t' '$2=="/monitoring/health/"' "$polls" | wc -l)
health_ok=$(awk -F'\t' '$2=="/monitoring/health/" && $3==200' "$polls" | wc -l)
health_failing=$(awk -F'\t' '$2=="/monitoring/health/" && $5=="failing"' "$polls" | wc -l)
health_time=$(awk -F'\t' '$2=="/monitoring/health/" && $3==200 {printf "%.3f\n", $4}' "$polls" | stats)
login_total=$(awk -F'\t' '$2=="/login/"' "$polls" | wc -l)
login_ok=$(awk -F'\t' '$2=="/login/" && $3==200' "$polls" | wc -l)
login_time=$(awk -F'\t' '$2=="/login/" && $3==200 {printf "%.3f\n", $4}' "$polls" | stats)
demo_posts=$(grep -c "demo_mentions.* -> " "$log" || true)
polls_done=$(grep -cE "poll_account.*succeeded" "$log" || true)
restarts=$(grep -cE "respawn\[[a-z_]+\]: exited with" "$log" || true)
shutdown=$(grep -E "sending SIGKILL" "$log" | sed 's/.*sending SIGKILL to \([a-z_.0-9]*\).*/\1/' | paste -sd, -)
{
  echo "## steady run, $started_at"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| command | \`bench/steady_run.sh --minutes $minutes --checkout $checkout --port $port --sandbox-port $sandbox_port\` |"
  echo "| checkout | $checkout at $commit |"
  echo "| database / broker | ${DATABASE_URL:+PostgreSQL}${DATABASE_URL:-SQLite} / ${REDIS_URL:+Redis}${REDIS_URL:-filesystem (careinbox.broker)} |"
  echo "| ran | $ran_s s (banner after $banner_s s) |"
  echo "| mentions posted with sandbox_post | $n (one every $post_every s), $stored stored as messages |"
  echo "| post → stored as a message (s) | $latency |"
  echo "| demo generator mentions | $demo_posts |"
  echo "| successful polls in the worker log | $polls_done |"
  echo "| /monitoring/health/ | $health_ok / $health_total answered 200 ($health_failing said \"failing\"); $health_time s |"
  echo "| /login/ | $login_ok / $login_total answered 200; $login_time s |"
  echo "| process exits / helper restarts before the stop | $exit_count / $restarts |"
  echo "| ERROR, CRITICAL or Traceback lines in the log before the stop | $errors |"
  echo "| RSS of all processes (MiB) | $((rss_start / 1024)) at start, $((rss_max / 1024)) max, $((rss_end / 1024)) at the end |"
  echo "| stopped on Ctrl-C | $stopped_cleanly${shutdown:+ (honcho had to SIGKILL $shutdown after its 5 s)} |"
  echo "| result | $( [ -z "$failure" ] && echo "**pass**" || echo "**FAIL**: $failure") |"
} >"$summary"
cat "$summary"
[ -z "$failure" ]
