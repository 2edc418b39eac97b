// The email links' pages (/verify-email, /accept-invitation, /reset-password): take the
// token out of the address bar before anything else loads (a classic script, first in
// <head>, runs before the stylesheet and the modules are fetched), keeping it only in
// memory for the page's module to post.
(function () {
  "use strict";
  var paths = ["/verify-email", "/accept-invitation", "/reset-password"];
  if (paths.indexOf(window.location.pathname) === -1) {
    return;
  }
  var token = new URLSearchParams(window.location.search).get("token");
  window.history.replaceState(null, "", window.location.pathname);
  Object.defineProperty(window, "portcullisLinkToken", {
    value: token, configurable: true, enumerable: false, writable: false,
  });
})();
