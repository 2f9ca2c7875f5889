/* virtualward hub — live updates without polling.
 *
 * One EventSource per tab (/api/events), shared: window.vwEvents.subscribe(onEvent, onReopen)
 * gives every script of the page (the worklist's, the triage queue's) the same stream's parsed
 * `ward` events, and tells them when it reconnected (anything may have changed meanwhile).
 * An event names the patients that changed; the page
 * fetches just those rows as HTML (/ward/rows?patient_id=…), swaps them in and re-sorts the
 * table by acuity (band, NEWS2 total, longest without observations). Alert events refresh
 * the alert cards through alerts.js (window.vwAlerts, the one module that shows and acts on
 * episodes); forms are sent through forms.js. The only timer is a local one-second tick for
 * escalation countdowns; it never touches the network.
 */
(function () {
  "use strict";

  // Events arriving within this window are merged into one fetch (a gateway batch can name
  // the same patient several times within a few milliseconds).
  var COALESCE_MS = 40;
  var pendingIds = new Set();
  var pendingAll = false;
  var pendingAlerts = false;
  var timer = null;
  var page = document.body.dataset.page;
  var patientId = document.body.dataset.patient;

  function setLive(state, text) {
    var el = document.getElementById("live");
    if (!el) return;
    el.dataset.state = state;
    el.querySelector(".live-text").textContent = text;
  }

  function fetchHtml(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401 || r.redirected && r.url.indexOf("/login") >= 0) {
          window.location.assign("/login");
          throw new Error("logged out");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r;
      });
  }

  function parseRows(html) {
    var t = document.createElement("template");
    t.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    return Array.prototype.slice.call(t.content.querySelectorAll("tbody > tr"));
  }

  function tierRank(row) {
    var cell = row.querySelector("[data-tier-rank]");
    return cell ? Number(cell.dataset.tierRank) : 0;
  }

  function compareRows(a, b) {
    var d = 0;
    var tbody = document.getElementById("ward-rows");
    if (tbody && tbody.dataset.sort === "tier") d = tierRank(b) - tierRank(a);
    if (d) return d;
    d = Number(b.dataset.band) - Number(a.dataset.band);
    if (d) return d;
    d = Number(b.dataset.total) - Number(a.dataset.total);
    if (d) return d;
    d = Number(a.dataset.last) - Number(b.dataset.last);
    if (d) return d;
    return Number(a.dataset.pid) - Number(b.dataset.pid);
  }

  function sortWard(tbody) {
    var rows = Array.prototype.slice.call(tbody.children);
    rows.sort(compareRows);
    rows.forEach(function (row) { tbody.appendChild(row); });
  }

  // One subtle highlight per changed row, and at most one per row every few seconds: a busy
  // gateway re-sends the same patients several times a second, which flashed ~22 rows a
  // second for 40 patients. A row replaced within the window keeps no highlight.
  var FLASH_EVERY_MS = 5000;
  var lastFlash = new Map();

  function highlight(row, old) {
    if (!old) return;  // a full reload or a new admission: nothing "changed" to point at
    var now = Date.now();
    var pid = row.dataset.pid;
    if (now - (lastFlash.get(pid) || 0) < FLASH_EVERY_MS) return;
    lastFlash.set(pid, now);
    row.classList.add("flash");
  }

  // Ward filters: each control names its filter (data-filter); each filter says whether a
  // row (its data-* attributes) passes at the control's value. Add a filter here and a
  // control in ward.html; empty values pass everything.
  var WARD_FILTERS = {
    search: function (row, v) { return row.dataset.search.indexOf(v.toLowerCase().replace(/\s+/g, " ").trim()) >= 0 ||
      row.dataset.search.indexOf(v.replace(/\s+/g, "")) >= 0; },
    risk: function (row, v) { return row.dataset.risk === v; },
    overdue: function (row) { return row.dataset.overdue === "1"; },
    device: function (row) { return row.dataset.deviceProblem === "1"; },
    mine: function (row) { return row.dataset.mine === "1"; }
  };

  function filterValues() {
    var values = [];
    document.querySelectorAll("#ward-filters [data-filter]").forEach(function (el) {
      var v = el.type === "checkbox" ? (el.checked ? "1" : "") : el.value.trim();
      if (v) values.push([WARD_FILTERS[el.dataset.filter], v]);
    });
    return values;
  }

  function applyFilters(row, values) {
    values = values || filterValues();
    if (!row.classList.contains("patient")) return;
    row.hidden = !values.every(function (f) { return !f[0] || f[0](row, f[1]); });
  }

  function countShown(tbody) {
    var out = document.getElementById("f-count");
    if (!out) return;
    var all = tbody.querySelectorAll("tr.patient").length;
    var shown = tbody.querySelectorAll("tr.patient:not([hidden])").length;
    out.textContent = shown === all ? all + " patients" : shown + " of " + all + " patients";
  }

  function filterWard() {
    var tbody = document.getElementById("ward-rows");
    if (!tbody) return;
    var values = filterValues();
    tbody.querySelectorAll("tr.patient").forEach(function (row) { applyFilters(row, values); });
    countShown(tbody);
  }

  var filters = document.getElementById("ward-filters");
  if (filters) {
    filters.addEventListener("input", filterWard);
    filters.addEventListener("change", filterWard);
    filters.addEventListener("submit", function (ev) { ev.preventDefault(); });
    filterWard();
  }

  // /ward/rows takes at most this many patient_id (routers/pages.py): a flush naming more
  // (a burst of gateway batches while a slow fetch was in flight) fetches them in turn; one
  // request for all of them was refused (422) and those rows kept their old values until an
  // event named them again.
  var ROWS_PER_FETCH = 500;

  function updateWard(ids) {
    var tbody = document.getElementById("ward-rows");
    if (!tbody) return Promise.resolve();
    if (ids && ids.length > ROWS_PER_FETCH) {
      var chunks = [];
      for (var i = 0; i < ids.length; i += ROWS_PER_FETCH) {
        chunks.push(ids.slice(i, i + ROWS_PER_FETCH));
      }
      return chunks.reduce(function (done, chunk) {
        return done.then(function () { return updateWard(chunk); });
      }, Promise.resolve());
    }
    var url = "/ward/rows";
    if (ids) url += "?" + ids.map(function (id) { return "patient_id=" + id; }).join("&");
    return fetchHtml(url).then(function (r) {
      var admitted = r.headers.get("X-Ward-Admitted");
      return r.text().then(function (html) {
        var rows = parseRows(html);
        if (!ids) tbody.innerHTML = "";
        rows.forEach(function (row) {
          var old = document.getElementById(row.id);
          if (row.dataset.gone) { if (old) old.remove(); return; }
          var only = (tbody.dataset.tiers || "").split(" ").filter(Boolean);
          var badge = row.querySelector("td.tier .badge");
          if (only.length && !(badge && only.indexOf(badge.textContent) >= 0)) {
            if (old) old.remove();
            return;
          }
          highlight(row, old);
          applyFilters(row);
          if (old) old.replaceWith(row); else tbody.appendChild(row);
        });
        sortWard(tbody);
        countShown(tbody);
        [["stat-high", "tr.patient.risk-high"], ["stat-medium", "tr.patient.risk-medium"],
         ["stat-overdue", "tr.patient.overdue"]].forEach(function (pair) {
          var stat = document.getElementById(pair[0]);
          if (stat) stat.textContent = tbody.querySelectorAll(pair[1]).length;
        });
        var el = document.getElementById("admitted");
        if (el && admitted !== null) el.textContent = admitted;
        var upd = document.getElementById("updated");
        // The hub's zone (Europe/London), not the browser's: times on screen agree.
        if (upd) upd.textContent = new Date().toLocaleTimeString("en-GB",
          { timeZone: document.body.dataset.tz || "Europe/London" });
      });
    });
  }

  // The cards (ward queue, alerts page, patient page) and the badge: alerts.js's.
  function updateAlerts() {
    return window.vwAlerts.refresh();
  }

  function updatePatient() {
    var panel = document.getElementById("patient-panel");
    if (!panel) return Promise.resolve();
    var hours = document.body.dataset.hours || "24";
    return fetchHtml("/patients/" + patientId + "/panel?hours=" + hours).then(function (r) {
      return r.text().then(function (html) { panel.innerHTML = html; tick(); });
    });
  }

  // One flush at a time: two fetches of a row in flight can answer out of order on a busy hub,
  // and the older answer would replace the newer row. Events meanwhile wait in pending*; the
  // flush in flight schedules the next when it ends.
  var flushing = false;

  function flush() {
    timer = null;
    if (flushing) return;
    var ids = Array.from(pendingIds);
    var all = pendingAll;
    var alerts = pendingAlerts;
    pendingIds.clear();
    pendingAll = false;
    pendingAlerts = false;
    var work = [];
    if (page === "ward" && !patientId) {
      if (all) work.push(updateWard(null));
      else if (ids.length) work.push(updateWard(ids));
    }
    if (patientId && (all || ids.indexOf(Number(patientId)) >= 0)) work.push(updatePatient());
    if (alerts || all) work.push(updateAlerts());
    flushing = true;
    Promise.all(work).catch(function (e) { console.warn("update failed", e); }).then(function () {
      flushing = false;
      if (pendingAll || pendingAlerts || pendingIds.size) schedule();
    });
  }

  function schedule() { if (!timer) timer = setTimeout(flush, COALESCE_MS); }

  function onWard(data) {
    if (data.type === "resync") { pendingAll = true; }
    (data.patient_ids || []).forEach(function (id) { pendingIds.add(id); });
    if (data.type === "alert" || data.type === "resync" || data.type === "score") pendingAlerts = true;
    schedule();
  }

  // The page's one stream: opened by the first subscriber, shared by all of them.
  var streamSource = null;
  var eventSubscribers = [];
  var reopenSubscribers = [];

  function openStream() {
    if (streamSource) return;
    streamSource = new EventSource("/api/events");
    var everOpen = false;
    streamSource.addEventListener("open", function () {
      setLive("live", "live");
      if (everOpen) reopenSubscribers.forEach(function (fn) { fn(); });
      everOpen = true;
    });
    streamSource.addEventListener("error", function () { setLive("lost", "reconnecting…"); });
    // The session ended (logged out elsewhere, revoked, expired, account deactivated, role
    // changed): the hub sends this last event and closes. Stop the stream (no reconnect) and
    // let the log-in page say why; it brings the user back here after signing in again.
    streamSource.addEventListener("session-ended", function (ev) {
      var reason = "";
      try { reason = String(JSON.parse(ev.data).reason || ""); } catch (e) { /* unnamed */ }
      streamSource.close();
      setLive("lost", "signed out");
      var here = window.location.pathname + window.location.search;
      window.location.assign("/login?ended=" + encodeURIComponent(reason) +
        "&next=" + encodeURIComponent(here));
    });
    streamSource.addEventListener("ward", function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      eventSubscribers.forEach(function (fn) {
        try { fn(data); } catch (e) { console.warn("event handler failed", e); }
      });
    });
  }

  window.vwEvents = {
    // onEvent(data) for every `ward` event ({type, patient_ids, alert_id?}); onReopen() after
    // the stream reconnected.
    subscribe: function (onEvent, onReopen) {
      if (onEvent) eventSubscribers.push(onEvent);
      if (onReopen) reopenSubscribers.push(onReopen);
      openStream();
    }
  };

  function connect() {
    window.vwEvents.subscribe(onWard, function () {
      pendingAll = true; pendingAlerts = true; schedule();
    });
  }

  // "16 min ago" keeps counting: data-age is the age when rendered, counted on from when
  // this tab first saw the element (the server's clock, not the browser's, set the start).
  function agoText(seconds) {
    if (seconds < 0) return "just now";
    if (seconds < 90) return seconds + " s ago";
    if (seconds < 5400) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 172800) {
      var m = Math.floor(seconds % 3600 / 60);
      return Math.floor(seconds / 3600) + " h " + (m < 10 ? "0" : "") + m + " min ago";
    }
    return Math.floor(seconds / 86400) + " days ago";
  }

  // Escalation countdowns: a local clock, no requests.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.ago[data-age]").forEach(function (el) {
      if (!el.dataset.seen) el.dataset.seen = String(now);
      var age = Number(el.dataset.age) + Math.floor((now - Number(el.dataset.seen)) / 1000);
      var text = agoText(age);
      if (el.textContent !== text) el.textContent = text;
    });
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.deadline) - now) / 1000);
      if (left <= 0) { el.textContent = "escalation due"; el.classList.add("due"); return; }
      var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = "escalates in " + (h ? h + " h " + m + " min" :
        m + ":" + (s < 10 ? "0" : "") + s);
    });
  }

  // An action taken on this page (alerts.js: acknowledge, resolve, …) changed a patient:
  // show it now rather than after the SSE round trip.
  document.addEventListener("vw:changed", function (ev) {
    var d = ev.detail || {};
    if (d.patient_id) pendingIds.add(Number(d.patient_id));
    if (d.alerts) pendingAlerts = true;
    schedule();
  });
  document.addEventListener("vw:alerts-shown", tick);

  // Observations entered by staff (patient page): the form posts JSON to the API; errors are
  // shown next to their fields; the panel then refreshes (the live event would do it too).
  // Times are typed and shown in the hub's zone (data-tz, Europe/London), sent as UTC ISO.
  function zoneParts(ms, tz) {
    var out = {};
    new Intl.DateTimeFormat("en-GB", { timeZone: tz, hourCycle: "h23", year: "numeric",
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(ms)).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  function zoneOffset(ms, tz) {
    var p = zoneParts(ms, tz);
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) -
      Math.floor(ms / 1000) * 1000;
  }

  function wallTimeToIso(value, tz) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
    if (!m) return null;
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var ms = wall - zoneOffset(wall, tz);
    ms = wall - zoneOffset(ms, tz);  // second pass settles the offset across a BST change
    return new Date(ms).toISOString();
  }

  function wallTimeNow(tz) {
    var p = zoneParts(Date.now(), tz);
    return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute;
  }

  // An untouched time field follows the clock (and is not sent: the server uses now).
  function refreshObsTime() {
    var form = document.getElementById("obs-form");
    if (!form) return;
    var input = form.elements.measured_at;
    if (input.value !== input.dataset.default) return;
    var now = wallTimeNow(form.dataset.tz);
    input.value = now;
    input.dataset.default = now;
  }

  var OBS_FIELDS = ["resp_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness",
                    "temperature"];

  function obsBody(form) {
    var els = form.elements;
    var body = { observations: [] };
    OBS_FIELDS.forEach(function (code) {
      var el = els[code];
      var raw = el.value.trim();
      if (raw === "") return;
      var item = { code: code };
      if (el.tagName === "SELECT") { item.value = raw; }
      else {
        // Without a unit the API takes the catalogue's (/min, %, mmHg); °C or °F is chosen.
        item.value = Number(raw);
        if (code === "temperature") item.unit = els.temperature_unit.value;
      }
      body.observations.push(item);
    });
    var time = els.measured_at;
    if (time.value !== time.dataset.default) {
      body.measured_at = wallTimeToIso(time.value, form.dataset.tz);
    }
    var note = els.note.value.trim();
    if (note) body.note = note;
    if (els.method && els.method.value) body.method = els.method.value;
    return body;
  }

  function showObsErrors(form, body, problem) {
    var shown = false;
    (problem.errors || []).forEach(function (err) {
      var loc = err.loc || [];
      var field = loc[1];
      if (field === "observations" && loc.length > 2) {
        var item = body.observations[Number(loc[2])];
        field = item ? item.code : null;
      }
      var slot = field && form.querySelector('[data-error-for="' + field + '"]');
      if (!slot) return;
      slot.textContent = err.msg;
      shown = true;
    });
    // Another value already recorded in a slot (409 conflicting-reading): said at its field.
    (problem.conflicts || []).forEach(function (c) {
      var slot = form.querySelector('[data-error-for="' + c.code + '"]');
      if (!slot) return;
      slot.textContent = c.msg;
      shown = true;
    });
    return shown;
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.id !== "obs-form") return;
    ev.preventDefault();
    var status = form.querySelector(".obs-status");
    form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
    var body = obsBody(form);
    if (!body.observations.length) { status.textContent = "Enter at least one value."; return; }
    if (body.measured_at === null) {
      form.querySelector('[data-error-for="measured_at"]').textContent = "Enter a date and time.";
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Saving…";
    var url = "/api/patients/" + form.dataset.patient + "/observations";
    window.vwForms.send(url, body).then(function (res) {
      if (!res.ok) {
        var inline = showObsErrors(form, body, res.data || {});
        var conflicting = ((res.data || {}).conflicts || []).length > 0;
        status.textContent = conflicting ?
          "Not saved: a value is already recorded at this time; see the fields marked." :
          inline ? "Not saved: see the fields marked." :
          "Not saved: " + window.vwForms.problem(res);
        return;
      }
      OBS_FIELDS.concat(["note"]).forEach(function (name) { form.elements[name].value = ""; });
      form.elements.measured_at.value = form.elements.measured_at.dataset.default;
      refreshObsTime();
      var s = res.data.score;
      status.textContent = "Saved " + res.data.readings.length + " value(s)" +
        (s ? " · NEWS2 " + s.total + (s.complete ? "" : " (partial)") : "") + ".";
      pendingIds.add(Number(form.dataset.patient));
      pendingAlerts = true;
      schedule();
    }).catch(function (e) {
      status.textContent = "Not saved: " + e.message;
    }).then(function () { button.disabled = false; });
  });

  // IV prescription (clinicians): rate or duration, start typed in the hub's zone.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.id !== "iv-form") return;
    ev.preventDefault();
    var els = form.elements;
    var status = form.querySelector(".iv-status");
    var body = { drug: els.drug.value.trim(), volume_ml: Number(els.volume_ml.value),
                 started_at: wallTimeToIso(els.started_at.value, form.dataset.tz),
                 pump_type: els.pump_type.value, reason: els.reason.value.trim() };
    if (els.rate_ml_h.value.trim() !== "") body.rate_ml_h = Number(els.rate_ml_h.value);
    if (els.duration_h.value.trim() !== "") body.duration_h = Number(els.duration_h.value);
    status.textContent = "Saving…";
    window.vwForms.send("/api/patients/" + form.dataset.patient + "/care-plan/infusion", body,
                        "PUT").then(function (res) {
      if (!res.ok) {
        status.textContent = "Not saved: " + window.vwForms.problem(res);
        return;
      }
      status.textContent = "Saved: expected end " + res.data.infusion_expected_end + ".";
      pendingIds.add(Number(form.dataset.patient));
      schedule();
    }).catch(function (e) { status.textContent = "Not saved: " + e.message; });
  });

  if (document.getElementById("live")) {
    connect();
    tick();
    setInterval(tick, 1000);
  }
  if (document.getElementById("obs-form")) setInterval(refreshObsTime, 30000);
})();
