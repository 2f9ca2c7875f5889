/* virtualward hub — a screen's refetches, one at a time, so the newest answer is the one shown.
 *
 * Why: a page refetches what an SSE event names (the ward rows, the worklist, the triage
 * queue, the alert cards). Two refetches in flight can answer out of order on a busy hub:
 * the older answer, read before a change was committed, then replaces the newer one and the
 * screen stays stale until the next event (seen as a flaky "the completed task never left
 * the other nurse's worklist"). window.vwRefresh.oneAtATime(fn) wraps fn (returns a promise):
 * a call while fn runs does not start a second request but runs fn once more after it, and
 * every call made meanwhile shares that run's promise (so "resolves once the page shows it"
 * still holds). Loaded before the other scripts (base.html).
 */
(function () {
  "use strict";

  function oneAtATime(fn) {
    var running = null;
    var queued = null;
    function run() {
      if (!running) {
        running = Promise.resolve().then(fn).finally(function () { running = null; });
        return running;
      }
      if (!queued) {
        queued = running.catch(function () {}).then(function () { queued = null; return run(); });
      }
      return queued;
    }
    return run;
  }

  window.vwRefresh = { oneAtATime: oneAtATime };
})();
