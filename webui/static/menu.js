// The menu on narrow screens: the toggle button in the header folds the nav and the user's
// links away (the CSS hides them only while <header data-menu="closed">). Without
// JavaScript the button stays hidden and the menu stays open, so it is always reachable.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.querySelector("[data-menu-toggle]");
    var header = toggle && toggle.closest("header");
    if (!header) {
      return; // signed out: no menu
    }

    function set(open) {
      header.setAttribute("data-menu", open ? "open" : "closed");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }

    set(false);
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      set(toggle.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        set(false);
        toggle.focus();
      }
    });
  });
})();
