/* virtualward hub — acting on alert episodes, and the attention signal.
 *
 * Cards (ward page's queue, alerts page, patient page — the same fragment, _alert_cards.html):
 * Acknowledge and the Resolve / Snooze / Escalate now / Note forms post JSON to
 * /api/alerts/{id}/… through forms.js. This module is the one place that acts on episodes and
 * refreshes the cards: window.vwAlerts.refresh() fetches the container's own fragment
 * (data-src) and swaps in only the cards whose data-version changed — an open form and what
 * the nurse typed survive other patients' news. hub.js calls it when the SSE stream says an
 * alert changed; after an action here, "vw:changed" tells hub.js to refresh that patient's
 * row (and the cards) at once, without waiting for the event's round trip.
 *
 * Attention: while a high-severity episode needs action (raised, not acknowledged or snoozed)
 * the tab title blinks; if the nurse switched sound on (remembered in localStorage), a short
 * two-tone beep made with Web Audio (no file) plays when a new one appears and every
 * REPEAT_MS while any is unanswered. Both stop when none is left.
 */
(function () {
  "use strict";

  var SOUND_KEY = "vw.sound";
  // A beep heard once is easily missed at 3 a.m.; every 30 s is an alarm, not a nuisance.
  var REPEAT_MS = 30000;
  var BLINK_MS = 1000;
  var baseTitle = document.title;
  var seen = new Set();
  var highIds = [];
  var blinkTimer = null;
  var repeatTimer = null;
  var audio = null;

  // ---- cards: swap only what changed -------------------------------------------------------
  function swapCards(container, html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    t.content.querySelectorAll("article.episode").forEach(function (card) {
      var old = document.getElementById(card.id);
      if (old && old.dataset.version === card.dataset.version) card.replaceWith(old);
      else card.classList.add("flash");
    });
    container.replaceChildren(t.content);
  }

  function showCounts(c) {
    if (!c) return;
    setBadge(String(c.needs_action));
    attention(c.high_ids.join(","));
  }

  // The cards of this page (its container names its fragment), the badge and the attention
  // signal, from one request; a page without cards asks for the counts only. Resolves once
  // the page shows them.
  // One refetch at a time (refresh.js): an older answer never replaces a newer one.
  var refresh = window.vwRefresh.oneAtATime(function () {
    var container = document.getElementById("alert-rows");
    var src = container && container.dataset.src;
    if (!src) {
      return fetch("/api/alerts/counts", { credentials: "same-origin",
                                           headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; }).then(showCounts);
    }
    return fetch(src, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("logged out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        var open = r.headers.get("X-Open-Alerts");
        var high = r.headers.get("X-High-Alerts");
        return r.text().then(function (html) {
          swapCards(container, html);
          if (open !== null) setBadge(open);
          if (high !== null) attention(high);
          document.dispatchEvent(new CustomEvent("vw:alerts-shown"));
        });
      });
  });

  function setBadge(open) {
    var count = document.getElementById("alert-count");
    if (count) { count.textContent = open; count.hidden = open === "0"; }
    var total = document.getElementById("needs-action-total");
    if (total) total.textContent = open;
  }

  // After an action: this patient's ward row and the cards are refreshed by hub.js.
  function changed(patientId) {
    document.dispatchEvent(new CustomEvent("vw:changed",
      { detail: { patient_id: patientId, alerts: true } }));
  }

  var PATHS = { resolve: "resolve", snooze: "snooze", escalate: "escalate", note: "notes" };

  function bodyOf(form) {
    var els = form.elements;
    var action = form.dataset.action;
    if (action === "resolve") {
      var detail = els.detail.value.trim();
      return { reason: els.reason.value + (detail ? " — " + detail : "") };
    }
    if (action === "snooze") {
      return { minutes: Number(els.minutes.value), reason: els.reason.value.trim() };
    }
    if (action === "escalate") {
      var body = {};
      if (els.to.value) body.to = els.to.value;
      if (els.reason.value.trim()) body.reason = els.reason.value.trim();
      return body;
    }
    return { text: els.text.value.trim() };
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("episode-action")) return;
    ev.preventDefault();
    var status = form.querySelector(".act-status");
    var body = bodyOf(form);
    if ((form.dataset.action === "snooze" && !body.reason) ||
        (form.dataset.action === "note" && !body.text)) {
      status.textContent = form.dataset.action === "snooze" ? "Give a reason." : "Write a note.";
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Saving…";
    window.vwForms.send("/api/alerts/" + form.dataset.alert + "/" + PATHS[form.dataset.action],
                        body).then(function (res) {
      if (!res.ok) {
        status.textContent = "Not saved: " + window.vwForms.problem(res);
        button.disabled = false;
        return;
      }
      status.textContent = "Saved.";
      changed(res.data.patient_id);
    }).catch(function (e) {
      status.textContent = "Not saved: " + e.message;
      button.disabled = false;
    });
  });

  // Acknowledge: one click, on a card or on the patient page's alert list.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("button[data-ack]");
    if (!btn) return;
    btn.disabled = true;
    btn.textContent = "Acknowledging…";
    window.vwForms.sendOk("/api/alerts/" + btn.dataset.ack + "/acknowledge").then(function (alert) {
      changed(alert.patient_id);
    }).catch(function (e) {
      btn.disabled = false;
      btn.textContent = "Acknowledge";
      window.alert("Could not acknowledge: " + e.message);
    });
  });

  // ---- attention ---------------------------------------------------------------------------
  function soundOn() { return window.localStorage.getItem(SOUND_KEY) === "on"; }

  function showToggle() {
    var btn = document.getElementById("sound-toggle");
    if (!btn) return;
    btn.setAttribute("aria-pressed", soundOn() ? "true" : "false");
    btn.textContent = soundOn() ? "Sound on" : "Sound off";
  }

  function beep() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.state === "suspended") audio.resume();
    var start = audio.currentTime + 0.02;
    [[880, 0], [660, 0.22]].forEach(function (tone) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, start + tone[1]);
      gain.gain.exponentialRampToValueAtTime(0.3, start + tone[1] + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + tone[1] + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + tone[1]);
      osc.stop(start + tone[1] + 0.2);
    });
    document.body.dataset.soundPlays = String(Number(document.body.dataset.soundPlays || 0) + 1);
  }

  function ring() { if (soundOn() && highIds.length) beep(); }

  function attention(header) {
    highIds = (header || "").split(",").filter(Boolean);
    var fresh = highIds.some(function (id) { return !seen.has(id); });
    highIds.forEach(function (id) { seen.add(id); });
    if (!highIds.length) {
      document.body.dataset.attention = "none";
      if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; }
      if (repeatTimer) { clearInterval(repeatTimer); repeatTimer = null; }
      document.title = baseTitle;
      return;
    }
    document.body.dataset.attention = "high";
    var label = "⚠ " + highIds.length + " HIGH alert" + (highIds.length > 1 ? "s" : "");
    var on = true;
    document.title = label + " · " + baseTitle;
    if (!blinkTimer) {
      blinkTimer = setInterval(function () {
        on = !on;
        var n = highIds.length;
        document.title = on ? "⚠ " + n + " HIGH alert" + (n > 1 ? "s" : "") + " · " + baseTitle
                            : baseTitle;
      }, BLINK_MS);
    }
    if (fresh) ring();
    if (!repeatTimer) repeatTimer = setInterval(ring, REPEAT_MS);
  }

  window.vwAlerts = { refresh: refresh };

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("#sound-toggle");
    if (!btn) return;
    window.localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
    showToggle();
    if (soundOn()) beep();  // the click unlocks audio, and lets the nurse hear the sound
  });

  showToggle();
  if (document.getElementById("live")) {
    fetch("/api/alerts/counts", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showCounts).catch(function () {});
  }
})();
