// Loaded in <head> without defer: sets the theme before the first paint, so a page
// never flashes the wrong colours. The choice is remembered per browser.
(function () {
  "use strict";
  var KEY = "autosre-theme";
  var root = document.documentElement;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch (e) {
      return null; // storage blocked: follow the OS
    }
  }

  function current() {
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    return stored() || (dark ? "dark" : "light");
  }

  root.setAttribute("data-theme", current());

  function toggle() {
    var next = current() === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try {
      window.localStorage.setItem(KEY, next);
    } catch (e) {
      // not remembered, still switched
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("[data-theme-toggle]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", toggle);
    }
  });
})();
