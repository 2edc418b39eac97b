// /console/security: your own sessions and passkeys.
import { all, api } from "../api.js";
import { field, formatTime, h, heading, input, table } from "../dom.js";
import { actionButton, apiForm } from "../forms.js";
import * as webauthn from "../webauthn.js";

export async function render(main) {
  const sessions = h("div", {});
  const passkeys = h("div", {});
  async function loadSessions() {
    const items = await all("/auth/sessions");
    sessions.replaceChildren(table("Sessions", ["Started", "Last seen", "IP", "Browser", "Actions"],
      items.map((s) => h("tr", {}, h("td", {}, formatTime(s.created_at)),
        h("td", {}, formatTime(s.last_seen_at)), h("td", { class: "mono" }, s.ip || ""),
        h("td", {}, s.user_agent || ""),
        h("td", {}, s.current ? "This session" : h("div", { class: "row" },
          actionButton("Revoke", async () => {
            await api("DELETE", `/auth/sessions/${s.id}`);
            await loadSessions();
          }, { class: "danger" })))))));
  }
  async function loadPasskeys() {
    const items = await all("/auth/webauthn/credentials");
    passkeys.replaceChildren(items.length === 0 ? h("p", {}, "No passkeys.")
      : table("Passkeys", ["Name", "Added", "Last used", "Actions"], items.map((p) => h("tr", {},
        h("td", {}, p.name), h("td", {}, formatTime(p.created_at)),
        h("td", {}, p.last_used_at ? formatTime(p.last_used_at) : "never"),
        h("td", {}, h("div", { class: "row" }, actionButton("Remove", async () => {
          await api("DELETE", `/auth/webauthn/credentials/${p.id}`);
          await loadPasskeys();
        }, { class: "danger", "aria-label": `Remove ${p.name}` })))))));
  }
  const add = apiForm([
    field("Passkey name", input("name", { value: "Passkey", maxlength: 100, required: true })),
    field("Current password", input("password", { type: "password", autocomplete: "current-password", required: true }),
      { hint: "Adding a second factor needs your password." }),
  ], "Add passkey", async (values) => {
    const { publicKey } = await api("POST", "/auth/webauthn/register/options",
      { password: values.password }, { allow401: true });
    let credential;
    try {
      credential = await webauthn.create(publicKey);
    } catch (error) {
      throw new Error(webauthn.describe(error));
    }
    await api("POST", "/auth/webauthn/register", { name: values.name, credential });
    add.reset();
    await loadPasskeys();
  }, { label: "Add a passkey" });
  main.append(heading("Security"), h("h2", {}, "Sessions"), sessions,
    h("h2", {}, "Passkeys"), passkeys, webauthn.supported() ? add : null);
  await Promise.all([loadSessions(), loadPasskeys()]);
}
