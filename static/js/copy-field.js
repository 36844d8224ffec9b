// A "Copy" button next to a read-only field (data-copy: the field's id; data-copy-status: where
// to say it worked). Hidden without JavaScript or a clipboard: the field can be selected and
// copied by hand, and focusing it selects it.
(() => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.copyStatus);
    if (!field) continue;
    field.addEventListener("focus", () => field.select());
    if (!navigator.clipboard || !window.isSecureContext) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied. Paste it into your calendar app.";
      } catch {
        field.focus();
        if (status) status.textContent = "Could not copy: the address is selected, copy it with your keyboard or menu.";
      }
    });
  }
})();
