// The "send a new code" button waits until a resend is allowed (the server checks it too),
// and the countdown next to it (m:ss, so no plural forms are needed) follows live.
(function () {
  "use strict";
  function show(seconds) {
    return Math.floor(seconds / 60) + ":" + ("0" + (seconds % 60)).slice(-2);
  }
  document.querySelectorAll("button.resend[data-wait]").forEach(function (button) {
    var left = parseInt(button.getAttribute("data-wait"), 10) || 0;
    if (left <= 0) { return; }
    button.disabled = true;
    var note = button.parentNode.querySelector(".resend-wait");
    var count = note ? note.querySelector(".countdown") : null;
    var timer = setInterval(function () {
      left -= 1;
      if (count) { count.textContent = show(Math.max(left, 0)); }
      if (left <= 0) {
        clearInterval(timer);
        button.disabled = false;
        if (note) { note.hidden = true; }
      }
    }, 1000);
  });
})();
