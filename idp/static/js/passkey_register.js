// Create a passkey (account page and the offer after a login): options, create(), verify.
(function () {
  "use strict";
  var root = document.getElementById("passkey-register");
  var w = window.idpWebauthn;
  if (!root) { return; }
  var status = document.getElementById("passkey-register-status");
  var button = document.getElementById("passkey-register-button");
  function show(message) {
    if (status) { status.textContent = message || ""; status.hidden = !message; }
  }
  if (!w || !w.supported()) {
    show(root.getAttribute("data-unsupported"));
    return;
  }
  var csrf = w.csrfToken();
  button.hidden = false;
  button.addEventListener("click", function () {
    show("");
    button.disabled = true;
    w.post(root.getAttribute("data-options-url"), csrf).then(function (data) {
      if (!data.ok) { throw { ours: true, message: data.error }; }
      return navigator.credentials.create({ publicKey: w.creationOptions(data.options) });
    }).then(function (cred) {
      return w.post(root.getAttribute("data-verify-url"), csrf, { credential: w.credentialJSON(cred) });
    }).then(function (data) {
      if (data.redirect) { window.location.assign(data.redirect); return; }
      show(data.error || root.getAttribute("data-failed"));
      button.disabled = false;
    }).catch(function (err) {
      var message = err && err.ours ? err.message : null;
      if (!message && err && err.name === "InvalidStateError") { message = root.getAttribute("data-exists"); }
      show(message || root.getAttribute("data-failed"));
      button.disabled = false;
    });
  });
})();
