// The panel's status line: plain text, announced to screen readers as it changes.
//
// When the notebook's kernel restarts, JupyterLab drops the old kernel's messages at once,
// so the kernel cannot say that its work ended; the widget manager marks every widget
// disconnected instead (ipywidgets' "jupyter-widgets-disconnected" class, on the
// "comm_live_update" event). The line then says so itself, rather than keep showing
// "Running … 4 s" forever.
const GONE = "✖ The notebook's kernel restarted or stopped: ";

function render({ model, el }) {
  el.classList.add("jupyter-analyst-status");
  el.setAttribute("role", "status");
  el.setAttribute("aria-live", "polite");
  let gone = false;
  const show = () => {
    const text = model.get("value") || "";
    if (!gone) { el.textContent = text; return; }
    el.textContent = GONE + (model.get("busy")
      ? "this analysis ended before it finished. Run the cell again."
      : "this panel's buttons no longer work. Run the cell again to use them." +
        (text ? ` (Last status: ${text})` : ""));
  };
  show();
  model.on("change:value", show);
  model.on("comm_live_update", () => {
    // The view's own listener has already set or cleared the class on this element.
    gone = el.classList.contains("jupyter-widgets-disconnected") ||
      el.closest(".jupyter-widgets-disconnected") !== null;
    if (gone) el.closest(".jupyter-analyst-panel")?.classList.add("ja-kernel-gone");
    show();
  });
}

export default { render };
