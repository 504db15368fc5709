// Background exports (后台导出): while an export is being written, fetch its page every few seconds
// and put its new status in place (a progress bar, then the download link). The status region is
// aria-live, so a screen reader hears the change; nothing reloads under the reader's feet. Without
// JavaScript, the page's "Refresh" link does the same by hand.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  function unfinished() {
    return document.querySelectorAll('.export-run[data-status="queued"], .export-run[data-status="running"]');
  }
  function poll() {
    if (!unfinished().length) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          unfinished().forEach(function (old) {
            var now = fresh.getElementById(old.id);
            if (now && (now.getAttribute("data-status") !== old.getAttribute("data-status")
                        || now.innerHTML !== old.innerHTML)) {
              old.setAttribute("data-status", now.getAttribute("data-status"));
              old.innerHTML = now.innerHTML;
            }
          });
        }
        window.setTimeout(poll, EVERY_MS);
      })
      .catch(function () { window.setTimeout(poll, EVERY_MS * 2); });
  }
  window.setTimeout(poll, EVERY_MS);
})();
