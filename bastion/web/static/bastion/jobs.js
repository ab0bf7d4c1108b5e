// Job page: asks the server for the job's state every second and updates the progress bar, the figures,
// the outcome and the buttons in place; stops once the job has finished (or was cancelled or failed).
// Without JavaScript the Refresh link reloads the page.
//
// Every request refreshes the session, so polling must not keep a page nobody looks at signed in for ever
// (T10: the session idle timeout). Polling pauses once nobody has used the page for half the idle timeout
// (data-idle-seconds) and resumes on the next key press, pointer move, scroll or return to the tab. It stops
// for good when the answer is not the job's state (signed out, the job gone or no longer shown): the Refresh
// link then says what is true. Text from the server goes into the page as text only (textContent), never as HTML.
(function () {
  "use strict";
  var panel = document.getElementById("job-progress");
  if (!panel) { return; }
  var url = panel.getAttribute("data-status-url");
  if (!url || panel.getAttribute("data-final") === "true") { return; }
  var EVERY_MS = 1000;
  var RETRY_MS = 5000;
  var BADGES = ["success", "failure", "denied"];
  var idleSeconds = parseInt(panel.getAttribute("data-idle-seconds") || "", 10);
  var PAUSE_AFTER_MS = (idleSeconds > 0 ? idleSeconds : 1800) * 500;  // half the session's idle timeout
  var lastActivity = Date.now();
  var paused = false;
  var stopped = false;

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    var node = byId(id);
    if (node) { node.textContent = text; }
  }

  function setHidden(id, hidden) {
    var node = byId(id);
    if (node) { node.hidden = hidden; }
  }

  function showBar(percent) {
    var bar = byId("job-bar");
    if (!bar) { return; }
    if (percent === null || percent === undefined) {
      bar.removeAttribute("value");  // indeterminate: the total is not known
      bar.textContent = "";
      setText("job-percent", "");
    } else {
      bar.setAttribute("value", percent.toFixed(1));  // as the server writes it
      bar.textContent = Math.round(percent) + "%";
      setText("job-percent", Math.round(percent) + "%");
    }
  }

  function showStatus(state) {
    setText("job-started", state.started || "—");
    setText("job-finished", state.finished || "—");
    var badge = byId("job-status");
    if (badge) {
      BADGES.forEach(function (name) { badge.classList.remove(name); });
      if (BADGES.indexOf(state.badge) !== -1) { badge.classList.add(state.badge); }
      badge.setAttribute("data-status", state.status);
      badge.textContent = state.status_label;
    }
    var message = byId("job-message");
    if (message) {
      message.textContent = state.message || "";
      message.hidden = !state.message;
      ["success", "error", "warning"].forEach(function (name) { message.classList.remove(name); });
      var tone = { succeeded: "success", failed: "error", cancelled: "warning" }[state.status];
      if (tone) { message.classList.add(tone); }
    }
  }

  function showError(error) {
    var box = byId("job-error");
    if (!box) { return; }
    var has = error && (error.row !== undefined || error.column || error.reason);
    box.hidden = !has;
    if (!has) { return; }
    box.querySelectorAll("[data-error]").forEach(function (cell) {
      var value = error[cell.getAttribute("data-error")];
      cell.textContent = (value === null || value === undefined || value === "") ? "—" : String(value);
    });
  }

  function show(state) {
    showBar(state.percent);
    setText("job-summary", state.summary);
    showStatus(state);
    showError(state.error);
    setHidden("job-cancel", state.final || state.cancel_requested);
    setHidden("job-download", !state.downloadable);
    setText("job-file", state.file || "");
    setHidden("job-refresh", state.final);
    if (state.final) { panel.setAttribute("data-final", "true"); }
  }

  function stop() {  // the answer was not the job's state: no more requests; the Refresh link tells the truth
    stopped = true;
    setHidden("job-paused", true);
    setHidden("job-refresh", false);
  }

  function later(ms) {
    window.setTimeout(function () {
      if (stopped) { return; }
      if (Date.now() - lastActivity >= PAUSE_AFTER_MS) {
        paused = true;  // nobody is looking: let the session time out as it would without this page
        setHidden("job-paused", false);
        return;
      }
      poll();
    }, ms);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "manual",
                 headers: { Accept: "application/json" } })
      .then(function (response) {
        var type = (response.headers && response.headers.get("Content-Type")) || "";
        var refused = response.status >= 300 && response.status < 500 && response.status !== 429;
        if (response.type === "opaqueredirect" || refused || (response.ok && type.indexOf("application/json") !== 0)) {
          stop();  // signed out (sent to the login page), the job gone, or no longer this user's to see
          return null;
        }
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        if (state === null) { return; }
        show(state);
        if (!state.final) { later(EVERY_MS); } else { stopped = true; }
      })
      .catch(function () { if (!stopped) { later(RETRY_MS); } });  // offline or the server busy: try again later
  }

  function active() {
    lastActivity = Date.now();
    if (paused && !stopped) {
      paused = false;
      setHidden("job-paused", true);
      poll();
    }
  }
  ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"].forEach(function (name) {
    document.addEventListener(name, active, { passive: true });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { active(); }
  });
  later(EVERY_MS);
})();
