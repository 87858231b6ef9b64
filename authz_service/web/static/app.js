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
    // where the server put the warning (above the tree): it goes back there after a change made by a
    // button of the form's head; after a box ticked deep in the tree, it comes next to that box
    var home = document.createComment(" prerequisite warning ");
    if (warning) warning.parentNode.insertBefore(home, warning);
    var shown = {};  // the missing prerequisites last listed

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

    // Put the warning next to what caused it (a function's row, or a block's head), or back in its place,
    // and scroll no more than needed to show it.
    function place(anchor) {
      if (!warning || warning.hidden) return;
      if (anchor && anchor.matches("li.fn")) anchor.appendChild(warning);
      else if (anchor && anchor.matches("li.block")) anchor.querySelector(".block-head").after(warning);
      else home.after(warning);
      warning.scrollIntoView({block: "nearest"});
    }

    function refresh(anchor) {
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
      var keys = items.map(function (item) { return item[0] + ">" + item[1].join(","); });
      var grew = keys.some(function (key) { return !shown[key]; });
      shown = {};
      keys.forEach(function (key) { shown[key] = true; });
      list.textContent = "";
      items.forEach(function (item) {
        var li = document.createElement("li");
        var strong = document.createElement("strong");
        strong.textContent = label(item[0]);
        li.appendChild(strong);
        var why = (data.reasons || {})[item[0]] || {};
        li.appendChild(document.createTextNode(" — " + needsText + " " + item[1].map(function (c) {
          return why[c] ? label(c) + " (" + why[c] + ")" : label(c);
        }).join(", ")));
        list.appendChild(li);
      });
      warning.hidden = items.length === 0;
      if (grew && anchor !== undefined) place(anchor);  // a new problem: show it where the reader is
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
      if (target.matches("input[data-group], input[data-function]")) refresh(target.closest("li"));
    });

    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button || !form.contains(button)) return;
      var handled = true;
      var block = button.closest(".tree li.block");  // a block's own "Select all": the warning goes there
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
        refresh(block);
      }
    });

    form.querySelectorAll("[data-expand], [data-collapse]").forEach(function (b) { b.hidden = false; });
    refresh();
  }

  // Leaving a form with changes not saved asks first: a link or any other way out gets the browser's own
  // "leave this page?" prompt (beforeunload); the language switch and sign-out, which are forms that
  // post, ask in the page's language (data-confirm-leave). Changes = the fields differ from what the
  // page showed, or the server sent back a draft that is not saved yet (data-unsaved).
  function unsavedGuard() {
    var guarded = Array.prototype.slice.call(document.querySelectorAll("form[data-warn-unsaved]"));
    if (!guarded.length) return;
    var leaving = false;

    function state(form) {
      var parts = [];
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.type === "hidden" || el.type === "submit" || el.tagName === "BUTTON") return;
        if (el.type === "checkbox" || el.type === "radio") parts.push(el.name + "=" + el.value + ":" + el.checked);
        else parts.push(el.name + "=" + el.value);
      });
      return parts.join("&");
    }

    var initial = guarded.map(state);

    function changed() {
      return guarded.some(function (form, i) {
        return form.hasAttribute("data-unsaved") || state(form) !== initial[i];
      });
    }

    guarded.forEach(function (form) {
      form.addEventListener("submit", function () { leaving = true; });
    });
    document.querySelectorAll("form[data-confirm-leave]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (leaving || !changed()) return;
        if (window.confirm(form.getAttribute("data-confirm-leave"))) leaving = true;
        else event.preventDefault();
      });
    });
    window.addEventListener("beforeunload", function (event) {
      if (leaving || !changed()) return;
      event.preventDefault();
      event.returnValue = "";  // older browsers show the prompt only when this is set
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) leaving = false;  // back to this page from the history: guard it again
    });
  }

  // "Affecter les profils": the dates of a profile show while it is ticked (the server ignores the dates of
  // a profile left unticked; without this script every profile's dates show)
  function assignmentDates() {
    document.querySelectorAll("input[data-term-box]").forEach(function (box) {
      var dates = document.querySelector('[data-term-for="' + box.id + '"]');
      if (!dates) return;
      function sync() { dates.hidden = !box.checked && !dates.querySelector("[aria-invalid]"); }
      box.addEventListener("change", sync);
      sync();
    });
  }

  ready(function () {
    printButtons();
    assignmentDates();
    var form = document.querySelector("form[data-profile-form]");
    if (form) profileForm(form);
    unsavedGuard();  // after profileForm: its first refresh sets the block boxes, which are not changes
  });
})();
