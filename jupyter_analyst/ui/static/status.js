// The panel's status line: plain text, announced to screen readers as it changes.
function render({ model, el }) {
  el.classList.add("jupyter-analyst-status");
  el.setAttribute("role", "status");
  el.setAttribute("aria-live", "polite");
  const show = () => { el.textContent = model.get("value") || ""; };
  show();
  model.on("change:value", show);
}

export default { render };
