// Run progress on the account page: polls the run's JSON while it is going, then reloads the page once so the
// server renders the result. Without JavaScript the panel still says how to see the result (reload).
"use strict";
(function () {
  function poll(panel) {
    var url = panel.getAttribute("data-poll");
    var status = document.getElementById("progress-status");
    var started = Date.now();
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (run) {
          status.setAttribute("data-status", run.status);
          if (run.done) {
            status.textContent = "Finished: " + run.status.toLowerCase() + ". Loading the result…";
            window.location.reload();
            return;
          }
          var seconds = Math.round((Date.now() - started) / 1000);
          status.textContent = "Running (" + run.status.toLowerCase() + "), " + seconds + " s so far…";
          window.setTimeout(tick, 1000);
        })
        .catch(function (err) {
          status.textContent = "Could not read the run's progress (" + err.message + "); reload the page.";
        });
    }
    tick();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.querySelector("[data-poll]");
    if (panel) { poll(panel); }
  });
})();
