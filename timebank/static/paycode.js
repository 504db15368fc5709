// The live pay code: fetch a fresh code shortly before the shown one expires, and count down.
(function () {
  "use strict";
  var box = document.getElementById("paycode");
  if (!box) { return; }
  var qr = document.getElementById("paycode-qr");
  var line = document.getElementById("paycode-countdown");
  var MARGIN = 20;       // seconds before expiry to fetch the next code
  var refreshIn = 0;

  function plan(secondsLeft) {
    refreshIn = Math.max(5, secondsLeft - MARGIN);
    show();
  }
  function show() {
    line.textContent = box.dataset.textLeft.replace("{s}", String(refreshIn));
  }
  function refresh() {
    fetch(box.dataset.url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        qr.innerHTML = data.svg;
        qr.dataset.code = data.pay_code;
        box.dataset.refreshed = String((Number(box.dataset.refreshed) || 0) + 1);
        plan(data.seconds_left);
      })
      .catch(function () {
        line.textContent = box.dataset.textFailed;
        refreshIn = 5;
      });
  }
  plan(Number(box.dataset.secondsLeft) || 0);
  window.setInterval(function () {
    refreshIn -= 1;
    if (refreshIn <= 0) { refreshIn = 1000; refresh(); } else { show(); }
  }, 1000);
})();
