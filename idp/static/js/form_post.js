// Response mode form_post: submit the hidden form to the relying party at once.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post");
  if (form) { form.submit(); }
});
