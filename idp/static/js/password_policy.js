// Shows the password policy's verdict while the person types (no inline script: CSP).
// The input names the check endpoint in data-policy-url and, optionally, the id of
// the username input in data-policy-username. The server decides again on submit.
(function () {
  "use strict";
  var input = document.querySelector("input[data-policy-url]");
  var feedback = document.getElementById("password-feedback");
  if (!input || !feedback || !window.fetch) { return; }
  var tokenField = input.form && input.form.querySelector("input[name=csrf_token]");
  var usernameId = input.getAttribute("data-policy-username");
  var timer = null;
  var last = null;

  function show(problems, ok) {
    while (feedback.firstChild) { feedback.removeChild(feedback.firstChild); }
    problems.forEach(function (text) {
      var li = document.createElement("li");
      li.className = "problem";
      li.textContent = text;
      feedback.appendChild(li);
    });
    feedback.className = "policy-feedback" + (ok ? " ok" : "");
    input.setAttribute("aria-invalid", ok ? "false" : "true");
  }

  function check() {
    var password = input.value;
    if (!password) { show([], true); input.removeAttribute("aria-invalid"); return; }
    var body = { password: password };
    if (usernameId && document.getElementById(usernameId)) {
      body.username = document.getElementById(usernameId).value;
    }
    var key = JSON.stringify(body);
    if (key === last) { return; }
    last = key;
    fetch(input.getAttribute("data-policy-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": tokenField ? tokenField.value : "" },
      body: key
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { show(data.problems || [], data.ok); } })
      .catch(function () { /* the server checks again on submit */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
})();
