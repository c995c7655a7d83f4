// Ansible output (templates/_ansible_output.html): "Expand all" / "Collapse all", and folds
// and scroll positions that survive a live refresh. app.js replaces a polled element's HTML
// whole, so each fold's state is remembered by its data-ao-key as the reader changes it and
// put back on the new HTML ("autosre:updated").
(function () {
  "use strict";

  var folds = {}; // data-ao-key -> open
  var scrolls = {}; // data-ao-scroll -> scrollTop

  function each(root, selector, fn) {
    var found = root.querySelectorAll(selector);
    for (var i = 0; i < found.length; i++) {
      fn(found[i]);
    }
  }

  function setAll(box, open) {
    each(box, "details[data-ao-key]", function (details) {
      details.open = open;
      folds[details.getAttribute("data-ao-key")] = open;
    });
  }

  function prepare(root) {
    each(root, "[data-ao-tools]", function (tools) {
      tools.hidden = false; // the buttons need this script, so they show only with it
    });
    each(root, "details[data-ao-key]", function (details) {
      var key = details.getAttribute("data-ao-key");
      if (Object.prototype.hasOwnProperty.call(folds, key)) {
        details.open = folds[key];
      }
    });
    each(root, "[data-ao-scroll]", function (box) {
      var key = box.getAttribute("data-ao-scroll");
      if (Object.prototype.hasOwnProperty.call(scrolls, key)) {
        box.scrollTop = scrolls[key];
      }
    });
  }

  document.addEventListener(
    "toggle",
    function (event) {
      var details = event.target;
      if (details && details.matches && details.matches("details[data-ao-key]")) {
        folds[details.getAttribute("data-ao-key")] = details.open;
      }
    },
    true // toggle does not bubble
  );
  document.addEventListener(
    "scroll",
    function (event) {
      var box = event.target;
      if (box && box.getAttribute && box.hasAttribute("data-ao-scroll")) {
        scrolls[box.getAttribute("data-ao-scroll")] = box.scrollTop;
      }
    },
    true
  );
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-ao-expand], [data-ao-collapse]");
    var box = button && button.closest("[data-ansible-output]");
    if (box) {
      setAll(box, button.hasAttribute("data-ao-expand"));
    }
  });
  document.addEventListener("autosre:updated", function (event) {
    prepare(event.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    prepare(document);
  });
})();
