// The CPU chart's time axis in the viewer's zone. The server writes each tick in UTC
//   <text data-ts="2026-12-01T09:55:00Z">09:55</text>
// which reads correctly without JavaScript (the caption says UTC). This rewrites each one
// to the browser's zone (data-long: with the date), as times.js does for <time> elements.
(function () {
  "use strict";

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function label(date, long) {
    var clock = pad(date.getHours()) + ":" + pad(date.getMinutes());
    return long ? pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " + clock : clock;
  }

  function rewrite(root) {
    var ticks = root.querySelectorAll("[data-cpu-chart] text[data-ts]");
    for (var i = 0; i < ticks.length; i++) {
      var date = new Date(ticks[i].getAttribute("data-ts"));
      if (!isNaN(date.getTime())) {
        ticks[i].textContent = label(date, ticks[i].hasAttribute("data-long"));
      }
    }
  }

  function zoneName() {
    var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(new Date());
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].type === "timeZoneName") {
        return parts[i].value;
      }
    }
    return null;
  }

  function localise(root) {
    rewrite(root);
    var zone = zoneName();
    var names = root.querySelectorAll("[data-cpu-chart] [data-chart-zone]");
    for (var i = 0; zone && i < names.length; i++) {
      names[i].textContent = zone;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
  });
  // A chart that came after the page (app.js: data-load-url) is put in the zone too.
  document.addEventListener("autosre:updated", function (event) {
    if (event.target && event.target.querySelectorAll) {
      localise(event.target);
    }
  });
})();
