// Copy a newly created API key to the clipboard. A separate file, not an inline
// script, so the admin keeps working under a Content-Security-Policy without
// 'unsafe-inline'.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }
  const source = document.getElementById(button.dataset.copyTarget);
  const status = button.parentElement.querySelector(".api-key-copy-status");
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    status.textContent = "Copied.";
  } catch (error) {
    // Clipboard access needs HTTPS or localhost; fall back to a selection to copy by hand.
    const range = document.createRange();
    range.selectNodeContents(source);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    status.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  }
});
