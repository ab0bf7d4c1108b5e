// New-table form: "More columns" / "More foreign keys" add rows in the page instead of a round trip;
// ticking "primary key" unticks "NULL" (and "autoincrement" ticks "primary key"); the size box hints
// at what the chosen type takes; the foreign key rows suggest the column names typed so far.
// Without JavaScript the buttons post the form and the server adds the rows and checks the rest.
(function () {
  "use strict";
  var form = document.querySelector("form.table-editor");
  if (!form) { return; }
  var SIZE_HINTS = { varchar: "255", decimal: "12,2" };

  function field(row, suffix) {
    return row.querySelector("[name$='-" + suffix + "']");
  }

  function wireColumnRow(row) {
    var nullable = field(row, "nullable");
    var primary = field(row, "primary_key");
    var auto = field(row, "autoincrement");
    var type = field(row, "type");
    var size = field(row, "size");
    var name = field(row, "name");
    if (!primary || !type) { return; }
    primary.addEventListener("change", function () {
      if (primary.checked && nullable) { nullable.checked = false; }
      if (!primary.checked && auto) { auto.checked = false; }
    });
    if (auto) {
      auto.addEventListener("change", function () {
        if (auto.checked) { primary.checked = true; if (nullable) { nullable.checked = false; } }
      });
    }
    if (nullable) {
      nullable.addEventListener("change", function () {
        if (nullable.checked) { primary.checked = false; if (auto) { auto.checked = false; } }
      });
    }
    function hint() {
      if (size) { size.placeholder = SIZE_HINTS[type.value] || ""; }
    }
    type.addEventListener("change", hint);
    hint();
    if (name) { name.addEventListener("input", refreshColumnNames); }
  }

  function refreshColumnNames() {
    var list = document.getElementById("new-table-columns");
    if (!list) { return; }
    var seen = [];
    form.querySelectorAll("#columns-rows [name$='-name']").forEach(function (input) {
      if (input.value && seen.indexOf(input.value) < 0) { seen.push(input.value); }
    });
    list.replaceChildren.apply(list, seen.map(function (value) {
      var option = document.createElement("option");
      option.value = value;
      return option;
    }));
  }

  function addRow(prefix) {
    var template = document.getElementById(prefix + "-template");
    var body = document.getElementById(prefix + "-rows");
    var total = form.querySelector("[name='" + prefix + "-TOTAL_FORMS']");
    var most = form.querySelector("[name='" + prefix + "-MAX_NUM_FORMS']");
    if (!template || !body || !total) { return false; }
    var index = parseInt(total.value, 10) || 0;
    if (most && index >= parseInt(most.value, 10)) { return true; }  // at the limit: nothing to add
    var fragment = template.content.cloneNode(true);
    fragment.querySelectorAll("[name], [id], [for]").forEach(function (node) {
      ["name", "id", "for"].forEach(function (attribute) {
        var value = node.getAttribute(attribute);
        if (value) { node.setAttribute(attribute, value.replace(/__prefix__/g, String(index))); }
      });
    });
    fragment.querySelectorAll("label").forEach(function (label) {
      label.textContent = label.textContent.replace("new", String(index + 1));
    });
    var row = fragment.querySelector("tr");
    body.appendChild(fragment);
    total.value = String(index + 1);
    if (prefix === "columns" && row) { wireColumnRow(row); }
    var first = row && row.querySelector("input, select");
    if (first) { first.focus(); }
    return true;
  }

  form.querySelectorAll("button[data-add-row]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (addRow(button.getAttribute("data-add-row"))) { event.preventDefault(); }
    });
  });
  form.querySelectorAll("#columns-rows tr.editor-row").forEach(wireColumnRow);
})();
