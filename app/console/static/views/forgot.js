// /console/forgot-password: ask for a reset link.
import { api } from "../api.js";
import { clear, field, h, heading, input } from "../dom.js";
import { apiForm } from "../forms.js";

export function render(main) {
  const form = apiForm([
    field("Email", input("email", { type: "email", autocomplete: "email", required: true })),
  ], "Send reset link", async (values) => {
    await api("POST", "/auth/password/forgot", values);
    clear(main).append(heading("Check your email"),
      h("p", {}, "If the address has an account, a reset link is on its way."),
      h("p", {}, h("a", { href: "/console/login" }, "Sign in")));
    main.querySelector("h1").focus();
  }, { cls: "card narrow", label: "Forgotten password" });
  main.append(heading("Forgotten password"), form);
}
