// Sign in with a passkey: the button (modal request) and conditional UI on the username field
// (autocomplete="username webauthn": the browser offers the passkeys itself).
(function () {
  "use strict";
  var root = document.getElementById("passkey-login");
  var w = window.idpWebauthn;
  if (!root || !w || !w.supported()) { return; }
  // Tell the password form that this device can make a passkey (then one is offered after the login).
  var capable = document.getElementById("passkey-capable");
  if (capable && PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable) {
    PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable().then(function (ok) {
      capable.value = ok ? "1" : "";
    });
  }
  var csrf = w.csrfToken();
  var optionsUrl = root.getAttribute("data-options-url");
  var verifyUrl = root.getAttribute("data-verify-url");
  var status = document.getElementById("passkey-status");
  var button = document.getElementById("passkey-button");
  var pending = null;

  function show(message) {
    if (status) { status.textContent = message || ""; status.hidden = !message; }
  }

  function signIn(mediation) {
    if (pending) { pending.abort(); }
    var controller = new AbortController();
    pending = controller;
    return w.post(optionsUrl, csrf).then(function (data) {
      if (!data.ok) { throw { ours: true, message: data.error }; }
      var request = { publicKey: w.requestOptions(data.options), signal: controller.signal };
      if (mediation) { request.mediation = mediation; }
      return navigator.credentials.get(request);
    }).then(function (cred) {
      if (!cred) { return null; }
      return w.post(verifyUrl, csrf, { credential: w.credentialJSON(cred) });
    }).then(function (data) {
      if (!data) { return; }
      if (data.redirect) { window.location.assign(data.redirect); return; }
      show(data.error || root.getAttribute("data-failed"));
    }).catch(function (err) {
      if (controller.signal.aborted || (err && err.name === "AbortError")) { return; }
      if (!mediation) { show((err && err.ours && err.message) || root.getAttribute("data-failed")); }
    });
  }

  if (button) {
    button.hidden = false;
    button.addEventListener("click", function () { show(""); signIn(null); });
  }
  if (root.getAttribute("data-conditional") === "1" && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (ok) { signIn("conditional"); }
    });
  }
})();
