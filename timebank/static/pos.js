// The till: keeps the focus where the barcode scanner types, sends the till's GET forms in the
// background and swaps the till's part of the page, and queues scans made while it is busy.
// Without this script every step is an ordinary form and still works.
//
// Charging sends the confirm form in the background too. Its one-time form_key, made when the page
// was rendered, is the key of this sale attempt: a 503 (the system is busy, or its commit failed
// although the sale may have been written) or a network error shows a message with a retry button,
// and the retry sends the very same fields, the same key included, so the sale is done at most once.
// A new key comes only with a new page, that is with the next sale.
(function () {
  "use strict";
  var busy = false;
  var queue = [];          // goods codes scanned while a request was on its way

  function pos() { return document.getElementById("pos"); }

  function focusField() {
    var box = pos();
    if (!box) { return; }
    var want = box.dataset.focus;
    var field = want === "member" ? document.getElementById("member") : document.getElementById("scan");
    if (want === "results") {
      var first = box.querySelector("#search-results a");
      if (first) { first.focus(); return; }
    }
    if (field) { field.focus(); field.select(); }
  }

  function swap(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("pos");
    var scan = document.getElementById("scan");
    var typed = scan ? scan.value : "";   // typed after the request left: keep it
    if (!fresh) { if (url) { window.location.href = url; } return; }
    pos().replaceWith(fresh);
    if (url) { window.history.replaceState(null, "", url); }
    bind();
    focusField();
    var newScan = document.getElementById("scan");
    if (newScan && typed) { newScan.value = typed; }
  }
  function send(url) {
    busy = true;
    pos().setAttribute("aria-busy", "true");
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html", "X-Requested-With": "pos"}})
      .then(function (r) { return r.text().then(function (t) { return [t, r.url]; }); })
      .then(function (pair) { swap(pair[0], pair[1]); })
      .catch(function () { window.location.href = url; })
      .then(function () {
        busy = false;
        if (queue.length) { submitScan(queue.shift()); }
      });
  }

  // Charge: POST the confirm form's fields (``body``, fixed for this sale attempt) and show the answer.
  function charge(action, body) {
    busy = true;
    var notice = document.getElementById("pos-busy");
    if (notice) { notice.hidden = true; }
    pos().setAttribute("aria-busy", "true");
    return fetch(action, {method: "POST", credentials: "same-origin", cache: "no-store", body: body,
                          headers: {"Content-Type": "application/x-www-form-urlencoded",
                                    "Accept": "text/html", "X-Requested-With": "pos"}})
      .then(function (r) {
        if (r.status >= 500) { throw new Error("busy: " + r.status); }   // 503, or a proxy's 502/504
        return r.text().then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          if (!doc.getElementById("pos")) {          // a refusal page of its own (expired login, 403)
            document.open(); document.write(html); document.close();
            return;
          }
          swap(html, r.redirected ? r.url : null);
        });
      })
      .catch(function () { offerRetry(action, body); })
      .then(function () {
        busy = false;
        var box = pos();
        if (box) { box.removeAttribute("aria-busy"); }
        if (queue.length) { submitScan(queue.shift()); }
      });
  }

  function offerRetry(action, body) {
    var notice = document.getElementById("pos-busy");
    var retry = document.getElementById("pos-retry");
    var button = document.getElementById("confirm");
    if (button) { button.classList.remove("sending"); }
    if (!notice || !retry) { return; }
    notice.hidden = false;
    retry.onclick = function () {
      if (!busy) { charge(action, body); }   // the same fields: the same form_key
    };
    // When the network comes back, the same sending goes again by itself (same fields, same key).
    window.addEventListener("online", function again() {
      window.removeEventListener("online", again);
      if (!busy && !notice.hidden) { charge(action, body); }
    });
    retry.focus();
  }

  function formUrl(form) {
    var params = new URLSearchParams(new FormData(form));
    return form.action + "?" + params.toString();
  }

  function submitScan(code) {
    var form = document.getElementById("scan-form");
    var field = document.getElementById("scan");
    if (!form || !field) { return; }
    field.value = code;
    var url = formUrl(form);
    field.value = "";
    send(url);
  }

  function bind() {
    var box = pos();
    if (!box) { return; }
    var scanForm = document.getElementById("scan-form");
    var memberForm = document.getElementById("member-form");
    var confirmForm = document.getElementById("confirm-form");
    if (scanForm) {
      scanForm.addEventListener("submit", function (event) {
        event.preventDefault();
        var field = document.getElementById("scan");
        var code = field.value.trim();
        if (!code) {
          var button = document.getElementById("confirm");
          if (button && !button.disabled) { button.focus(); }
          return;
        }
        if (busy) { queue.push(code); field.value = ""; return; }
        submitScan(code);
      });
    }
    if (memberForm) {
      memberForm.addEventListener("submit", function (event) {
        event.preventDefault();
        if (busy) { return; }
        send(formUrl(memberForm));
      });
    }
    Array.prototype.forEach.call(box.querySelectorAll("a.pos-link"), function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        if (!busy) { send(link.href); }
      });
    });
    if (confirmForm) {
      confirmForm.addEventListener("submit", function (event) {
        event.preventDefault();
        if (confirmForm.dataset.sent) { return; }   // a double click charges once
        if (!navigator.onLine && navigator.serviceWorker && navigator.serviceWorker.controller) {
          // Known to be offline before anything was sent: the offline till (same address, same
          // basket) keeps this sale on the device and sends it later (static/till.js).
          window.location.replace(window.location.href);
          return;
        }
        confirmForm.dataset.sent = "1";
        var button = document.getElementById("confirm");
        if (button) { button.setAttribute("aria-disabled", "true"); button.classList.add("sending"); }
        // Read once: every retry of this sale attempt sends exactly these fields.
        var body = new URLSearchParams(new FormData(confirmForm)).toString();
        charge(confirmForm.action, body);
      });
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && pos()) {
      var next = document.getElementById("next-member");
      if (next) { event.preventDefault(); next.click(); }
    }
  });

  bind();
  focusField();
})();
