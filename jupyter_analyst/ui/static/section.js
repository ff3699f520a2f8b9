// The header of a collapsible section: a real button, so Tab reaches it, Enter and Space
// toggle it, and screen readers hear its state from aria-expanded.
function render({ model, el }) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "ja-section-header";
  const caret = document.createElement("span");
  caret.setAttribute("aria-hidden", "true");
  const title = document.createElement("span");
  button.append(caret, title);
  el.appendChild(button);
  // Lumino skips its keyboard shortcuts for events from inside such an element.
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  const show = () => {
    const open = model.get("expanded");
    button.setAttribute("aria-expanded", String(open));
    caret.textContent = open ? "▾ " : "▸ ";
    title.textContent = model.get("title") || "";
  };
  button.addEventListener("click", () => {
    model.set("expanded", !model.get("expanded"));
    model.save_changes();
  });
  // Enter and Space are the button's own; they must not reach the notebook's shortcuts.
  button.addEventListener("keydown", event => event.stopPropagation());
  show();
  model.on("change:expanded", show);
  model.on("change:title", show);
}

export default { render };
