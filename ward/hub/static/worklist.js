/* virtualward hub — the worklist and the handover page.
 *
 * Worklist: claim / complete / hand over buttons POST (forms.js) to /api/worklist/{ref}/…; any SSE
 * event on /api/events (a task changed, a patient's readings, a resync; the page's one
 * EventSource, hub.js's window.vwEvents) refetches the rows fragment (/worklist/rows),
 * coalesced, so every open worklist updates without a reload.
 * Handover: print and "mark handover given". No inline script (the CSP forbids it).
 */
(function () {
  "use strict";
  // Events within this window are merged into one fetch (a gateway batch names many patients).
  var COALESCE_MS = 150;
  var timer = null;
  var tbody = document.getElementById("worklist-rows");

  function post(url, body) { return window.vwForms.sendOk(url, body); }  // forms.js

  // One refetch at a time (refresh.js): an older answer never replaces a newer one.
  var fetchRows = window.vwRefresh.oneAtATime(function () {
    // The page's own sort and filter (?sort=…&tier=…&news2_from=…) apply to the refetch too.
    return fetch("/worklist/rows" + window.location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { tbody.innerHTML = html; tick(); })
      .catch(function (e) { console.warn("worklist refresh failed", e); });
  });
  function refresh() {
    timer = null;
    return fetchRows();
  }
  function schedule() { if (!timer) timer = setTimeout(refresh, COALESCE_MS); }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".clock[data-deadline]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.deadline) - now) / 60000);
      el.textContent = left <= 0 ? "2 h passed" : left + " min left";
    });
  }

  if (tbody) {
    // The page's one stream (hub.js's window.vwEvents); a reconnect refetches too.
    window.vwEvents.subscribe(schedule, schedule);
    setInterval(tick, 15000);
    tick();
    tbody.addEventListener("click", function (ev) {
      var btn = ev.target.closest("button");
      if (!btn) return;
      var row = btn.closest("tr"), done;
      if (btn.dataset.claim) done = post("/api/worklist/" + btn.dataset.claim + "/claim");
      else if (btn.dataset.complete) {
        var outcome = row.querySelector(".outcome").value.trim();
        if (!outcome) { row.querySelector(".outcome").focus(); return; }
        done = post("/api/worklist/" + btn.dataset.complete + "/complete", { outcome: outcome });
      } else if (btn.dataset.handover) {
        var to = row.querySelector(".handover-to").value.trim();
        done = post("/api/worklist/" + btn.dataset.handover + "/hand-over", { to: to || null });
      } else return;
      btn.disabled = true;
      done.then(refresh).catch(function (e) { btn.disabled = false; alert(e.message); });
    });
  }

  var printBtn = document.getElementById("print-handover");
  if (printBtn) printBtn.addEventListener("click", function () { window.print(); });
  var giveBtn = document.getElementById("give-handover");
  if (giveBtn) giveBtn.addEventListener("click", function () {
    post("/api/handover").then(function () { window.location.reload(); })
      .catch(function (e) { alert(e.message); });
  });
})();
