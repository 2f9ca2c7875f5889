/* virtualward hub — the ward manager's pages: the clock since referral and the kit scanner.
 *
 * Clock: every element with data-since (an ISO instant) shows the time elapsed, ticking once
 * a second from the browser's clock; it never touches the network.
 * Kit scanner (admission page): a scanner types a device id and Enter into #kit-scan; the
 * device's status is asked of /api/admissions/{id}/kit and shown; a device that may join the
 * kit is added to the form's list (#kit-ids), one that may not is refused with the reason.
 * The form works without this script: the ids can be typed into the list directly.
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
    if (document.querySelector("[data-since]")) { tick(); window.setInterval(tick, 1000); }
    var form = document.getElementById("admit-form");
    if (form) setupKit(form);
  });
})();
