// Small helpers for every page (CSP forbids inline scripts, so pages use data attributes).
//
// Polling: <div data-poll-url="/fragment" data-poll-every="5">...</div> has its content
// replaced by the HTML that URL returns, every N seconds (default 10, at least 1).
// Same-origin URLs only; the session cookie goes along. After each update the element
// gets an "autosre:updated" event. A session that ended reloads the page (to sign in).
(function () {
  "use strict";

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  function poll(element) {
    var url = element.getAttribute("data-poll-url");
    var every = Math.max(1, parseFloat(element.getAttribute("data-poll-every")) || 10);
    if (!url || !sameOrigin(url)) {
      return;
    }
    var busy = false;

    function refresh() {
      if (busy || document.hidden) {
        return; // no overlapping requests, nothing while the tab is in the background
      }
      busy = true;
      fetch(url, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "text/html" },
      })
        .then(function (response) {
          if (response.redirected && !sameOrigin(response.url)) {
            return null;
          }
          if (response.redirected || response.status === 401) {
            window.location.reload(); // signed out: show the login page
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            element.innerHTML = html;
            element.dispatchEvent(new CustomEvent("autosre:updated", { bubbles: true }));
          }
        })
        .catch(function () {
          // the server is restarting or unreachable: keep the last content, try again later
        })
        .then(function () {
          busy = false;
        });
    }

    window.setInterval(refresh, every * 1000);
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  window.AutoSRE = { csrfToken: csrfToken };

  document.addEventListener("DOMContentLoaded", function () {
    var elements = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < elements.length; i++) {
      poll(elements[i]);
    }
  });
})();
