// Small enhancements of the admin web UI. Every page works without this file: the buttons it
// intercepts are ordinary submit buttons that the server carries out.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function printButtons() {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
  }

  function profileForm(form) {
    var source = document.getElementById("profile-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var functions = {};
    form.querySelectorAll("input[data-function]").forEach(function (box) {
      functions[box.value] = box;
    });
    var groups = {};
    form.querySelectorAll("input[data-group]").forEach(function (box) {
      groups[box.value] = box;
    });
    var warning = document.getElementById("prereq-warning");
    var list = warning ? warning.querySelector("[data-missing-list]") : null;
    var needsText = warning ? warning.getAttribute("data-needs-text") : "";
    var total = form.querySelector("[data-total-selected]");

    function label(code) {
      var el = form.querySelector('label[for="f-' + code + '"]');
      return el ? el.textContent.trim() : code;
    }

    function set(codes, on) {
      codes.forEach(function (code) {
        var box = functions[code];
        if (box && !box.disabled) box.checked = on;
      });
    }

    function selected() {
      return Object.keys(functions).filter(function (code) { return functions[code].checked; });
    }

    function refresh() {
      var chosen = {};
      selected().forEach(function (code) { chosen[code] = true; });
      Object.keys(groups).forEach(function (code) {
        var codes = data.groups[code] || [];
        var n = codes.filter(function (c) { return chosen[c]; }).length;
        var box = groups[code];
        box.checked = codes.length > 0 && n === codes.length;
        box.indeterminate = n > 0 && n < codes.length;
        var count = form.querySelector('[data-count-for="' + code + '"]');
        if (count) count.textContent = n + "/" + codes.length;
      });
      if (total) total.textContent = String(Object.keys(chosen).length);
      if (!warning || !list) return;
      var items = [];
      Object.keys(functions).forEach(function (code) {
        if (!chosen[code]) return;
        var needs = (data.prerequisites[code] || []).filter(function (c) { return !chosen[c]; });
        if (needs.length) items.push([code, needs]);
      });
      list.textContent = "";
      items.forEach(function (item) {
        var li = document.createElement("li");
        var strong = document.createElement("strong");
        strong.textContent = label(item[0]);
        li.appendChild(strong);
        li.appendChild(document.createTextNode(" — " + needsText + " " + item[1].map(label).join(", ")));
        list.appendChild(li);
      });
      warning.hidden = items.length === 0;
    }

    function missing() {
      var chosen = {};
      selected().forEach(function (code) { chosen[code] = true; });
      var out = [];
      Object.keys(chosen).forEach(function (code) {
        (data.prerequisites[code] || []).forEach(function (c) {
          if (!chosen[c] && out.indexOf(c) < 0) out.push(c);
        });
      });
      return out;
    }

    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target.matches("input[data-group]")) {
        set(data.groups[target.value] || [], target.checked);
      }
      if (target.matches("input[data-group], input[data-function]")) refresh();
    });

    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button || !form.contains(button)) return;
      var handled = true;
      if (button.hasAttribute("data-select")) {
        set(data.groups[button.getAttribute("data-select")] || [], true);
      } else if (button.hasAttribute("data-deselect")) {
        set(data.groups[button.getAttribute("data-deselect")] || [], false);
      } else if (button.hasAttribute("data-select-all")) {
        set(Object.keys(functions), true);
      } else if (button.hasAttribute("data-deselect-all")) {
        set(Object.keys(functions), false);
      } else if (button.hasAttribute("data-template")) {
        var codes = data.templates[button.getAttribute("data-template")] || [];
        set(Object.keys(functions), false);
        set(codes, true);
      } else if (button.hasAttribute("data-add-prerequisites")) {
        set(missing(), true);
      } else if (button.hasAttribute("data-expand") || button.hasAttribute("data-collapse")) {
        var open = button.hasAttribute("data-expand");
        form.querySelectorAll(".tree details").forEach(function (d) { d.open = open; });
      } else {
        handled = false;
      }
      if (handled) {
        event.preventDefault();
        refresh();
      }
    });

    form.querySelectorAll("[data-expand], [data-collapse]").forEach(function (b) { b.hidden = false; });
    refresh();
  }

  ready(function () {
    printButtons();
    var form = document.querySelector("form[data-profile-form]");
    if (form) profileForm(form);
  });
})();
