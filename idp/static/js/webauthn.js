// Passkeys (WebAuthn) in the browser: JSON <-> the binary structures of the Credential API,
// and the POSTs to our endpoints (CSRF token in a header). No third-party code.
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      return { type: c.type, id: toBytes(c.id), transports: c.transports };
    });
  }

  function creationOptions(o) {
    var out = Object.assign({}, o);
    out.challenge = toBytes(o.challenge);
    out.user = Object.assign({}, o.user, { id: toBytes(o.user.id) });
    out.excludeCredentials = descriptors(o.excludeCredentials);
    return out;
  }

  function requestOptions(o) {
    var out = Object.assign({}, o);
    out.challenge = toBytes(o.challenge);
    out.allowCredentials = descriptors(o.allowCredentials);
    return out;
  }

  function credentialJSON(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { response.transports = r.getTransports(); }
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) { response.userHandle = toB64url(r.userHandle); }
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      authenticatorAttachment: cred.authenticatorAttachment || undefined
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        data.ok = resp.ok;
        return data;
      });
    });
  }

  // The session's CSRF token: every page has one in a form (at least the language picker's).
  function csrfToken() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }

  window.idpWebauthn = {
    creationOptions: creationOptions,
    requestOptions: requestOptions,
    credentialJSON: credentialJSON,
    post: post,
    csrfToken: csrfToken,
    supported: supported
  };
})();
