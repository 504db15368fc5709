// The till's service worker (scope: the till, /clerk/pos). It keeps the offline till page, its
// scripts, the goods list and the goods' photos, so that the till keeps working when the network
// drops:
//  * a visit of the till goes to the network first; when the network is down, the kept offline till
//    page answers instead of the browser's "no internet" page (the address, with its basket, stays);
//  * the goods list goes to the network first and keeps the newest answer; offline, the kept one;
//  * the scripts, the style sheet and the icons come from the copy kept with this version of the
//    worker (a change to any of them changes this file's version, so browsers take the new ones);
//  * photos of goods are kept as they are first shown (their address changes with the photo).
// Sales are never sent by the worker: the page queues them with their Idempotency-Key (till.js).
"use strict";

var CONFIG = __TILL_CONFIG__;
var CACHE = "till-" + CONFIG.version;
var PHOTOS = "till-photos";

function fresh(cache, url) {
  // A page of the logged-in clerk: kept only when it really is that page, not the login page.
  return fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (response) {
    if (response.ok && !response.redirected) { return cache.put(url, response); }
    return null;
  }).catch(function () { return null; });
}

function refresh() {
  return caches.open(CACHE).then(function (cache) {
    return Promise.all([fresh(cache, CONFIG.shell), fresh(cache, CONFIG.goods)]);
  });
}

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(CONFIG.assets).then(function () {
      return Promise.all([fresh(cache, CONFIG.shell), fresh(cache, CONFIG.goods)]);
    });
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf("till-") === 0 && name !== CACHE && name !== PHOTOS;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

function offlinePage() {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(CONFIG.shell);
  }).then(function (page) {
    return page || new Response("<!doctype html><meta charset=utf-8><title>离线</title><h1>离线</h1>" +
      "<p>网络已断开，本机还没有离线收银台。请联网后打开一次收银台。</p>",
      {status: 503, headers: {"Content-Type": "text/html; charset=utf-8"}});
  });
}

function networkFirst(request, cacheName) {
  return fetch(request).then(function (response) {
    if (response.ok && !response.redirected) {
      var copy = response.clone();
      caches.open(cacheName).then(function (cache) { cache.put(request.url, copy); });
    }
    return response;
  }).catch(function () {
    return caches.open(cacheName).then(function (cache) {
      return cache.match(request.url, {ignoreSearch: false});
    }).then(function (kept) {
      if (kept) { return kept; }
      throw new Error("offline and not kept");
    });
  });
}

function cacheFirst(request, cacheName) {
  return caches.open(cacheName).then(function (cache) {
    return cache.match(request.url).then(function (kept) {
      if (kept) { return kept; }
      return fetch(request).then(function (response) {
        if (response.ok && !response.redirected) { cache.put(request.url, response.clone()); }
        return response;
      });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  var path = url.pathname;
  if (request.mode === "navigate" && (path === CONFIG.scope || path === CONFIG.shell)) {
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok && !response.redirected && path === CONFIG.scope) {
        refresh();  // the till opened online: keep this clerk's offline page and the goods list up to date
      }
      return response;
    }).catch(offlinePage));
    return;
  }
  if (path === CONFIG.goods) {
    event.respondWith(networkFirst(request, CACHE));
    return;
  }
  if (CONFIG.assets.indexOf(path) !== -1) {
    event.respondWith(cacheFirst(request, CACHE));
    return;
  }
  if (path.indexOf(CONFIG.photos + "/") === 0 && /\/photo$/.test(path)) {
    event.respondWith(cacheFirst(request, PHOTOS));
  }
});
