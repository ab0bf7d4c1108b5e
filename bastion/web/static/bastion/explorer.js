// Row forms: typing a value unticks the field's "NULL" and "use the default" boxes, and ticking
// one of those boxes unticks the other, so the user's last action wins. Without JavaScript the
// server refuses the contradictory form with a message next to the field instead.
(function () {
  "use strict";
  function boxes(field) {
    return field.querySelectorAll(".companions input[type=checkbox]");
  }
  document.querySelectorAll(".row-field").forEach(function (field) {
    var value = field.querySelector("input:not([type=checkbox]), textarea, select");
    if (value) {
      value.addEventListener("input", function () {
        boxes(field).forEach(function (box) { box.checked = false; });
      });
    }
    boxes(field).forEach(function (box) {
      box.addEventListener("change", function () {
        if (!box.checked) { return; }
        boxes(field).forEach(function (other) { if (other !== box) { other.checked = false; } });
      });
    });
  });
  // Table pages: a "select all rows" box for bulk actions.
  var all = document.getElementById("pick-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=k]").forEach(function (box) { box.checked = all.checked; });
    });
  }
})();
