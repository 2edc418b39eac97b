// Forms that call the API: the button is disabled while the call runs, and a problem is
// shown where it belongs (a field's own message for its validation error, the detail next
// to the button that sent it).
import { ApiError } from "./api.js";
import { h } from "./dom.js";

export function showError(target, error) {
  target.textContent = error instanceof ApiError ? error.describe() : String(error.message || error);
}

export function clearErrors(formEl) {
  for (const el of formEl.querySelectorAll(".error")) el.textContent = "";
}

// `children`: fields (see dom.field); `onSubmit(values, form)` may throw an ApiError.
export function apiForm(children, submitText, onSubmit, { cls = "card", label } = {}) {
  const status = h("p", { class: "error", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, submitText);
  const formEl = h("form", { class: cls, novalidate: true, "aria-label": label },
    children, h("div", { class: "row" }, submit), status);
  formEl.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(formEl);
    submit.disabled = true;
    try {
      await onSubmit(values(formEl), formEl);
    } catch (error) {
      report(formEl, status, error);
    } finally {
      submit.disabled = false;
    }
  });
  formEl.status = status;
  return formEl;
}

function report(formEl, status, error) {
  showError(status, error);
  if (!(error instanceof ApiError)) return;
  let first = null;
  for (const [name, msg] of Object.entries(error.fieldErrors())) {
    const control = formEl.querySelector(`[name="${CSS.escape(name)}"]`);
    const target = control && document.getElementById(`${control.id}-error`);
    if (target) {
      target.textContent = msg;
      control.setAttribute("aria-invalid", "true");
      first = first || control;
    }
  }
  if (first) first.focus();
}

export function values(formEl) {
  const out = {};
  for (const el of formEl.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") {
      (out[el.name] = out[el.name] || []);
      if (el.checked) out[el.name].push(el.value);
    } else {
      out[el.name] = el.value;
    }
  }
  return out;
}

// A button that runs an API call, with its error right after it.
export function actionButton(text, run, attrs = {}) {
  const status = h("span", { class: "error", "aria-live": "polite" });
  const el = h("button", { type: "button", ...attrs }, text);
  el.addEventListener("click", async () => {
    status.textContent = "";
    el.disabled = true;
    try {
      await run(el);
    } catch (error) {
      showError(status, error);
    } finally {
      el.disabled = false;
    }
  });
  return [el, status];
}
