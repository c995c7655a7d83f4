// The run form's host picker: narrow a fleet's checkboxes by a name search, a state and a
// group, then "Select all matching" (or clear them). Filtering only hides: a chosen host
// stays chosen (and is sent) while hidden. The count says how many are chosen. Text is set
// with textContent only; what is typed is compared as plain text, never as a pattern.
(function () {
  "use strict";

  function setUp(picker) {
    var tools = picker.querySelector("[data-picker-tools]");
    var search = picker.querySelector("[data-picker-search]");
    var state = picker.querySelector("[data-picker-state]");
    var group = picker.querySelector("[data-picker-group]");
    var shown = picker.querySelector("[data-picker-shown]");
    var count = picker.querySelector("[data-picker-count]");
    var labels = Array.prototype.slice.call(picker.querySelectorAll("label[data-host-name]"));
    if (!tools || !search) {
      return;
    }
    tools.hidden = false;

    function matches(label) {
      var text = search.value.trim().toLowerCase();
      var name = label.getAttribute("data-host-name").toLowerCase();
      if (text && name.indexOf(text) === -1) {
        return false;
      }
      if (state && state.value && label.getAttribute("data-host-state") !== state.value) {
        return false;
      }
      if (group && group.value) {
        var groups = (label.getAttribute("data-host-groups") || "").split(" ");
        if (groups.indexOf(group.value) === -1) {
          return false;
        }
      }
      return true;
    }

    function boxes(onlyShown) {
      return labels
        .filter(function (label) {
          return !onlyShown || !label.hidden;
        })
        .map(function (label) {
          return label.querySelector('input[type="checkbox"]');
        });
    }

    function counted() {
      var chosen = boxes(false).filter(function (box) {
        return box.checked;
      }).length;
      if (count) {
        count.textContent = chosen + " chosen of " + labels.length;
      }
    }

    function filter() {
      var visible = 0;
      labels.forEach(function (label) {
        label.hidden = !matches(label);
        visible += label.hidden ? 0 : 1;
      });
      if (shown) {
        shown.textContent = visible + " of " + labels.length + " shown";
      }
    }

    function choose(checked) {
      boxes(true).forEach(function (box) {
        box.checked = checked;
      });
      counted();
    }

    search.addEventListener("input", filter);
    // Enter in the search box filters; it must not submit the whole run form.
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
      }
    });
    [state, group].forEach(function (select) {
      if (select) {
        select.addEventListener("change", filter);
      }
    });
    picker.querySelector("[data-picker-select]").addEventListener("click", function () {
      choose(true);
    });
    picker.querySelector("[data-picker-unselect]").addEventListener("click", function () {
      choose(false);
    });
    picker.addEventListener("change", function (event) {
      if (event.target && event.target.type === "checkbox") {
        counted();
      }
    });
    filter();
    counted();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pickers = document.querySelectorAll("[data-host-picker]");
    for (var i = 0; i < pickers.length; i++) {
      setUp(pickers[i]);
    }
  });
})();
