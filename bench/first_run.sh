#!/usr/bin/env bash
# How long a new user waits: clone this repository into a temporary folder, run `make run` there
# (fresh .venv, install, migrate, seed, start), and time it until the banner with the URL and the
# logins appears and the first mention is stored. Then press Ctrl-C (SIGINT) as a user would and
# check that every process it started has stopped.
#
#   bash bench/first_run.sh               # pip may use its cache
#   PIP_NO_CACHE_DIR=1 bash bench/first_run.sh   # every package downloaded, as on a new machine
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
port="${PORT:-8710}"
sandbox_port="${SANDBOX_PORT:-8775}"
trap 'rm -rf "$work"' EXIT

git clone -q "$repo" "$work/careinbox"
cd "$work/careinbox"
log="$work/run.log"
start=$(date +%s%N)
setsid make run PORT="$port" SANDBOX_PORT="$sandbox_port" >"$log" 2>&1 &
leader=$!

elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf "%d.%01d" $((ms / 1000)) $(((ms % 1000) / 100)); }
banner="" stored=""
for _ in $(seq 1 1200); do
  if [ -z "$banner" ] && grep -q "CareInbox is running" "$log"; then banner=$(elapsed); fi
  if [ -z "$stored" ] && grep -qE "poll_account.*succeeded.*ok: [1-9][0-9]* new" "$log"; then stored=$(elapsed); fi
  if [ -n "$banner" ] && [ -n "$stored" ]; then break; fi
  if ! kill -0 "$leader" 2>/dev/null; then echo "make run exited early:"; tail -40 "$log"; exit 1; fi
  sleep 0.5
done
[ -n "$banner" ] || { echo "no banner within 10 minutes"; tail -40 "$log"; exit 1; }
printf 'banner with URL and logins after   %6s s\n' "$banner"
printf 'first mention stored as a ticket   %6s s\n' "${stored:-never}"
printf 'login page answers                 %s\n' \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/login/")"

kill -INT -- "-$leader"   # Ctrl-C, to the whole process group as a terminal would
for _ in $(seq 1 40); do
  kill -0 -- "-$leader" 2>/dev/null || break
  sleep 0.5
done
if kill -0 -- "-$leader" 2>/dev/null; then
  echo "FAIL: processes still running 20 s after Ctrl-C:"; ps -o pid,cmd -g "$leader"; exit 1
fi
echo "Ctrl-C stopped every process"
