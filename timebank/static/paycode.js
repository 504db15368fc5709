// The live pay code: ask for a code (QR and its eight-digit number), count down on this phone's own
// clock, ask for the next one shortly before the shown one expires, and watch whether a sale used it.
//
// * Offline: the countdown goes on without the network; when it reaches zero the code is greyed out
//   and marked expired, so nobody shows a code the till would refuse. When the network is back, a new
//   code replaces it.
// * After a sale: the page asks every few seconds what became of its code; once a sale has used it,
//   it shows the household's new balance and fetches a new code.
(function () {
  "use strict";
  var box = document.getElementById("paycode");
  if (!box) { return; }
  var qr = document.getElementById("paycode-qr");
  var number = document.getElementById("paycode-number");
  var line = document.getElementById("paycode-countdown");
  var expired = document.getElementById("paycode-expired");
  var paid = document.getElementById("paycode-paid");
  var points = document.getElementById("paycode-points");
  var token = document.querySelector('meta[name="csrf-token"]');
  var POLL_MS = 3000;      // how often to ask whether a sale used the code
  var RETRY_MS = 5000;     // after a failed request for a code
  var code = null;         // {id, deadline}: the deadline on this phone's clock, in ms
  var asking = false;
  var polling = false;
  var askAt = 0;
  var pollAt = 0;

  function count(name) { box.dataset[name] = String((Number(box.dataset[name]) || 0) + 1); }

  function show() {
    if (!code) { return; }
    var left = Math.ceil((code.deadline - Date.now()) / 1000);
    if (left <= 0) {
      box.dataset.state = "expired";
      expired.hidden = false;
      line.textContent = box.dataset.textExpired;
    } else {
      box.dataset.state = "valid";
      expired.hidden = true;
      line.textContent = box.dataset.textLeft.replace("{s}", String(left));
    }
  }

  function ask() {
    asking = true;
    fetch(box.dataset.issueUrl, {method: "POST", credentials: "same-origin", cache: "no-store",
                                 headers: {"Accept": "application/json", "X-CSRFToken": token ? token.content : ""}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        var now = Date.now();
        code = {id: data.id, deadline: now + data.seconds_left * 1000};
        qr.innerHTML = data.svg;
        qr.dataset.code = data.pay_code;
        number.textContent = data.short_code.slice(0, 4) + " " + data.short_code.slice(4);
        number.dataset.code = data.short_code;
        points.textContent = String(data.points);
        // The next code is asked for when a sixth of this one's life is left (20 s of 2 minutes).
        var margin = Math.min(20, Math.max(1, Math.floor(data.seconds_left / 6)));
        askAt = now + Math.max(1, data.seconds_left - margin) * 1000;
        pollAt = now + POLL_MS;
        count("refreshed");
        show();
      })
      .catch(function () {
        askAt = Date.now() + RETRY_MS;
        if (!code) { line.textContent = box.dataset.textFailed; }
      })
      .then(function () { asking = false; });
  }

  function poll() {
    polling = true;
    fetch(box.dataset.statusUrl + "?id=" + encodeURIComponent(code.id),
          {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        points.textContent = String(data.points);
        if (data.state === "spent") {
          paid.textContent = box.dataset.textPaid.replace("{points}", String(data.points));
          paid.hidden = false;
          count("paid");
          askAt = 0;  // this code is spent: show the next one now
        }
      })
      .catch(function () { /* offline: the countdown goes on; the next poll tries again */ })
      .then(function () { polling = false; pollAt = Date.now() + POLL_MS; });
  }

  function tick() {
    show();
    if (asking || polling) { return; }
    var now = Date.now();
    if (now >= askAt) { ask(); } else if (code && box.dataset.state === "valid" && now >= pollAt) { poll(); }
  }

  ask();
  window.setInterval(tick, 1000);
})();
