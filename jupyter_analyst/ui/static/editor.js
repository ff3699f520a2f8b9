// The approval panel's code editor: a textarea over a highlighted copy of its text.
//
// Plain JavaScript, no build step. Keys are kept inside the editor: Tab and Shift+Tab
// indent, Enter keeps the indentation, Ctrl/Cmd+Enter asks the panel to run the code
// (only when the verdict allows it), Escape leaves the editor and nothing else. The
// notebook's command-mode shortcuts never see a key typed here.

const KEYWORDS = new Set(("False None True and as assert async await break class continue " +
  "def del elif else except finally for from global if import in is lambda match case " +
  "nonlocal not or pass raise return try while with yield").split(" "));
const TOKEN = new RegExp([
  /(#[^\n]*)/.source,                                                       // 1 comment
  /((?:[rRbBuUfF]{1,2})?(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))/.source, // 2 string
  /(\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?\b)/.source,                     // 3 number
  /(@[A-Za-z_][\w.]*)/.source,                                              // 4 decorator
  /([A-Za-z_]\w*)/.source,                                                  // 5 name
].join("|"), "g");
const INDENT = "    ";

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function highlight(code) {
  let html = "", last = 0;
  for (const match of code.matchAll(TOKEN)) {
    html += escapeHtml(code.slice(last, match.index));
    const [text, comment, string, number, decorator, name] = match;
    const kind = comment ? "c" : string ? "s" : number ? "n" : decorator ? "d" :
      KEYWORDS.has(name) ? "k" : "";
    html += kind ? `<span class="ja-${kind}">${escapeHtml(text)}</span>` : escapeHtml(text);
    last = match.index + text.length;
  }
  // A trailing newline needs a character after it, or the copy is one line short.
  return html + escapeHtml(code.slice(last)) + "\n ";
}

function lineBounds(text, start, end) {
  const from = text.lastIndexOf("\n", start - 1) + 1;
  const next = text.indexOf("\n", end > start && text[end - 1] === "\n" ? end - 1 : end);
  return [from, next === -1 ? text.length : next];
}

function indentLines(area, outdent) {
  const text = area.value, start = area.selectionStart, end = area.selectionEnd;
  if (!outdent && start === end) {  // a plain Tab: spaces up to the next indent stop
    const column = start - (text.lastIndexOf("\n", start - 1) + 1);
    area.setRangeText(" ".repeat(INDENT.length - (column % INDENT.length)), start, end, "end");
    return;
  }
  const [from, to] = lineBounds(text, start, end);
  const lines = text.slice(from, to).split("\n");
  const changed = lines.map(line => outdent ? line.replace(/^( {1,4}|\t)/, "") : INDENT + line);
  area.setRangeText(changed.join("\n"), from, to, "select");
}

function newline(area) {
  const text = area.value, start = area.selectionStart;
  const line = text.slice(text.lastIndexOf("\n", start - 1) + 1, start);
  let indent = line.match(/^[ \t]*/)[0];
  if (/:\s*(#.*)?$/.test(line)) indent += INDENT;
  area.setRangeText("\n" + indent, start, area.selectionEnd, "end");
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (error) {
    return false;
  }
}

function insertCell(model, code, anchor) {
  // JupyterLab's notebook, as its widget manager knows it. This is not a public API, so
  // every step is checked; the panel offers the clipboard when it is not there.
  const manager = model.widget_manager;
  const context = manager && manager._context;
  const notebook = context && context.model && context.model.sharedModel;
  if (!notebook || typeof notebook.insertCell !== "function") return false;
  let index = notebook.cells.length;
  for (let i = 0; i < notebook.cells.length; i++) {
    const outputs = JSON.stringify((notebook.cells[i].toJSON() || {}).outputs || []);
    if (anchor && outputs.includes(anchor)) { index = i + 1; break; }
  }
  notebook.insertCell(index, { cell_type: "code", source: code });
  return true;
}

function focusCellAfter(cellNode, before, tries = 40) {
  // The new cell is rendered a moment after the model has it: it is the one that comes
  // between this cell and ``before``, the cell that followed it. Focusing its text makes
  // it the notebook's active cell in edit mode; the caret goes to the last line.
  const next = cellNode && cellNode.nextElementSibling;
  const fresh = next && next !== before;
  const lines = fresh ? next.querySelectorAll(".cm-content .cm-line") : [];
  if (!lines.length) {
    if (tries > 0) setTimeout(() => focusCellAfter(cellNode, before, tries - 1), 50);
    return;
  }
  const content = next.querySelector(".cm-content");
  content.focus();
  const range = document.createRange();
  range.selectNodeContents(lines[lines.length - 1]);
  range.collapse(false);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function render({ model, el }) {
  el.classList.add("jupyter-analyst-editor");
  // Lumino skips its keyboard shortcuts for events from inside such an element.
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.setAttribute("data-p-suppress-shortcuts", "true");
  const root = document.createElement("div");
  root.className = "ja-editor";
  const gutter = document.createElement("div");
  gutter.className = "ja-gutter";
  gutter.setAttribute("aria-hidden", "true");
  const body = document.createElement("div");
  body.className = "ja-body";
  const shown = document.createElement("pre");
  shown.className = "ja-shown";
  shown.setAttribute("aria-hidden", "true");
  const area = document.createElement("textarea");
  area.className = "ja-input";
  area.spellcheck = false;
  area.wrap = "off";
  area.setAttribute("autocapitalize", "off");
  area.setAttribute("autocomplete", "off");
  area.setAttribute("aria-label", "Code to run in the sandbox; Ctrl+Enter runs it, Escape leaves");
  body.append(shown, area);
  root.append(gutter, body);
  el.appendChild(root);

  const paint = () => {
    const marked = new Set(model.get("marked") || []);
    shown.innerHTML = highlight(area.value);
    const count = area.value.split("\n").length;
    gutter.innerHTML = Array.from({ length: count }, (_, i) =>
      `<div class="${marked.has(i + 1) ? "ja-marked" : ""}">${i + 1}</div>`).join("");
    area.rows = Math.min(Math.max(count, 6), 30);
    sync();
  };
  const sync = () => {
    shown.style.transform = `translate(${-area.scrollLeft}px, ${-area.scrollTop}px)`;
    gutter.style.transform = `translateY(${-area.scrollTop}px)`;
  };
  const changed = () => {
    model.set("value", area.value);
    model.save_changes();
    paint();
  };

  area.value = model.get("value") || "";
  area.readOnly = !model.get("editable");
  paint();

  area.addEventListener("input", changed);
  area.addEventListener("scroll", sync);
  area.addEventListener("keydown", event => {
    event.stopPropagation();  // the notebook's shortcuts never see keys typed here
    const mod = event.ctrlKey || event.metaKey;
    if (event.key === "Tab" && !mod && !event.altKey) {
      event.preventDefault();
      if (!area.readOnly) { indentLines(area, event.shiftKey); changed(); }
    } else if (event.key === "Enter" && mod) {
      event.preventDefault();
      if (model.get("can_run")) model.send({ event: "run" });
    } else if (event.key === "Enter" && !event.shiftKey && !area.readOnly) {
      event.preventDefault();
      newline(area);
      changed();
    } else if (event.key === "Escape") {
      event.preventDefault();
      area.blur();
    }
  });
  for (const kind of ["keyup", "keypress"]) area.addEventListener(kind, e => e.stopPropagation());

  model.on("change:value", () => {
    const value = model.get("value") || "";
    if (value !== area.value) { area.value = value; paint(); }
  });
  model.on("change:marked", paint);
  model.on("change:editable", () => { area.readOnly = !model.get("editable"); });
  model.on("msg:custom", message => {
    if (message.action === "focus") area.focus();
  });
}

// The notebook actions work whether or not the editor is on screen (a finished panel
// shows the highlighted code, not the editor), so they belong to the model, not a view.
function initialize({ model }) {
  model.on("msg:custom", async message => {
    if (message.action === "insert_cell") {
      // The button just clicked is in the panel's cell (where the new cell goes below).
      const cell = document.activeElement && document.activeElement.closest(".jp-Cell");
      const before = cell && cell.nextElementSibling;
      const done = insertCell(model, message.code, message.anchor);
      if (done && message.focus) focusCellAfter(cell, before);
      const copied = done ? false : await copyText(message.code);
      model.send({ event: "inserted", inserted: done, copied, focus: message.focus });
    } else if (message.action === "copy") {
      model.send({ event: "copied", copied: await copyText(message.code) });
    }
  });
}

export default { initialize, render };
