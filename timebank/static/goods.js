// The goods page: a phone's photo is usually larger than the till needs (and than the upload limit),
// so it is drawn smaller (at most 1200 pixels a side, JPEG) in the browser before the form is sent.
// Without this script the form still works, within the limit.
(function () {
  "use strict";
  var form = document.getElementById("photo-form");
  var input = document.getElementById("photo");
  if (!form || !input || !window.createImageBitmap || !window.DataTransfer) { return; }
  var MAX_SIDE = 1200;
  var limit = parseInt(form.dataset.maxBytes, 10) || 0;
  var ready = false;
  form.addEventListener("submit", function (event) {
    var file = input.files && input.files[0];
    if (ready || !file) { return; }
    event.preventDefault();
    createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      if (scale === 1 && file.size <= limit) { return null; }
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", 0.85); });
    }).then(function (blob) {
      if (blob) {
        var files = new DataTransfer();
        files.items.add(new File([blob], "photo.jpg", {type: "image/jpeg"}));
        input.files = files.files;
      }
    }).catch(function () { /* not a picture the browser reads: the server says so */ }).then(function () {
      ready = true;
      form.submit();
    });
  });
})();
