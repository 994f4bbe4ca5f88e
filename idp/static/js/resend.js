// The "send a new code" button waits until a resend is allowed (the server checks it too).
(function () {
  "use strict";
  document.querySelectorAll("button.resend[data-wait]").forEach(function (button) {
    var left = parseInt(button.getAttribute("data-wait"), 10) || 0;
    if (left <= 0) { return; }
    button.disabled = true;
    var note = button.parentNode.querySelector(".resend-wait");
    var timer = setInterval(function () {
      left -= 1;
      if (left <= 0) {
        clearInterval(timer);
        button.disabled = false;
        if (note) { note.hidden = true; }
      }
    }, 1000);
  });
})();
