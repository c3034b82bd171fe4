// Submit a filter form as soon as a select changes. A file rather than an inline
// onchange handler, so the admin works under a Content-Security-Policy.
"use strict";
document.addEventListener("change", (event) => {
  if (event.target.matches("select.synthlang-autosubmit")) {
    event.target.form.submit();
  }
});
