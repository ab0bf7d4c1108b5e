// SQL console: Ctrl+Enter (Cmd+Enter) runs; the editor's text is saved as a draft on the server
// every few seconds while it changes, so it survives a closed tab, a logout or an expired session.
// Without JavaScript the Run and "Save draft" buttons do the same.
(function () {
  "use strict";
  var form = document.getElementById("console-form");
  if (!form) { return; }
  var editor = form.querySelector("textarea[name=sql]");
  var run = document.getElementById("run-button");
  var draftUrl = form.getAttribute("data-draft-url");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]");
  var saved = editor.value;
  var DRAFT_EVERY_MS = 10000;

  editor.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run.click();
    }
  });

  function saveDraft() {
    var text = editor.value;
    if (text === saved || !draftUrl || !token) { return; }
    var body = new FormData();
    body.append("sql", text);
    body.append("csrfmiddlewaretoken", token.value);
    fetch(draftUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" }
    }).then(function (response) {
      if (response.status === 204) { saved = text; }
    }).catch(function () { /* offline: the next tick tries again */ });
  }
  window.setInterval(saveDraft, DRAFT_EVERY_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { saveDraft(); }
  });
})();
