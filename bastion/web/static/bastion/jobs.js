// Job page: asks the server for the job's state every second and updates the progress bar, the figures,
// the outcome and the buttons in place; stops once the job has finished (or was cancelled or failed).
// Without JavaScript the Refresh link reloads the page.
(function () {
  "use strict";
  var panel = document.getElementById("job-progress");
  if (!panel) { return; }
  var url = panel.getAttribute("data-status-url");
  if (!url || panel.getAttribute("data-final") === "true") { return; }
  var EVERY_MS = 1000;
  var RETRY_MS = 5000;
  var BADGES = ["success", "failure", "denied"];

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
    var badge = byId("job-status");
    if (badge) {
      BADGES.forEach(function (name) { badge.classList.remove(name); });
      if (state.badge) { badge.classList.add(state.badge); }
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

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (!state.final) { window.setTimeout(poll, EVERY_MS); }
      })
      .catch(function () { window.setTimeout(poll, RETRY_MS); });  // offline or signed out: try again later
  }
  window.setTimeout(poll, EVERY_MS);
})();
