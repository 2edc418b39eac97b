// /accept-invitation?token=: join a company with a name and a password.
import { api, LOGIN_PAGE } from "../api.js";
import { field, heading, input } from "../dom.js";
import { apiForm } from "../forms.js";
import { linkToken } from "../link.js";

export function render(main) {
  const token = linkToken();
  const form = apiForm([
    field("Name", input("name", { autocomplete: "name", required: true })),
    field("Password", input("password", { type: "password", autocomplete: "new-password", required: true }),
      { hint: "At least 12 characters, not a common password." }),
  ], "Join", async (values) => {
    await api("POST", "/invitations/accept", { token: token || "", ...values });
    window.location.assign(LOGIN_PAGE);
  }, { cls: "card narrow", label: "Accept invitation" });
  main.append(heading("Accept your invitation"), form);
}
