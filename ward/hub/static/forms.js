/* virtualward hub — sending the dashboard's forms and buttons to the API, in one place.
 *
 * Every action on screen (episode actions in alerts.js; staff observations and the IV
 * prescription in hub.js; worklist claims in worklist.js) sends JSON the same way: same
 * headers (the hub's CSRF check accepts them because the browser sends Origin), a 401 sends
 * the browser to the login page, and a refusal is described from the RFC 9457 problem
 * (its first field error, else its detail). Loaded before the other scripts (base.html).
 */
(function () {
  "use strict";

  // Resolves {ok, status, data}; data is the parsed JSON body, or null (204, or not JSON).
  function send(url, body, method) {
    return fetch(url, {
      method: method || "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      if (r.status === 401) {
        window.location.assign("/login");
        throw new Error("logged out");
      }
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }

  // The reason a request was refused, for the status line next to the form.
  function problem(res) {
    var data = res.data || {};
    var first = (data.errors || [])[0];
    return first ? first.msg : (data.detail || "error " + res.status);
  }

  // send(), rejecting unless the API accepted: for callers that only need the result.
  function sendOk(url, body, method) {
    return send(url, body, method).then(function (res) {
      if (!res.ok) throw new Error(problem(res));
      return res.data;
    });
  }

  window.vwForms = { send: send, sendOk: sendOk, problem: problem };
})();
