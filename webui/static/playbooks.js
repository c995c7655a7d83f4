// The run page: app.js polls the progress fragment; once it says the run is over,
// reload once so the page is rendered without polling.
(function () {
  "use strict";

  document.addEventListener("autosre:updated", function (event) {
    var element = event.target;
    if (element && element.id === "run-progress" && element.querySelector("[data-run-done]")) {
      window.location.reload();
    }
  });
})();
