// The Belgian eID login page (idp/templates/eid/login.html), loaded as a file: the CSP forbids inline script.
//
// 1. Find what can use the card on this computer, in order: the Web eID browser extension and app
//    (window.postMessage protocol of web-eid.js: "web-eid:status" answered by "-ack" then "-success" or
//    "-failure"), then the eID bridge on the loopback interface (GET <bridge>/status, its version checked).
//    When neither is there, show the install panel (links for this operating system) and a "check again"
//    button that looks again on this same page, keeping the login transaction.
// 2. On "Log in with eID": ask the provider for a challenge, have the card sign it (the PIN is typed in
//    the Web eID or bridge window, or on a pinpad, never in this page), post the answer to the provider
//    and follow the redirect it returns.
// Every error is shown in the page's language from the sentences the template provides.
"use strict";

(function () {
  const root = document.getElementById("eid-login");
  if (!root) {
    return;
  }
  const bridgeUrl = root.dataset.bridgeUrl.replace(/\/+$/, "");
  const minBridgeVersion = root.dataset.minBridgeVersion || "0";
  const useWebEid = root.dataset.webEid === "true";
  const lang = document.documentElement.lang || "en";
  const csrfToken = root.dataset.csrfToken;
  const statusEl = document.getElementById("eid-status");
  const errorEl = document.getElementById("eid-error");
  const installEl = document.getElementById("eid-install");
  const otherEl = document.getElementById("eid-other-ways");
  const registerEl = document.getElementById("eid-register");
  const startButton = document.getElementById("eid-start");
  const retryButton = document.getElementById("eid-retry");
  const checkButton = document.getElementById("eid-check-again");

  const messages = {};
  document.querySelectorAll("#eid-messages [data-code]").forEach(function (el) {
    messages[el.dataset.code] = el.textContent;
  });

  // Trying again cannot help: the card or the account is the problem, or the login is over.
  const FINAL = new Set([
    "login_expired",
    "method_unavailable",
    "account_disabled",
    "pin_blocked",
    "certificate_expired",
    "certificate_revoked",
    "untrusted_certificate",
    "wrong_certificate",
    "no_account",
    "origin_not_allowed",
    "identity_file_invalid",
    "national_number_mismatch",
  ]);
  // The person should log in another way (and, without an account, may register).
  const OTHER_WAYS = new Set([
    "certificate_expired",
    "certificate_revoked",
    "untrusted_certificate",
    "no_account",
    "pin_blocked",
    "account_disabled",
  ]);
  // Something is missing or out of date on this computer: the install panel says what to get.
  const INSTALL = new Set(["nothing_found", "webeid_app_missing", "webeid_update", "bridge_update"]);
  const RELOAD = new Set(["session_invalid"]);
  const WEB_EID_ERRORS = {
    ERR_WEBEID_USER_CANCELLED: "webeid_cancelled",
    ERR_WEBEID_USER_TIMEOUT: "webeid_user_timeout",
    ERR_WEBEID_ACTION_TIMEOUT: "webeid_timeout",
    ERR_WEBEID_EXTENSION_UNAVAILABLE: "webeid_missing",
    ERR_WEBEID_NATIVE_UNAVAILABLE: "webeid_app_missing",
    ERR_WEBEID_VERSION_MISMATCH: "webeid_update",
    ERR_WEBEID_VERSION_INVALID: "webeid_update",
    ERR_WEBEID_NATIVE_FATAL: "webeid_card_error",
  };
  const WEB_EID_LIBRARY_VERSION = "2.0.0"; // the web-eid.js protocol version this page speaks
  const WEB_EID_LOAD_DELAY_MS = 1000; // the extension's content script may load after this page
  const WEB_EID_ACK_MS = 1000;
  const WEB_EID_STATUS_MS = 6000;
  const WEB_EID_AUTH_MS = 6000 + 2 * 60 * 1000; // two minutes for the PIN, as web-eid.js
  const POLL_MS = 2000;
  const MAX_POLLS = 150; // five minutes of looking for the reader or card
  const STATUS_TIMEOUT_MS = 3000;
  const started = Date.now();

  class Failure extends Error {
    constructor(code, text) {
      super(code);
      this.code = code;
      this.text = text || null;
    }
  }

  let mode = null; // "webeid" or "bridge" once found
  let pollTimer = null;
  let polls = 0;
  let busy = false;
  let lastCode = null;

  function say(key) {
    statusEl.textContent = messages[key] || "";
  }

  function clearError() {
    errorEl.hidden = true;
    errorEl.textContent = "";
    installEl.hidden = true;
    otherEl.hidden = true;
    registerEl.hidden = true;
    retryButton.hidden = true;
  }

  function showError(failure) {
    const code = failure instanceof Failure ? failure.code : "server_error";
    lastCode = code;
    errorEl.textContent = (failure && failure.text) || messages[code] || messages.server_error;
    errorEl.hidden = false;
    installEl.hidden = !INSTALL.has(code);
    otherEl.hidden = !OTHER_WAYS.has(code);
    registerEl.hidden = code !== "no_account";
    retryButton.hidden = FINAL.has(code) || INSTALL.has(code);
    startButton.disabled = true;
    statusEl.textContent = "";
  }

  function timeoutSignal(ms) {
    const controller = new AbortController();
    setTimeout(function () {
      controller.abort();
    }, ms);
    return controller.signal;
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, Math.max(0, ms));
    });
  }

  function olderThan(version, minimum) {
    const a = String(version || "0").split(/[^0-9]+/).map(Number);
    const b = String(minimum).split(/[^0-9]+/).map(Number);
    for (let i = 0; i < 3; i += 1) {
      if ((a[i] || 0) !== (b[i] || 0)) {
        return (a[i] || 0) < (b[i] || 0);
      }
    }
    return false;
  }

  // -- Web eID (the browser extension and its app) ------------------------------------

  function webEidFailure(error) {
    const code = error && typeof error.code === "string" ? WEB_EID_ERRORS[error.code] : null;
    return new Failure(code || "webeid_error");
  }

  // One request to the extension: resolve with its "-success" message, reject with a Failure.
  function webEidSend(message, replyMs) {
    return new Promise(function (resolve, reject) {
      const action = message.action;
      let ackTimer = null;
      let replyTimer = null;
      function finish() {
        clearTimeout(ackTimer);
        clearTimeout(replyTimer);
        window.removeEventListener("message", onMessage);
      }
      function onMessage(event) {
        // The extension's content script posts into this window, with this page's origin.
        if (event.source !== window || event.origin !== window.location.origin) {
          return;
        }
        const data = event.data;
        if (!data || typeof data.action !== "string") {
          return;
        }
        if (data.action === action + "-ack") {
          clearTimeout(ackTimer);
        } else if (data.action === action + "-success") {
          finish();
          resolve(data);
        } else if (data.action === action + "-failure") {
          finish();
          reject(webEidFailure(data.error));
        }
      }
      window.addEventListener("message", onMessage);
      ackTimer = setTimeout(function () {
        finish();
        reject(new Failure("webeid_missing"));
      }, WEB_EID_ACK_MS);
      replyTimer = setTimeout(function () {
        finish();
        reject(new Failure("webeid_timeout"));
      }, replyMs);
      window.postMessage(message, window.location.origin);
    });
  }

  async function webEidStatus() {
    await sleep(started + WEB_EID_LOAD_DELAY_MS - Date.now());
    return webEidSend(
      { action: "web-eid:status", libraryVersion: WEB_EID_LIBRARY_VERSION },
      WEB_EID_STATUS_MS
    );
  }

  async function webEidAuthenticate(challenge) {
    const answer = await webEidSend(
      {
        action: "web-eid:authenticate",
        libraryVersion: WEB_EID_LIBRARY_VERSION,
        challengeNonce: challenge,
        options: { lang: lang.slice(0, 2) },
      },
      WEB_EID_AUTH_MS
    );
    // The provider checks the signature against the challenge it keeps; this one is only a label.
    return {
      format: answer.format,
      unverifiedCertificate: answer.unverifiedCertificate,
      algorithm: answer.algorithm,
      signature: answer.signature,
      appVersion: answer.appVersion,
      challenge: challenge,
    };
  }

  // -- the bridge ------------------------------------------------------------------

  async function bridgeStatus() {
    let response;
    try {
      response = await fetch(bridgeUrl + "/status", {
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        signal: timeoutSignal(STATUS_TIMEOUT_MS),
      });
    } catch (e) {
      // Not listening, or not set up for this site (it then sends no CORS headers): same advice.
      throw new Failure("bridge_not_running");
    }
    if (!response.ok) {
      throw new Failure("bridge_error");
    }
    const status = await response.json();
    if (olderThan(status.version, minBridgeVersion)) {
      throw new Failure("bridge_update");
    }
    if (!status.middleware) {
      throw new Failure("no_middleware");
    }
    if (!status.reader) {
      throw new Failure("no_reader");
    }
    if (!status.card) {
      throw new Failure("no_card");
    }
    return status;
  }

  function bridgeFailure(body) {
    const code = body && typeof body.error === "string" ? body.error : "bridge_error";
    if (code === "pin_wrong" && body.tries_left) {
      return new Failure(code, messages.pin_wrong_tries.replace("{tries}", String(body.tries_left)));
    }
    return new Failure(Object.prototype.hasOwnProperty.call(messages, code) ? code : "bridge_error");
  }

  async function bridgeAuthenticate(challenge) {
    let response;
    try {
      // No timeout: the person may take a while to type the PIN (the bridge gives up after two minutes).
      response = await fetch(bridgeUrl + "/authenticate", {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ challenge: challenge }),
      });
    } catch (e) {
      throw new Failure("bridge_not_running");
    }
    const body = await response.json().catch(function () {
      return null;
    });
    if (!response.ok || !body) {
      throw bridgeFailure(body);
    }
    return body;
  }

  // -- the provider ----------------------------------------------------------------

  async function postJson(url, payload) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        // The page says no-referrer; Flask-WTF checks the Referer of HTTPS posts against the host.
        referrerPolicy: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": csrfToken,
        },
        body: JSON.stringify(payload),
      });
    } catch (e) {
      throw new Failure("network");
    }
    const body = await response.json().catch(function () {
      return null;
    });
    if (!response.ok || !body) {
      throw new Failure(body && body.error ? body.error : "server_error", body && body.message);
    }
    return body;
  }

  // -- the flow --------------------------------------------------------------------

  function stopPolling() {
    if (pollTimer !== null) {
      clearTimeout(pollTimer);
      pollTimer = null;
    }
  }

  // Web eID first; then the bridge. Returns the mode found or throws what to tell the person.
  async function detect() {
    let webEidProblem = null;
    if (useWebEid) {
      try {
        await webEidStatus();
        return "webeid";
      } catch (failure) {
        webEidProblem = failure.code;
      }
    }
    try {
      await bridgeStatus();
      return "bridge";
    } catch (failure) {
      if (failure.code !== "bridge_not_running") {
        throw failure; // a bridge is there: say what it lacks (reader, card, update ...)
      }
    }
    // The extension is there but its app is missing or too old: that is the thing to fix.
    if (webEidProblem === "webeid_app_missing" || webEidProblem === "webeid_update") {
      throw new Failure(webEidProblem);
    }
    throw new Failure("nothing_found");
  }

  async function check(thenLogin) {
    stopPolling();
    if (busy) {
      return;
    }
    try {
      mode = await detect();
    } catch (failure) {
      mode = null;
      showError(failure);
      // Keep looking while a bridge waits for its reader or card; the install panel has its button.
      if (!INSTALL.has(failure.code) && failure.code !== "nothing_found" && polls < MAX_POLLS) {
        polls += 1;
        pollTimer = setTimeout(function () {
          check(thenLogin);
        }, POLL_MS);
      }
      return;
    }
    polls = 0;
    clearError();
    say(mode === "webeid" ? "ready_webeid" : "ready");
    root.dataset.mode = mode;
    startButton.disabled = false;
    if (thenLogin) {
      login();
    }
  }

  async function login() {
    if (busy || mode === null) {
      return;
    }
    busy = true;
    stopPolling();
    clearError();
    startButton.disabled = true;
    try {
      const issued = await postJson(root.dataset.challengeUrl, {});
      say(mode === "webeid" ? "waiting_pin_webeid" : "waiting_pin");
      const token =
        mode === "webeid"
          ? await webEidAuthenticate(issued.challenge)
          : await bridgeAuthenticate(issued.challenge);
      say("verifying");
      const done = await postJson(root.dataset.verifyUrl, token);
      say("redirecting");
      window.location.assign(done.redirect);
    } catch (failure) {
      busy = false;
      showError(failure);
    }
  }

  startButton.addEventListener("click", function () {
    login();
  });
  retryButton.addEventListener("click", function () {
    if (RELOAD.has(lastCode)) {
      window.location.reload();
      return;
    }
    clearError();
    say("checking");
    polls = 0;
    const missing = lastCode === null || /^(bridge_|no_|webeid_missing|webeid_app)/.test(lastCode);
    check(!missing);
  });
  checkButton.addEventListener("click", function () {
    clearError();
    say("checking");
    polls = 0;
    check(false);
  });

  check(false);
})();
