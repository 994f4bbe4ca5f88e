// The Belgian eID login page (idp/templates/eid/login.html), loaded as a file: the CSP forbids inline script.
//
// 1. Find the eID bridge on this computer (GET <bridge>/status) and tell the person what is missing:
//    the bridge itself, the middleware, a reader or a card. Keep looking until it is all there.
// 2. On "Log in with eID": ask the provider for a challenge, have the bridge sign it with the card
//    (the PIN is typed in the bridge's own window or on a pinpad, never in this page), post the
//    bridge's answer to the provider unchanged and follow the redirect it returns.
// Every error is shown in the page's language from the sentences the template provides.
"use strict";

(function () {
  const root = document.getElementById("eid-login");
  if (!root) {
    return;
  }
  const bridgeUrl = root.dataset.bridgeUrl.replace(/\/+$/, "");
  const csrfToken = root.dataset.csrfToken;
  const statusEl = document.getElementById("eid-status");
  const errorEl = document.getElementById("eid-error");
  const helpEl = document.getElementById("eid-help");
  const startButton = document.getElementById("eid-start");
  const retryButton = document.getElementById("eid-retry");

  const messages = {};
  document.querySelectorAll("#eid-messages [data-code]").forEach(function (el) {
    messages[el.dataset.code] = el.textContent;
  });

  // Errors where trying again on this page cannot help.
  const FINAL = new Set(["login_expired", "method_unavailable", "account_disabled", "pin_blocked"]);
  // Errors that need a fresh page (a new CSRF token).
  const RELOAD = new Set(["session_invalid"]);
  const POLL_MS = 2000;
  const MAX_POLLS = 150; // five minutes of looking for the reader or card
  const STATUS_TIMEOUT_MS = 3000;

  class Failure extends Error {
    constructor(code, text) {
      super(code);
      this.code = code;
      this.text = text || null;
    }
  }

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
    helpEl.hidden = true;
    retryButton.hidden = true;
  }

  function showError(failure) {
    const code = failure instanceof Failure ? failure.code : "server_error";
    lastCode = code;
    errorEl.textContent = (failure && failure.text) || messages[code] || messages.server_error;
    errorEl.hidden = false;
    helpEl.hidden = code !== "bridge_not_running";
    retryButton.hidden = FINAL.has(code);
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

  async function check(thenLogin) {
    stopPolling();
    if (busy) {
      return;
    }
    try {
      await bridgeStatus();
    } catch (failure) {
      showError(failure);
      if (polls < MAX_POLLS) {
        polls += 1;
        pollTimer = setTimeout(function () {
          check(thenLogin);
        }, POLL_MS);
      }
      return;
    }
    polls = 0;
    clearError();
    say("ready");
    startButton.disabled = false;
    if (thenLogin) {
      login();
    }
  }

  async function login() {
    if (busy) {
      return;
    }
    busy = true;
    stopPolling();
    clearError();
    startButton.disabled = true;
    try {
      const issued = await postJson(root.dataset.challengeUrl, {});
      say("waiting_pin");
      const token = await bridgeAuthenticate(issued.challenge);
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
    check(lastCode !== null && !lastCode.startsWith("bridge_") && !lastCode.startsWith("no_"));
  });

  check(false);
})();
