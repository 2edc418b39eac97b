// Building the page from JSON: every value is written as text (text nodes, attributes,
// textContent), never parsed as HTML.

let ids = 0;

export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in el) {
      el.value = String(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

// A labelled control with a place for its own error; `name` is the API's field name, so
// a validation problem's `loc` finds it.
export function field(label, control, { hint, inline = false } = {}) {
  const id = control.id || uid("field");
  control.id = id;
  const error = h("p", { class: "error", id: `${id}-error`, "aria-live": "polite" });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: inline ? "field inline" : "field" },
    inline ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control],
    hint ? h("p", { class: "note" }, hint) : null, error);
}

export function input(name, attrs = {}) {
  return h("input", { name, type: "text", ...attrs });
}

export function select(name, options, attrs = {}) {
  return h("select", { name, ...attrs },
    options.map(([value, text]) => h("option", { value }, text)));
}

export function button(text, attrs = {}) {
  return h("button", { type: "button", ...attrs }, text);
}

export function table(caption, columns, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)));
}

export function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function heading(text) {
  document.title = `${text} · Portcullis`;
  return h("h1", { tabindex: "-1" }, text);
}

export function focusHeading(root) {
  const first = root.querySelector("h1");
  if (first) first.focus();
}
