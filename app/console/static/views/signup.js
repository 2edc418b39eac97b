// /console/signup: a new company and its first admin.
import { api } from "../api.js";
import { clear, field, h, heading, input } from "../dom.js";
import { apiForm } from "../forms.js";

export function render(main) {
  const form = apiForm([
    field("Company", input("company_name", { autocomplete: "organization", required: true })),
    field("Name", input("name", { autocomplete: "name", required: true })),
    field("Email", input("email", { type: "email", autocomplete: "email", required: true })),
    field("Password", input("password", { type: "password", autocomplete: "new-password", required: true }),
      { hint: "At least 12 characters, not a common password." }),
  ], "Create account", async (values) => {
    await api("POST", "/auth/signup", values);
    clear(main).append(
      heading("Check your email"),
      h("p", {}, "We sent a verification link to the address you gave. Open it to finish."),
      h("p", {}, h("a", { href: "/console/login" }, "Sign in")));
    main.querySelector("h1").focus();
  }, { cls: "card narrow", label: "Create account" });
  main.append(heading("Create an account"), form,
    h("p", {}, "Already have an account? ", h("a", { href: "/console/login" }, "Sign in")));
}
