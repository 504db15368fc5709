// Opening the check-in link is enough: submit the one-button form once, by itself.
(function () {
  "use strict";
  var form = document.getElementById("checkin-form");
  if (form && form.dataset.auto === "1" && !sessionStorage.getItem("checkin:" + form.token.value)) {
    sessionStorage.setItem("checkin:" + form.token.value, "1");
    form.submit();
  }
})();
