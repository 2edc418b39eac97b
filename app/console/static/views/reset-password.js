// /reset-password?token=: a new password; every session of the user ends.
import { api, LOGIN_PAGE } from "../api.js";
import { field, heading, input } from "../dom.js";
import { apiForm } from "../forms.js";
import { linkToken } from "../link.js";

export function render(main) {
  const token = linkToken();
  const form = apiForm([
    field("New password", input("password", { type: "password", autocomplete: "new-password", required: true }),
      { hint: "At least 12 characters, not a common password." }),
  ], "Set password", async (values) => {
    await api("POST", "/auth/password/reset", { token: token || "", password: values.password });
    window.location.assign(LOGIN_PAGE);
  }, { cls: "card narrow", label: "Reset password" });
  main.append(heading("Choose a new password"), form);
}
