// /console/access-keys (admins): keys for scripts; a new key is shown once.
import { all, api } from "../api.js";
import { button, field, formatTime, h, heading, input, table } from "../dom.js";
import { actionButton, apiForm } from "../forms.js";

const SCOPES = ["buckets:read", "buckets:write", "files:read", "files:write", "files:delete",
  "sftp:write", "billing:read", "audit:read", "jobs:read"];

export async function render(main) {
  const list = h("div", {});
  const created = h("div", {});
  async function load() {
    const keys = await all("/access-keys");
    list.replaceChildren(keys.length === 0 ? h("p", {}, "No access keys.")
      : table("Access keys", ["Name", "Prefix", "Scopes", "Created", "Expires", "Last used", "Actions"],
        keys.map((k) => h("tr", {}, h("td", {}, k.name), h("td", { class: "mono" }, k.prefix),
          h("td", {}, k.scopes.join(", ")), h("td", {}, formatTime(k.created_at)),
          h("td", {}, formatTime(k.expires_at)),
          h("td", {}, k.last_used_at ? `${formatTime(k.last_used_at)} from ${k.last_used_ip || "?"}` : "never"),
          h("td", {}, k.revoked_at ? `revoked ${formatTime(k.revoked_at)}`
            : h("div", { class: "row" }, actionButton("Revoke", async () => {
              if (!window.confirm(`Revoke ${k.name}?`)) return;
              await api("DELETE", `/access-keys/${k.id}`);
              await load();
            }, { class: "danger", "aria-label": `Revoke ${k.name}` })))))));
  }
  const scopes = h("fieldset", { class: "card" }, h("legend", {}, "Scopes"),
    h("div", { class: "grid" }, SCOPES.map((s) => field(s,
      h("input", { type: "checkbox", name: "scopes", value: s }), { inline: true }))));
  const form = apiForm([
    field("Name", input("name", { required: true, maxlength: 100, autocomplete: "off" })),
    scopes,
    field("Expires in days", input("expires_in_days", { type: "number", min: 1, max: 365, value: 90 })),
  ], "Create key", async (values) => {
    const key = await api("POST", "/access-keys", { name: values.name,
      scopes: values.scopes || [], expires_in_days: Number(values.expires_in_days) });
    form.reset();
    const field_ = input("new_key", { readonly: true, value: key.key, class: "mono" });
    const copy = button("Copy");
    copy.addEventListener("click", () => { field_.select(); navigator.clipboard.writeText(field_.value).catch(() => {}); });
    created.replaceChildren(h("div", { class: "card" },
      field("New key", field_, { hint: "Shown only now: store it safely." }), copy));
    field_.focus();
    await load();
  }, { label: "New access key" });
  main.append(heading("Access keys"), form, created, h("h2", {}, "Keys"), list);
  await load();
}
