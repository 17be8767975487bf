// Payments' forms: once one is sent, its buttons wait, so that a second tap does not post it again.
// (The server would send the money once anyway: the send form carries an idempotency key.)
(() => {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-payments-form")) return;
    if (form.dataset.sending) {
      event.preventDefault();
      return;
    }
    form.dataset.sending = "1";
    form.setAttribute("aria-busy", "true");
    // After this turn: the button that submitted the form still counts (its formaction) for this submission.
    setTimeout(() => form.querySelectorAll("button").forEach((button) => { button.disabled = true; }), 0);
    // Back/forward cache: a page shown again is usable again.
    window.addEventListener("pageshow", () => {
      delete form.dataset.sending;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button").forEach((button) => { button.disabled = false; });
    }, { once: true });
  });
})();
