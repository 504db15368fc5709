// The till through a network cut (both till pages; the settings are in #till-config).
//
// * Registers the till's service worker, which keeps the offline till page, the goods list and this
//   script, and shows the offline page instead of the browser's "no internet" page.
// * Shows the 离线 banner while the browser is offline. On the online till, going offline reloads the
//   same address, which the service worker answers with the offline till (the basket is kept: it
//   is in the address).
// * On the offline till (#pos[data-mode=local]): the card, the goods and the basket work against the
//   kept goods list. Charging gives the sale its Idempotency-Key there and then and keeps it in this
//   browser (localStorage, one queue per clerk). A phone pay code is refused offline: it expires
//   within two minutes, long before a queued sale is sent (docs/supermarket.md).
// * The queue is sent to POST /api/v1/redemptions, in order, as soon as the network is back (the
//   "online" event, on every page load, and again every 15 seconds while sales wait). Each keeps its
//   key, so a sale sent twice (an answer lost on the way) is charged once. The ledger decides: a
//   refusal (not enough points or stock, the monthly limit, an unknown card) is shown with the sale,
//   in words, as is each receipt.
(function () {
  "use strict";
  var box = document.getElementById("till-config");
  if (!box) { return; }
  var S = JSON.parse(box.dataset.settings);
  var T = S.texts;
  var QUEUE_KEY = "timebank.till.queue." + S.user;
  var GOODS_KEY = "timebank.till.goods." + S.user;
  var KEEP_FINISHED = 50;
  var RETRY_MS = 15000;
  var sending = false;
  var retryTimer = null;

  function $(id) { return document.getElementById(id); }
  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (all, name) {
      return values[name] === undefined ? all : String(values[name]);
    });
  }
  function local() { var pos = $("pos"); return pos && pos.dataset.mode === "local"; }

  // --- the service worker -----------------------------------------------------------------------
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(S.sw_url, {scope: S.scope}).catch(function () { /* http: no offline */ });
  }

  // --- the queue ------------------------------------------------------------------------------------
  function readQueue() {
    try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"); } catch (e) { return []; }
  }
  function writeQueue(queue) {
    var finished = queue.filter(function (s) { return s.status !== "queued"; });
    if (finished.length > KEEP_FINISHED) {
      var drop = finished.slice(0, finished.length - KEEP_FINISHED);
      queue = queue.filter(function (s) { return drop.indexOf(s) === -1; });
    }
    localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
  }
  function update(key, changes) {
    var queue = readQueue();
    queue.forEach(function (sale) {
      if (sale.key === key) { Object.keys(changes).forEach(function (k) { sale[k] = changes[k]; }); }
    });
    writeQueue(queue);
  }
  function newKey() {
    if (window.crypto && crypto.randomUUID) { return "till-" + crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "till-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function renderQueue() {
    var section = $("till-queue-box");
    var list = $("till-queue");
    if (!section || !list) { return; }
    var queue = readQueue();
    section.hidden = queue.length === 0;
    list.textContent = "";
    var waiting = 0;
    queue.slice().reverse().forEach(function (sale) {
      var item = document.createElement("li");
      item.dataset.key = sale.key;
      item.dataset.status = sale.status;
      item.className = "till-sale " + sale.status;
      var head = document.createElement("div");
      head.className = "head";
      var title = document.createElement("span");
      title.className = "title";
      title.textContent = sale.names + " · " + sale.member;
      var amount = document.createElement("span");
      amount.className = "amount minus";
      amount.textContent = "−" + sale.total;
      head.appendChild(title);
      head.appendChild(amount);
      var outcome = document.createElement("div");
      outcome.className = "outcome";
      if (sale.status === "sent") {
        outcome.textContent = fill(T.sent, {no: sale.receipt_no, total: sale.total, balance: sale.balance_after});
      } else if (sale.status === "refused") {
        outcome.textContent = fill(T.refused, {reason: sale.reason});
        outcome.setAttribute("role", "alert");
      } else {
        waiting += 1;
        outcome.textContent = fill(T.queued, {time: new Date(sale.at).toLocaleString()});
      }
      item.appendChild(head);
      item.appendChild(outcome);
      list.appendChild(item);
    });
    var summary = $("till-queue-summary");
    if (summary) { summary.textContent = waiting ? fill(T.waiting, {n: waiting}) : ""; }
  }

  function stop(note) {
    var summary = $("till-queue-summary");
    if (summary && note) { summary.textContent = note; }
    if (!retryTimer) {
      retryTimer = setTimeout(function () { retryTimer = null; send(); }, RETRY_MS);
    }
  }

  function outcomeOf(status, body) {
    if (status === 201 || status === 200) {
      return {status: "sent", receipt_no: body.receipt_no, balance_after: body.balance_after, redemption_id: body.id};
    }
    if (status === 401 || status >= 500 || status === 429 || (status === 403 && body.error === "csrf_failed")) {
      return null;  // not decided: sent again later (same key)
    }
    var code = body.error || "refused";
    return {status: "refused", code: code, reason: S.refusals[code] || body.detail || String(status)};
  }

  function sendOne(sale, token) {
    return fetch(S.api_url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "Idempotency-Key": sale.key, "X-CSRFToken": token},
      body: JSON.stringify({member_code: sale.member, lines: sale.lines})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return {status: response.status, body: body};
      });
    });
  }

  function sendQueued() {
    var pending = readQueue().filter(function (s) { return s.status === "queued"; });
    if (!pending.length) { return Promise.resolve(); }
    // A fresh CSRF token (and goods list) first: the page's may be older than the token's lifetime.
    return fetch(S.goods_url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.redirected || response.status === 401) { throw new Error("login"); }
        if (!response.ok) { throw new Error("busy"); }
        return response.json();
      })
      .then(function (goods) {
        keepGoods(goods);
        var chain = Promise.resolve(true);
        pending.forEach(function (sale) {
          chain = chain.then(function (going) {
            if (!going) { return false; }
            return sendOne(sale, goods.csrf_token).then(function (answer) {
              var outcome = outcomeOf(answer.status, answer.body);
              if (!outcome) {
                if (answer.status === 401) { throw new Error("login"); }
                return false;
              }
              update(sale.key, outcome);
              renderQueue();
              return true;
            });
          });
        });
        return chain;
      })
      .then(function (finished) {
        if (finished === false) { stop(); }
      })
      .catch(function (error) {
        stop(error && error.message === "login" ? T.login : null);
      });
  }

  function send() {
    if (sending || !navigator.onLine) { return; }
    if (!readQueue().some(function (s) { return s.status === "queued"; })) { return; }
    sending = true;
    var run = function () { return sendQueued(); };
    var done = function () { sending = false; renderQueue(); };
    // One sender at a time, across the tabs of this browser.
    var going = navigator.locks ? navigator.locks.request("timebank-till-queue", run) : run();
    going.then(done, done);
  }

  // --- online and offline ---------------------------------------------------------------------------
  function showState() {
    var offline = !navigator.onLine;
    var banner = $("offline-banner");
    if (banner) { banner.hidden = !offline; }
    var back = $("online-banner");
    if (back) { back.hidden = offline || !local(); }
    var link = $("back-online");
    if (link) { link.href = onlineAddress(); }
  }

  window.addEventListener("offline", function () {
    showState();
    // On the online till, let the service worker answer with the offline till (same address, same basket).
    if (!local() && navigator.serviceWorker && navigator.serviceWorker.controller) {
      window.location.replace(window.location.href);
    }
  });
  window.addEventListener("online", function () { showState(); send(); });

  // --- the offline till -------------------------------------------------------------------------------
  var goods = null;            // {items: [...], as_of}
  var member = null;
  var basket = [];             // [[item id, quantity]] in the order first scanned

  function keepGoods(data) {
    if (!data || !data.items) { return; }
    goods = data;
    try { localStorage.setItem(GOODS_KEY, JSON.stringify({items: data.items, as_of: data.as_of})); } catch (e) { /* full */ }
    showGoodsAge();
  }
  function showGoodsAge() {
    var age = $("goods-as-of");
    if (age && goods) { age.textContent = fill(T.goods_as_of, {time: new Date(goods.as_of).toLocaleString()}); }
  }
  function loadGoods() {
    return fetch(S.goods_url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok || r.redirected) { throw new Error("no list"); } return r.json(); })
      .then(keepGoods)
      .catch(function () {
        try { goods = JSON.parse(localStorage.getItem(GOODS_KEY) || "null"); } catch (e) { goods = null; }
        if (goods) { showGoodsAge(); } else { say(T.no_goods_list, true); }
      });
  }
  function byId(id) {
    if (!goods) { return null; }
    for (var i = 0; i < goods.items.length; i += 1) { if (goods.items[i].id === id) { return goods.items[i]; } }
    return null;
  }
  function queuedUnits(id) {
    var units = 0;
    readQueue().forEach(function (sale) {
      if (sale.status !== "queued") { return; }
      sale.lines.forEach(function (line) { if (line.item_id === id) { units += line.quantity; } });
    });
    return units;
  }

  function say(text, bad) {
    var note = $("pos-note");
    var error = $("pos-error");
    if (note) { note.hidden = true; }
    if (error) { error.hidden = true; }
    var target = bad ? error : note;
    if (target && text) { target.textContent = text; target.hidden = false; }
  }

  function onlineAddress() {
    var params = new URLSearchParams();
    if (member) { params.append("member", member); }
    basket.forEach(function (pair) {
      for (var n = 0; n < pair[1]; n += 1) { params.append("item", String(pair[0])); }
    });
    var query = params.toString();
    return S.online_url + (query ? (S.online_url.indexOf("?") === -1 ? "?" : "&") + query : "");
  }

  function units() { return basket.reduce(function (sum, pair) { return sum + pair[1]; }, 0); }

  function add(id) {
    if (units() >= 200) { say(T.full, true); return; }
    for (var i = 0; i < basket.length; i += 1) {
      if (basket[i][0] === id) { basket[i][1] += 1; draw(); return; }
    }
    basket.push([id, 1]);
    draw();
  }
  function remove(id) {
    basket = basket.map(function (pair) { return pair[0] === id ? [id, pair[1] - 1] : pair; })
      .filter(function (pair) { return pair[1] > 0; });
    draw();
  }

  function draw() {
    var memberBox = $("member-box");
    var memberForm = $("member-form");
    if (memberBox) { memberBox.hidden = !member; }
    if (memberForm) { memberForm.hidden = !!member; }
    if (member) { $("member-household").textContent = fill(T.card, {card: member}); }
    var table = $("pos-lines");
    var body = table.querySelector("tbody");
    body.textContent = "";
    var total = 0;
    basket.forEach(function (pair) {
      var item = byId(pair[0]);
      if (!item) { return; }
      var points = item.price_points * pair[1];
      total += points;
      var row = document.createElement("tr");
      row.dataset.item = String(item.id);
      var name = document.createElement("td");
      if (item.photo_url) {
        var img = document.createElement("img");
        img.className = "goods-photo"; img.src = item.photo_url; img.alt = ""; img.width = 56; img.height = 56;
        name.appendChild(img);
      }
      var strong = document.createElement("strong");
      strong.textContent = item.name;
      name.appendChild(strong);
      var small = document.createElement("small");
      var words = [fill(T.each, {n: item.price_points})];
      var left = item.on_hand - queuedUnits(item.id);
      if (left < pair[1]) { words.push(fill(T.short, {n: Math.max(left, 0)})); }
      if (item.monthly_limit_per_household) { words.push(fill(T.limit, {n: item.monthly_limit_per_household})); }
      small.textContent = " " + words.join(" · ");
      name.appendChild(document.createElement("br"));
      name.appendChild(small);
      var qty = document.createElement("td"); qty.className = "num qty"; qty.textContent = String(pair[1]);
      var sum = document.createElement("td"); sum.className = "num"; sum.textContent = String(points);
      var minusCell = document.createElement("td"); minusCell.className = "num";
      var minus = document.createElement("button");
      minus.type = "button"; minus.className = "linklike minus"; minus.textContent = "−1";
      minus.setAttribute("aria-label", fill(T.one_less, {name: item.name}));
      minus.addEventListener("click", function () { remove(item.id); });
      minusCell.appendChild(minus);
      row.appendChild(name); row.appendChild(qty); row.appendChild(sum); row.appendChild(minusCell);
      body.appendChild(row);
    });
    table.hidden = basket.length === 0;
    $("pos-empty").hidden = basket.length !== 0;
    $("pos-total").textContent = String(total);
    $("pos-units").textContent = String(units());
    var confirm = $("confirm");
    if (confirm) {
      confirm.textContent = fill(T.charge, {total: total});
      confirm.disabled = !member || basket.length === 0;
    }
    window.history.replaceState(null, "", onlineAddress());
    showState();
    return total;
  }

  function focusField() {
    var field = member ? $("scan") : $("member");
    if (field) { field.focus(); }
  }

  function showResults(found) {
    var list = $("search-results");
    list.textContent = "";
    found.forEach(function (item) {
      var li = document.createElement("li");
      var head = document.createElement("div"); head.className = "head";
      var title = document.createElement("span"); title.className = "title"; title.textContent = item.name;
      var price = document.createElement("span"); price.textContent = fill(T.each, {n: item.price_points});
      head.appendChild(title); head.appendChild(price);
      var button = document.createElement("button");
      button.type = "button"; button.className = "btn secondary"; button.textContent = T.add_one;
      button.addEventListener("click", function () { list.hidden = true; add(item.id); focusField(); });
      li.appendChild(head); li.appendChild(button);
      list.appendChild(li);
    });
    list.hidden = found.length === 0;
    var first = list.querySelector("button");
    if (first) { first.focus(); }
  }

  function scan(text) {
    say(null);
    $("search-results").hidden = true;
    if (!goods) { say(T.no_goods_list, true); return; }
    var exact = goods.items.filter(function (item) { return item.barcode === text || item.sku === text; });
    if (exact.length) { add(exact[0].id); return; }
    var lower = text.toLowerCase();
    var found = goods.items.filter(function (item) { return item.name.toLowerCase().indexOf(lower) !== -1; }).slice(0, 12);
    if (!found.length) { say(fill(T.no_goods, {text: text}), true); return; }
    showResults(found);
  }

  function takeMember(code) {
    say(null);
    if (code.indexOf(".") !== -1) { say(T.pay_code_offline, true); return; }   // a signed pay code
    member = code.slice(0, 64);
    draw();
    focusField();
  }

  function charge() {
    if (!member || !basket.length) { say(T.scan_first, true); return; }
    var names = [];
    var lines = [];
    var total = 0;
    basket.forEach(function (pair) {
      var item = byId(pair[0]);
      if (!item) { return; }
      lines.push({item_id: item.id, quantity: pair[1]});
      names.push(item.name + "×" + pair[1]);
      total += item.price_points * pair[1];
    });
    // The sale's key is made now, once: every sending of this sale carries it.
    var sale = {key: newKey(), member: member, lines: lines, names: names.join("、"), total: total,
                at: Date.now(), status: "queued"};
    var queue = readQueue();
    queue.push(sale);
    writeQueue(queue);
    var card = member;
    member = null;
    basket = [];
    draw();
    say(fill(T.saved, {names: sale.names, total: total, card: card}), false);
    renderQueue();
    focusField();
    send();
  }

  function startLocal() {
    var params = new URLSearchParams(window.location.search);
    var code = (params.get("member") || "").trim();
    if (code && code.indexOf(".") === -1) { member = code.slice(0, 64); }
    else if (code) { say(T.pay_code_offline, true); }
    loadGoods().then(function () {
      params.getAll("item").forEach(function (value) {
        var id = parseInt(value, 10);
        if (byId(id)) {
          var found = basket.filter(function (pair) { return pair[0] === id; })[0];
          if (found) { found[1] += 1; } else { basket.push([id, 1]); }
        }
      });
      draw();
      focusField();
    });
    $("member-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var field = $("member");
      var value = field.value.trim();
      field.value = "";
      if (value) { takeMember(value); }
    });
    $("scan-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var field = $("scan");
      var value = field.value.trim().slice(0, 100);
      field.value = "";
      if (!value) {
        var button = $("confirm");
        if (button && !button.disabled) { button.focus(); }
        return;
      }
      scan(value);
    });
    $("next-member").addEventListener("click", function () {
      member = null; basket = []; say(null); draw(); focusField();
    });
    var confirm = $("confirm");
    if (confirm) {
      confirm.addEventListener("click", function () { if (!confirm.disabled) { charge(); } });
    }
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); member = null; basket = []; say(null); draw(); focusField(); }
    });
  }

  // --- start ----------------------------------------------------------------------------------------
  var sendButton = $("till-queue-send");
  if (sendButton) { sendButton.addEventListener("click", send); }
  var clear = $("till-queue-clear");
  if (clear) {
    clear.addEventListener("click", function () {
      writeQueue(readQueue().filter(function (s) { return s.status === "queued"; }));
      renderQueue();
    });
  }
  window.addEventListener("storage", function (event) { if (event.key === QUEUE_KEY) { renderQueue(); } });
  // Back to a page the browser kept (bfcache): ask the server again rather than show an old basket.
  window.addEventListener("pageshow", function (event) { if (event.persisted) { window.location.reload(); } });
  if (local()) { startLocal(); }
  showState();
  renderQueue();
  send();
})();
