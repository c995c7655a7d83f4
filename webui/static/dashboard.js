// The dashboard's host filters: typing in the search box (or choosing a state or group)
// narrows the host table at once, from the server (the same fragment the page polls), and
// points the table's polling at the filtered URL so each refresh keeps the filter. The
// address bar follows, so a reload or a shared link shows the same hosts. Without script
// the form is a plain GET: the page comes back filtered.
(function () {
  "use strict";

  var WAIT_MS = 250; // after the last key stroke: one request per pause, not per key
  var FILTERS = ["q", "state", "group"];

  function query(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && value.trim() !== "") {
        params.set(key, value.trim());
      }
    });
    return params;
  }

  function setUp(form) {
    var target = document.getElementById(form.getAttribute("data-target"));
    var base = form.getAttribute("data-fragment-url");
    if (!target || !base) {
      return;
    }
    var timer = null;
    var latest = 0;

    // The filters also travel in the summary's window links (and its polling, which
    // redraws them), and "Clear" shows whenever a filter is set.
    function carry(params) {
      var summary = document.getElementById(form.getAttribute("data-summary") || "");
      var links = summary ? summary.querySelectorAll("a[data-window]") : [];
      var urls = [];
      for (var i = 0; i < links.length; i++) {
        urls.push([links[i], "href"]);
      }
      if (summary && summary.hasAttribute("data-poll-url")) {
        urls.push([summary, "data-poll-url"]);
      }
      urls.forEach(function (pair) {
        var url = new URL(pair[0].getAttribute(pair[1]), window.location.href);
        FILTERS.forEach(function (name) {
          url.searchParams.delete(name);
          if (params.has(name)) {
            url.searchParams.set(name, params.get(name));
          }
        });
        pair[0].setAttribute(pair[1], url.pathname + url.search);
      });
      var clear = form.querySelector("[data-filter-clear]");
      if (clear) {
        clear.hidden = !FILTERS.some(function (name) {
          return params.has(name);
        });
      }
    }

    function apply() {
      var params = query(form);
      var pageParams = new URLSearchParams(params);
      params.delete("window"); // the summary's, not the table's
      carry(params);
      var url = base + (params.toString() ? "?" + params.toString() : "");
      target.setAttribute("data-poll-url", url);
      var page = window.location.pathname + (pageParams.toString() ? "?" + pageParams : "");
      window.history.replaceState(null, "", page);
      var mine = ++latest;
      fetch(url, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "text/html" },
      })
        .then(function (response) {
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && mine === latest) {
            // only the answer to the newest request: typing fast never shows an older list
            target.innerHTML = html;
            target.dispatchEvent(new CustomEvent("autosre:updated", { bubbles: true }));
          }
        })
        .catch(function () {
          // unreachable: app.js's polling shows the offline marker and retries
        });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(apply, WAIT_MS);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      window.clearTimeout(timer);
      apply();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-host-filter]");
    for (var i = 0; i < forms.length; i++) {
      setUp(forms[i]);
    }
  });
})();
