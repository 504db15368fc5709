// The venue's check-in QR: fetch the next code just after the current one rotates, forever.
(function () {
  "use strict";
  var box = document.getElementById("venue");
  if (!box) { return; }
  var qr = document.getElementById("venue-qr");
  var count = document.getElementById("venue-count");
  var note = document.getElementById("venue-note");
  var noteText = note.textContent;

  function schedule(seconds) {
    window.setTimeout(refresh, Math.max(1, seconds) * 1000 + 300);
  }
  function refresh() {
    fetch(box.dataset.url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        qr.innerHTML = data.svg;
        qr.dataset.codeUrl = data.url;
        box.dataset.refreshed = String((Number(box.dataset.refreshed) || 0) + 1);
        count.textContent = box.dataset.textCount.replace("{n}", String(data.checked_in))
          .replace("{slots}", String(data.slots));
        note.textContent = noteText;
        schedule(data.seconds_to_rotation);
      })
      .catch(function () { note.textContent = box.dataset.textFailed; schedule(5); });
  }
  schedule(Number(box.dataset.seconds) || 30);
})();
