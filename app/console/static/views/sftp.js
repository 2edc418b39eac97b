// /console/sftp (admins, managers): drop-box accounts; credentials are shown once.
import { all, api, waitForJob } from "../api.js";
import { field, formatTime, h, heading, input, select, table } from "../dom.js";
import { actionButton, apiForm } from "../forms.js";

function credentials(box, result) {
  const fields = [["Username", result.username], ["Password", result.password],
    ["Host", result.host], ["Port", String(result.port)]].map(([label, value]) =>
    field(label, input(label.toLowerCase(), { readonly: true, value: value ?? "", class: "mono" })));
  box.replaceChildren(h("section", { "aria-labelledby": "creds-title" },
    h("h2", { id: "creds-title" }, "Credentials"),
    h("p", { class: "note" }, "The password is shown only now."), h("div", { class: "grid" }, fields)));
  box.querySelector("input").focus();
}

export async function render(main) {
  const buckets = await all("/buckets");
  const names = Object.fromEntries(buckets.map((b) => [b.id, b.name]));
  const list = h("div", {});
  const creds = h("div", { "aria-live": "polite" });
  async function load() {
    const accounts = await all("/sftp-accounts");
    list.replaceChildren(accounts.length === 0 ? h("p", {}, "No SFTP accounts.")
      : table("SFTP accounts", ["Username", "Bucket", "Label", "Status", "Created", "Actions"],
        accounts.map((a) => h("tr", {}, h("td", { class: "mono" }, a.username),
          h("td", {}, names[a.bucket_id] || a.bucket_id), h("td", {}, a.label),
          h("td", {}, a.status), h("td", {}, formatTime(a.created_at)),
          h("td", {}, h("div", { class: "row" },
            actionButton("Rotate password", async () => {
              const { job_id: jobId } = await api("POST", `/sftp-accounts/${a.id}/rotate-password`);
              credentials(creds, await waitForJob(jobId));
            }, { class: "secondary", "aria-label": `Rotate password of ${a.username}` }),
            actionButton("Delete", async () => {
              if (!window.confirm(`Delete ${a.username}?`)) return;
              const { job_id: jobId } = await api("DELETE", `/sftp-accounts/${a.id}`);
              await waitForJob(jobId);
              await load();
            }, { class: "danger", "aria-label": `Delete ${a.username}` })))))));
  }
  const form = apiForm([
    h("div", { class: "grid" },
      field("Bucket", select("bucket_id", buckets.map((b) => [b.id, b.name]), { required: true })),
      field("Label", input("label", { required: true, maxlength: 100, autocomplete: "off" }))),
  ], "Create account", async (values) => {
    const { job_id: jobId } = await api("POST", "/sftp-accounts", values);
    form.status.className = "note";
    form.status.textContent = "Provisioning…";
    await load();
    const result = await waitForJob(jobId);
    form.status.textContent = "";
    form.status.className = "error";
    form.reset();
    credentials(creds, result);
    await load();
  }, { label: "New SFTP account" });
  main.append(heading("SFTP"), buckets.length ? form : h("p", {}, "Create a bucket first."),
    creds, h("h2", {}, "Accounts"), list);
  await load();
}
