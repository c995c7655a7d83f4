// Times in the viewer's zone. The server writes every time in UTC:
//   <time datetime="2026-12-01T09:55:10Z">2026-12-01 09:55:10 UTC</time>
// which reads correctly without JavaScript. This rewrites each one to the browser's zone,
// named (Intl's short zone name, e.g. "EST"), with a relative time beside it ("3 min ago",
// "in 58 min"); the UTC original stays in the title. data-time-style="clock" shows the
// time of day only. Re-run every 30 s, and on content the live refresh replaced
// (app.js fires "autosre:updated" on the element it filled).
(function () {
  "use strict";

  var EVERY_MS = 30 * 1000;
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
  });

  function parts(date) {
    var out = {};
    format.formatToParts(date).forEach(function (part) {
      out[part.type] = part.value;
    });
    return out;
  }

  // Fixed "YYYY-MM-DD HH:MM:SS ZONE" whatever the locale: the same shape as the UTC text.
  function local(date, clockOnly) {
    var p = parts(date);
    var clock = p.hour + ":" + p.minute + ":" + p.second + " " + p.timeZoneName;
    return clockOnly ? clock : p.year + "-" + p.month + "-" + p.day + " " + clock;
  }

  function relative(date, now) {
    var seconds = Math.round((now - date.getTime()) / 1000);
    var past = seconds >= 0;
    var n = Math.abs(seconds);
    var text;
    if (n < 10) {
      return "just now";
    } else if (n < 60) {
      text = n + " s";
    } else if (n < 3600) {
      text = Math.floor(n / 60) + " min";
    } else if (n < 86400) {
      text = Math.floor(n / 3600) + " h";
    } else {
      text = Math.floor(n / 86400) + " d";
    }
    return past ? text + " ago" : "in " + text;
  }

  function rewrite(element, now) {
    var date = new Date(element.getAttribute("datetime"));
    if (isNaN(date.getTime())) {
      return; // not a full timestamp: leave the server's text
    }
    if (!element.hasAttribute("data-utc")) {
      element.setAttribute("data-utc", element.textContent);
      element.title = element.textContent;
    }
    var clockOnly = element.getAttribute("data-time-style") === "clock";
    var text = local(date, clockOnly);
    if (!clockOnly) {
      text += " (" + relative(date, now) + ")";
    }
    if (element.textContent !== text) {
      element.textContent = text;
    }
  }

  function rewriteAll(root) {
    var now = Date.now();
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      rewrite(times[i], now);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    rewriteAll(document);
    window.setInterval(function () {
      rewriteAll(document);
    }, EVERY_MS);
  });
  document.addEventListener("autosre:updated", function (event) {
    rewriteAll(event.target);
  });
})();
