// Small helpers for every page (CSP forbids inline scripts, so pages use data attributes).
//
// Polling: <div data-poll-url="/fragment" data-poll-every="5">...</div> has its content
// replaced by the HTML that URL returns, every N seconds (default 10, at least 1). The URL is
// read at each refresh, so a script may change it (the dashboard's host filters do).
// Same-origin URLs only; the session cookie goes along. After each update the element
// gets an "autosre:updated" event. A session that ended reloads the page (to sign in).
// data-status-url works the same way: the status every page shows (base.html: freshness
// bar, the menu's count), kept apart from the page's own polled content.
//
// Loading once: <section data-load-url="/fragment">...</section> gets that URL's HTML once
// the page is shown (a part that may be slow, such as a chart from Prometheus, then never
// holds the page). Its [data-load-pending] shows meanwhile, [data-load-failed] if no answer
// came; an answer with no content (204) removes the element.
//
// Offline: when a refresh gets no answer (or a gateway's 502/504, or a 503), the element
// [data-offline-marker] is shown, saying since when the page has not been updated; the
// next refresh that gets an answer hides it.
(function () {
  "use strict";

  var lastAnswer = new Date();

  function offline(down) {
    var marker = document.querySelector("[data-offline-marker]");
    if (!marker) {
      return;
    }
    if (!down) {
      lastAnswer = new Date();
      marker.hidden = true;
      return;
    }
    var since = marker.querySelector("[data-offline-since]");
    if (since) {
      since.textContent = lastAnswer.toLocaleTimeString(undefined, { timeZoneName: "short" });
    }
    marker.hidden = false;
  }

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  function pollUrl(element) {
    return element.getAttribute("data-poll-url") || element.getAttribute("data-status-url");
  }

  function poll(element) {
    var every = Math.max(1, parseFloat(element.getAttribute("data-poll-every")) || 10);
    if (!pollUrl(element)) {
      return;
    }
    var busy = false;

    function refresh() {
      // Read each time: a filter (dashboard.js) may have pointed the element elsewhere.
      var url = pollUrl(element);
      if (busy || document.hidden || !url || !sameOrigin(url)) {
        return; // no overlapping requests, nothing while the tab is in the background
      }
      busy = true;
      fetch(url, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "text/html" },
      })
        .then(function (response) {
          // No app behind the proxy (502, 504) or no store (503): not answering, for the user.
          offline(response.status === 502 || response.status === 503 || response.status === 504);
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
          // An answer for a URL since replaced (a filter changed meanwhile) is dropped.
          if (html !== null && pollUrl(element) === url) {
            element.innerHTML = html;
            element.dispatchEvent(new CustomEvent("autosre:updated", { bubbles: true }));
          }
        })
        .catch(function () {
          // the server is restarting or unreachable: keep the last content, say so, retry
          offline(true);
        })
        .then(function () {
          busy = false;
        });
    }

    window.setInterval(refresh, every * 1000);
  }

  function load(element) {
    var url = element.getAttribute("data-load-url");
    if (!url || !sameOrigin(url)) {
      return;
    }
    function show(selector) {
      var found = element.querySelector(selector);
      if (found) {
        found.hidden = false;
      }
    }
    show("[data-load-pending]");
    fetch(url, {
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", Accept: "text/html" },
    })
      .then(function (response) {
        if (response.status === 204) {
          element.remove();
          return "";
        }
        return response.ok && !response.redirected ? response.text() : null;
      })
      .catch(function () {
        return null;
      })
      .then(function (html) {
        if (html === null) {
          var pending = element.querySelector("[data-load-pending]");
          if (pending) {
            pending.hidden = true;
          }
          show("[data-load-failed]");
        } else if (html !== "") {
          element.innerHTML = html;
          element.dispatchEvent(new CustomEvent("autosre:updated", { bubbles: true }));
        }
      });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  window.AutoSRE = { csrfToken: csrfToken };

  document.addEventListener("DOMContentLoaded", function () {
    var elements = document.querySelectorAll("[data-poll-url], [data-status-url]");
    for (var i = 0; i < elements.length; i++) {
      poll(elements[i]);
    }
    var once = document.querySelectorAll("[data-load-url]");
    for (var j = 0; j < once.length; j++) {
      load(once[j]);
    }
  });
})();
