/* virtualward hub — the ward manager's pages: the clock since referral and the kit scanner.
 *
 * Clock: every element with data-since (an ISO instant) shows the time elapsed, ticking once
 * a second from the browser's clock; it never touches the network.
 * Kit scanner (admission page): a scanner types a device id and Enter into #kit-scan; the
 * device's status is asked of /api/admissions/{id}/kit and shown; a device that may join the
 * kit is added to the form's list (#kit-ids), one that may not is refused with the reason.
 * The form works without this script: the ids can be typed into the list directly.
 * Triage queue (#triage): live. An `admission` or `referral` event (or a resync) on the
 * hub's own stream, /api/events (the page's one EventSource, hub.js's window.vwEvents), refetches the queue, decisions and bed state from
 * #triage's data-src and swaps them in, coalesced; a decline reason being typed (and the
 * focus) survives the swap. A 2-hour referral counts down to its deadline (.clock-2h).
 */
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function elapsed(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var text = pad(h) + ":" + pad(Math.floor(s % 3600 / 60)) + ":" + pad(s % 60);
    return d ? d + " d " + text : text;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) el.textContent = elapsed(now - since);
    });
    document.querySelectorAll(".clock-2h[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.dataset.deadline) - now;
      if (isNaN(left)) return;
      el.textContent = left > 0 ? elapsed(left) + " left of 2 h" : "2 h passed";
      el.classList.toggle("passed", left <= 0);
    });
  }

  // Events within this window are merged into one fetch (a decision writes several rows).
  var TRIAGE_COALESCE_MS = 150;
  var TRIAGE_EVENTS = { admission: true, referral: true, resync: true };

  function setupTriage(box) {
    var timer = null;

    function typed() {
      var kept = {};
      box.querySelectorAll("tr[data-admission] input[name=reason]").forEach(function (input) {
        var id = input.closest("tr").dataset.admission;
        if (input.value || document.activeElement === input) {
          kept[id] = { value: input.value, focus: document.activeElement === input };
        }
      });
      return kept;
    }

    // One refetch at a time (refresh.js): an older answer never replaces a newer one.
    var fetchQueue = window.vwRefresh.oneAtATime(function () {
      return fetch(box.dataset.src, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var kept = typed();
          box.innerHTML = html;
          Object.keys(kept).forEach(function (id) {
            var input = box.querySelector('tr[data-admission="' + CSS.escape(id) +
                                          '"] input[name=reason]');
            if (!input) return;
            input.value = kept[id].value;
            if (kept[id].focus) input.focus();
          });
          tick();
        })
        .catch(function (e) { console.warn("triage refresh failed", e); });
    });
    function refresh() {
      timer = null;
      return fetchQueue();
    }

    function schedule() { if (!timer) timer = window.setTimeout(refresh, TRIAGE_COALESCE_MS); }

    // The page's one stream (hub.js); a reconnect may have missed anything: refetch.
    window.vwEvents.subscribe(function (data) {
      if (TRIAGE_EVENTS[data.type]) schedule();
    }, schedule);
  }

  function describe(d) {
    var parts = [d.id];
    if (d.kind) parts.push(d.kind.replace(/_/g, " "));
    if (d.online !== null && d.online !== undefined) parts.push(d.online ? "online" : "offline");
    if (d.battery_pct !== null && d.battery_pct !== undefined) {
      parts.push("battery " + Math.round(d.battery_pct) + " %");
    }
    return parts.join(" · ") + (d.refusal ? " — " + d.refusal : "");
  }

  function kitIds(area) {
    return area.value.split(/[\s,]+/).filter(function (x) { return x; });
  }

  function setupKit(form) {
    var scan = document.getElementById("kit-scan");
    var area = document.getElementById("kit-ids");
    var list = document.getElementById("kit-list");
    var error = document.getElementById("kit-error");
    var add = document.getElementById("kit-add");
    if (!scan || !area || !list) return;

    function show(d) {
      var li = list.querySelector('li[data-device="' + CSS.escape(d.id) + '"]');
      if (!li) { li = document.createElement("li"); li.dataset.device = d.id; list.appendChild(li); }
      li.className = d.assignable ? "ok" : "bad";
      li.textContent = describe(d);
    }

    function check(id) {
      var url = "/api/admissions/" + form.dataset.admission + "/kit?device_id=" +
        encodeURIComponent(id);
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("the device could not be checked (HTTP " + r.status + ")");
          return r.json();
        })
        .then(function (devices) { return devices[0]; });
    }

    function addScanned() {
      var id = scan.value.trim();
      if (!id) return;
      scan.value = "";
      check(id).then(function (d) {
        show(d);
        if (d.assignable) {
          error.hidden = true;
          if (kitIds(area).indexOf(d.id) < 0) area.value = kitIds(area).concat([d.id]).join("\n");
        } else {
          error.textContent = d.refusal;
          error.hidden = false;
        }
      }).catch(function (e) { error.textContent = e.message; error.hidden = false; });
      scan.focus();
    }

    scan.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); addScanned(); }
    });
    if (add) add.addEventListener("click", addScanned);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var triage = document.getElementById("triage");
    if (triage) setupTriage(triage);
    if (triage || document.querySelector("[data-since]")) {
      tick();
      window.setInterval(tick, 1000);
    }
    var form = document.getElementById("admit-form");
    if (form) setupKit(form);
  });
})();
