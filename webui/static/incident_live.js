// The incident page while the incident is open: app.js polls its live parts into a hidden
// [data-live-source]; each [data-live-part] there that brought something new replaces the
// page's part of that name (the action card, with what a person is typing, is never one).
// Once the fragment says the incident is closed, the page reloads once, served unpolled.
(function () {
  "use strict";

  var seen = {}; // part name -> the HTML it last brought

  document.addEventListener("autosre:updated", function (event) {
    var source = event.target;
    if (!source || !source.hasAttribute || !source.hasAttribute("data-live-source")) {
      return;
    }
    if (source.querySelector("[data-incident-closed]")) {
      window.location.reload();
      return;
    }
    var parts = source.querySelectorAll("[data-live-part]");
    for (var i = 0; i < parts.length; i++) {
      var name = parts[i].getAttribute("data-live-part");
      var html = parts[i].innerHTML;
      if (seen[name] === html) {
        continue; // unchanged: leave the reader's selection, focus and scroll alone
      }
      seen[name] = html;
      var target = document.querySelector('[data-live-part="' + name + '"]:not([data-live-source] *)');
      if (!target) {
        continue;
      }
      target.replaceChildren.apply(target, Array.prototype.slice.call(parts[i].childNodes));
      target.dispatchEvent(new CustomEvent("autosre:updated", { bubbles: true }));
    }
    source.replaceChildren();
  });
})();
