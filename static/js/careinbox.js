/* CareInbox: live countdowns, the inbox's live rows, keyboard shortcuts, and keeping the
   agent's focus and typing across every live update. No framework; htmx does the requests. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  /* --- Countdowns: every <time data-countdown> says how long is left, every second. ------- */
  function span(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + (m < 10 ? "0" : "") + m + " min";
    if (m) return m + " min " + (s % 60) + " s";
    return (s % 60) + " s";
  }
  function tick() {
    var now = Date.now();
    $$("time[data-countdown]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("datetime")) - now;
      if (isNaN(left)) return;
      var kind = el.getAttribute("data-countdown");  // "due", "closes", or plain
      var text = left >= 0 ? "in " + span(left) : span(left) + " ago";
      if (kind === "due") text = left >= 0 ? "due in " + span(left) : "breached " + span(left) + " ago";
      if (kind === "closes") text = left >= 0 ? "closes in " + span(left) : "closed " + span(left) + " ago";
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 30 * 60 * 1000);
    });
  }
  setInterval(tick, 1000);

  /* --- Keep typing, selections and ticks across swaps. -------------------------------------
     htmx puts the focus back on an element with the same id; we also carry over what the
     agent typed or ticked in a replaced field with the same id (a text box only when it is
     for the same draft: a public reply never lands in a DM's box). */
  var kept = null, fromLive = false;
  function remember(event) {
    var config = event && event.detail && event.detail.requestConfig;
    fromLive = !!(config && config.elt && config.elt.id === "ticket-live");
    kept = {};
    $$("input[id], textarea[id], select[id]").forEach(function (el) {
      var dirty = el.type === "checkbox" || el.type === "radio" ? el.checked !== el.defaultChecked
        : el.tagName === "SELECT" ? false : el.value !== el.defaultValue;
      if (dirty && el.type !== "hidden") {
        kept[el.id] = { value: el.value, checked: el.checked, key: el.getAttribute("data-draft-key"), el: el };
      }
    });
  }
  function restore() {
    if (!kept) return;
    Object.keys(kept).forEach(function (id) {
      var was = kept[id], el = document.getElementById(id);
      if (el === was.el) return;
      if (!el || el.getAttribute("data-draft-key") !== was.key) {
        // The step changed under the agent (a colleague took it): their words for the old
        // step are shown aside to copy from, never put in another step's box.
        if (fromLive && was.key && was.value.trim()) keepAside(was.value);
        return;
      }
      if (el.type === "checkbox" || el.type === "radio") el.checked = was.checked;
      else if (el.value === el.defaultValue && !el.defaultValue) el.value = was.value;
    });
    kept = null;
  }
  function keepAside(text) {
    var composer = $("#composer") || $("#step-heading");
    if (!composer || !composer.parentNode) return;
    var box = document.createElement("div");
    box.className = "unsent";
    var note = document.createElement("p");
    note.className = "hint";
    note.textContent = "Not sent: the step changed while you were writing. Your words:";
    var quote = document.createElement("blockquote");
    quote.textContent = text;
    box.appendChild(note); box.appendChild(quote);
    composer.parentNode.insertBefore(box, composer);
  }
  /* The section the focus was in before a swap (its id): if the focused control went with the
     swap and has no twin by id (a "Kept" button whose promise is kept now), the focus goes to
     that section's heading instead of falling back to the page body. */
  var focusHome = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var el = document.activeElement;
    var home = el && el !== document.body && el.closest ? el.closest("section[id]") : null;
    focusHome = home ? home.id : null;
    remember(event);
  });
  document.addEventListener("htmx:afterSwap", function () { restore(); tick(); markNew(); emptyState(); title(); });
  function lostFocus() {
    var el = document.activeElement;
    return !el || el === document.body || !document.body.contains(el);
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    var detail = event.detail || {};
    var xhr = detail.xhr;
    var from = detail.requestConfig && detail.requestConfig.elt;
    var inSide = from && from.closest && from.closest("#side");
    /* A step was sent: the box it was typed in is gone; the focus goes to the next step's
       heading, so a/o/r/c and screen readers start from there (not from a box for another
       draft). An action in the side panel (a note, a tag) keeps the focus in the panel. */
    if (xhr && xhr.getResponseHeader("HX-Trigger") === "ticketChanged" && !inSide) {
      var heading = $("#step-heading");
      if (heading) heading.focus();
    } else if (focusHome && lostFocus()) {
      var section = document.getElementById(focusHome);
      var target = section && ($("h2", section) || section);
      if (target) {
        if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
        target.focus({ preventScroll: true });
      }
    }
    focusHome = null;
  });

  /* --- The inbox: order, new rows, empty state, the tab title. ----------------------------- */
  var fresh = {};
  function markNew() {
    Object.keys(fresh).forEach(function (pk) {
      var row = document.getElementById("row-" + pk);
      if (row) row.classList.add("is-new");
    });
  }
  function emptyState() {
    var rows = $("#rows"), empty = $("#inbox-empty");
    if (rows && empty) empty.hidden = rows.children.length > 0;
  }
  function title() {
    var count = $("#view-count");
    if (count) document.title = document.title.replace(/^(\([^)]*\) )?/, "(" + count.textContent.trim() + ") ");
  }
  document.addEventListener("inbox:order", function (event) {
    var tbody = $("#rows");
    if (!tbody) return;
    var focused = document.activeElement;
    var byId = {};
    $$("tr.row", tbody).forEach(function (row) { byId[row.getAttribute("data-ticket")] = row; });
    var added = event.detail.added || [];
    added.forEach(function (pk) { fresh[pk] = true; });
    if (added.length) say(added.length === 1 ? "1 new ticket" : added.length + " new tickets");
    (event.detail.order || []).forEach(function (pk) {
      var row = byId[String(pk)];
      if (row) { tbody.appendChild(row); delete byId[String(pk)]; }
    });
    Object.keys(byId).forEach(function (pk) {
      var row = byId[pk];
      if (row.contains(focused)) {  // the focused row left the view: focus its neighbour
        var next = row.nextElementSibling || row.previousElementSibling;
        focused = next ? $("a.open", next) : $("#inbox-search");
      }
      row.parentNode.removeChild(row);
    });
    if (focused && focused !== document.activeElement && document.body.contains(focused)) {
      focused.focus({ preventScroll: true });
    }
    markNew(); emptyState(); title();
  });
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("tr.row");
    if (row) {
      row.classList.remove("is-new");
      delete fresh[row.getAttribute("data-ticket")];
      try { sessionStorage.setItem("careinbox:row", row.id); } catch (e) { /* private mode */ }
    }
  });

  /* A poll answered after its poller went away (the workspace was swapped meanwhile, by the
     agent's own step or an earlier poll) is stale: the new poller asks again within 3 s. Its
     answer would otherwise be retargeted relative to a detached element, which htmx cannot do.
     The guard sits on the poller itself: an event fired on a detached element never bubbles up
     to the document, so a listener there would not see it. */
  function dropIfDetached(event) {
    if (!document.body.contains(event.currentTarget)) event.preventDefault();
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === "ticket-live") elt.addEventListener("htmx:beforeOnLoad", dropIfDetached);
  });

  /* --- The ticket page tells the server whether the agent is writing a reply. -------------- */
  var typedAt = 0;
  document.addEventListener("input", function (event) {
    if (event.target.id === "step-text") typedAt = Date.now();
  });
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "ticket-live") {
      var box = $("#step-text");
      var writing = box && box.value.trim() && Date.now() - typedAt < 30000;
      event.detail.parameters.replying = writing ? "1" : "0";
    }
  });

  /* --- Keyboard. ---------------------------------------------------------------------------- */
  var STEP_KEYS = { a: "acknowledge", o: "take_offline", r: "resolve", c: "close_out" };
  var STEP_NAMES = { acknowledge: "Acknowledge", take_offline: "Take offline", resolve: "Resolve", close_out: "Close out" };
  function say(text) {
    var live = $("#kbd-status");
    if (!live) {
      live = document.createElement("p");
      live.id = "kbd-status"; live.className = "kbd-status"; live.setAttribute("role", "status");
      document.body.appendChild(live);
    }
    live.textContent = text;
    setTimeout(function () { if (live.textContent === text) live.textContent = ""; }, 4000);
  }
  function rowLinks() { return $$("#rows tr.row a.open"); }
  function moveRow(step) {
    var links = rowLinks();
    if (!links.length) return;
    var current = document.activeElement && document.activeElement.closest ? document.activeElement.closest("tr.row") : null;
    var index = current ? links.indexOf($("a.open", current)) : -1;
    var next = index < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, index + step));
    links[next].focus();
    links[next].closest("tr").scrollIntoView({ block: "nearest" });
  }
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable ||
      (el.tagName === "INPUT" && !/^(checkbox|radio|button|submit)$/.test(el.type)));
  }
  function openHelp() { var d = $("#shortcuts"); if (d && !d.open) d.showModal(); }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-help]")) openHelp();
  });
  document.addEventListener("keydown", function (event) {
    var el = document.activeElement;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && el && el.id === "step-text") {
      event.preventDefault();
      var form = el.form, button = $("#step-submit");
      if (button && button.disabled) { say(button.textContent.trim() || "This reply cannot go out now."); return; }
      if (form) form.requestSubmit(button || undefined);
      return;
    }
    if (event.key === "Escape" && typing(el)) { el.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(el)) return;
    if ($("#shortcuts") && $("#shortcuts").open) return;
    var key = event.key;
    if (key === "?") { event.preventDefault(); openHelp(); return; }
    if (key === "/") { var search = $("#inbox-search"); if (search) { event.preventDefault(); search.focus(); search.select(); } else { event.preventDefault(); window.location.href = "/?focus=search"; } return; }
    if (key === "j" || key === "k") { if ($("#rows")) { event.preventDefault(); moveRow(key === "j" ? 1 : -1); } return; }
    if (key === "x" && el && el.closest && el.closest("tr.row")) {
      var box = $("input[type=checkbox]", el.closest("tr.row"));
      if (box) { event.preventDefault(); box.checked = !box.checked; }
      return;
    }
    if (key === "m") {
      var own = $("#assign-me-form");
      if (own) {
        // The page reloads with the flash: the focus comes back to the button, not the body.
        try { sessionStorage.setItem("careinbox:refocus", "assign-me"); } catch (e) { /* private mode */ }
        event.preventDefault(); own.requestSubmit(); return;
      }
      var row = el && el.closest ? el.closest("tr.row") : null;
      var bulk = $("#bulk-form");
      if (row && bulk) {
        event.preventDefault();
        $$("#rows input[type=checkbox]").forEach(function (b) { b.checked = false; });
        $("input[type=checkbox]", row).checked = true;
        $("#bulk-action").value = "assign_me";
        bulk.requestSubmit();
      }
      return;
    }
    if (key === "u" && $("#back-to-inbox")) { event.preventDefault(); window.location.href = $("#back-to-inbox").href; return; }
    if (STEP_KEYS[key] && $("#workspace")) {
      event.preventDefault();
      var composer = $("#composer"), text = $("#step-text");
      if (!composer || !text) { say("Nothing left to send: this ticket is closed."); return; }
      if (composer.getAttribute("data-step") !== STEP_KEYS[key]) {
        say("The next step is " + STEP_NAMES[composer.getAttribute("data-step")] + ", not " + STEP_NAMES[STEP_KEYS[key]] + ".");
      }
      text.focus();
    }
  });

  /* --- On load: countdowns, the title, and the focus where the agent left it. -------------- */
  function start() {
    say("");  // the live region exists before anything is said in it
    tick(); title();
    if (/[?&]focus=search\b/.test(location.search) && $("#inbox-search")) { $("#inbox-search").focus(); return; }
    var refocus = null;
    try { refocus = sessionStorage.getItem("careinbox:refocus"); sessionStorage.removeItem("careinbox:refocus"); } catch (e) { /* private mode */ }
    if (refocus && document.getElementById(refocus)) { document.getElementById(refocus).focus(); return; }
    if ($("#rows")) {
      var last = null;
      try { last = sessionStorage.getItem("careinbox:row"); } catch (e) { /* private mode */ }
      var link = last && $("#" + last + " a.open");
      if (link && !document.querySelector(".flash .error")) link.focus({ preventScroll: false });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
