// /console/buckets/{id}: uploads (progress, then the scan's verdict), the files with their
// share links, and (admins and managers) the permissions and lifecycle on "Settings".
import { all, api, sleep, upload } from "../api.js";
import {
  button, field, formatBytes, formatTime, h, heading, input, select, table, uid,
} from "../dom.js";
import { actionButton, apiForm, showError } from "../forms.js";
import { MANAGES } from "./buckets.js";

const TERMINAL = ["clean", "rejected", "infected"];
const EXPIRIES = [["3600", "1 hour"], ["600", "10 minutes"], ["86400", "1 day"],
  ["604800", "7 days"]];

function verdict(upload) {
  if (upload.status === "rejected") return `rejected: ${upload.reason || "unknown"}`;
  if (upload.status === "pending") return "scanning";
  return upload.status;
}

export async function render(main, { me, params }) {
  const [bucketId] = params;
  const bucket = (await all("/buckets")).find((b) => b.id === bucketId);
  if (!bucket) {
    main.append(heading("Bucket not found"),
      h("p", {}, "It does not exist, or you may not read it. ",
        h("a", { href: "/console/buckets" }, "Buckets")));
    return;
  }
  main.append(heading(bucket.name));
  const filesPanel = h("div", {});
  const panels = [["Files", filesPanel]];
  if (MANAGES.includes(me.role)) panels.push(["Settings", settingsPanel(bucket, me)]);
  main.append(tabs(panels));
  await filesView(filesPanel, bucket, me);
}

function tabs(panels) {
  const list = h("div", { role: "tablist", "aria-label": "Bucket" });
  const wrap = h("div", {}, list);
  const tabEls = panels.map(([name, panel], i) => {
    const tabId = uid("tab");
    const panelId = uid("panel");
    const tab = h("button", { type: "button", role: "tab", id: tabId, "aria-controls": panelId,
      "aria-selected": i === 0 ? "true" : "false", tabindex: i === 0 ? "0" : "-1" }, name);
    panel.id = panelId;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tabId);
    panel.hidden = i !== 0;
    list.append(tab);
    wrap.append(panel);
    return tab;
  });
  function select_(index) {
    tabEls.forEach((tab, i) => {
      tab.setAttribute("aria-selected", i === index ? "true" : "false");
      tab.tabIndex = i === index ? 0 : -1;
      panels[i][1].hidden = i !== index;
    });
    tabEls[index].focus();
  }
  tabEls.forEach((tab, i) => {
    tab.addEventListener("click", () => select_(i));
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight") select_((i + 1) % tabEls.length);
      if (event.key === "ArrowLeft") select_((i + tabEls.length - 1) % tabEls.length);
    });
  });
  return wrap;
}

async function filesView(panel, bucket, me) {
  const filesBox = h("div", {});
  const dialog = shareDialog();
  async function load() {
    const files = await all(`/buckets/${bucket.id}/files`);
    filesBox.replaceChildren(files.length === 0 ? h("p", {}, "No files yet.")
      : table("Files", ["Name", "Type", "Size", "SHA-256", "Created", "Actions"],
        files.map((f) => fileRow(f, dialog, load))));
  }
  if (me.role !== "viewonly") {
    const uploads = h("ul", { class: "plain uploads", "aria-label": "Uploads" });
    const picker = input("file", { type: "file", multiple: true,
      accept: "image/*,audio/*" });
    picker.addEventListener("change", () => {
      for (const file of picker.files) sendOne(file, uploads, bucket, load);
      picker.value = "";
    });
    panel.append(h("section", { "aria-labelledby": "upload-title" },
      h("h2", { id: "upload-title" }, "Upload"),
      field("Upload files", picker, { hint: "Images and audio. Each file is scanned for viruses." }),
      uploads));
  }
  panel.append(h("h2", {}, "Files"), filesBox, dialog);
  await load();
}

async function sendOne(file, list, bucket, reload) {
  const bar = h("progress", { max: 100, value: 0, "aria-valuenow": 0, "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-label": `Sending ${file.name}` });
  const status = h("span", { class: "status", "aria-live": "polite" });
  const item = h("li", {}, h("span", { class: "mono" }, file.name), bar, status);
  list.prepend(item);
  let accepted;
  try {
    accepted = await upload(`/buckets/${bucket.id}/uploads`, file, (percent) => {
      bar.value = percent;
      bar.setAttribute("aria-valuenow", String(percent));
    });
  } catch (error) {
    bar.remove();
    status.classList.add("error");
    showError(status, error);
    return;
  }
  bar.remove();
  status.textContent = "scanning";
  for (let i = 0; i < 300; i += 1) {
    await sleep(i < 10 ? 500 : 2000);
    let state;
    try {
      state = await api("GET", `/uploads/${accepted.id}`);
    } catch (error) {
      showError(status, error);
      return;
    }
    if (TERMINAL.includes(state.status)) {
      status.textContent = verdict(state);
      status.classList.add(state.status === "clean" ? "ok" : "error");
      if (state.status === "clean") await reload();
      return;
    }
  }
}

function fileRow(file, dialog, reload) {
  const [share] = actionButton("Share link", async () => dialog.openFor(file),
    { class: "secondary", "aria-label": null });
  const [del, delStatus] = actionButton("Delete", async () => {
    if (!window.confirm(`Delete ${file.filename}?`)) return;
    await api("DELETE", `/files/${file.id}`);
    await reload();
  }, { class: "danger" });
  return h("tr", {},
    h("td", {}, file.filename), h("td", {}, file.content_type), h("td", {}, formatBytes(file.size)),
    h("td", { class: "clip" }, file.sha256), h("td", {}, formatTime(file.created_at)),
    h("td", {}, h("div", { class: "row" }, share, del, delStatus)));
}

function shareDialog() {
  const titleId = uid("share-title");
  const fileName = h("p", { class: "mono" });
  const result = h("div", {});
  const formBox = h("div", {});
  const close = button("Close", { class: "secondary" });
  const dialog = h("dialog", { "aria-labelledby": titleId },
    h("h2", { id: titleId }, "Share link"), fileName, formBox, result,
    h("div", { class: "row" }, close));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { result.replaceChildren(); formBox.replaceChildren(); });
  dialog.openFor = (file) => {
    fileName.textContent = file.filename;
    result.replaceChildren();
    const form = apiForm([
      field("Expires in", select("expires_in", EXPIRIES)),
      field("Max downloads", input("max_downloads", { type: "number", min: 1, max: 10000 }),
        { hint: "Optional." }),
      field("Password", input("password", { type: "password", autocomplete: "new-password",
        minlength: 12, maxlength: 128 }), { hint: "Optional: 12 characters or more." }),
      field("Allowed IPs", input("allowed_ips", { autocomplete: "off" }),
        { hint: "Optional: addresses or CIDRs, separated by commas or spaces." }),
    ], "Create link", async (values) => {
      const body = { expires_in: Number(values.expires_in) };
      if (values.max_downloads) body.max_downloads = Number(values.max_downloads);
      if (values.password) body.password = values.password;
      const ips = values.allowed_ips.split(/[\s,]+/).filter(Boolean);
      if (ips.length) body.allowed_ips = ips;
      const link = await api("POST", `/files/${file.id}/links`, body);
      form.remove();
      showLink(result, link);
    }, { cls: "", label: "Share link" });
    formBox.replaceChildren(form);
    dialog.showModal();
    form.querySelector("select").focus();
  };
  return dialog;
}

function showLink(result, link) {
  const url = input("link", { readonly: true, value: link.url, class: "mono" });
  const copied = h("span", { class: "ok", "aria-live": "polite" });
  const copy = button("Copy");
  copy.addEventListener("click", async () => {
    url.select();
    try {
      await navigator.clipboard.writeText(url.value);
      copied.textContent = "Copied";
    } catch {
      copied.textContent = "Select the link and copy it.";
    }
  });
  result.replaceChildren(field("Link", url,
    { hint: `Expires ${formatTime(link.expires_at)}.${link.password_protected ? " Password protected." : ""}` }),
  h("div", { class: "row" }, copy, copied));
  url.focus();
}

function settingsPanel(bucket, me) {
  const panel = h("div", {});
  const lifecycle = apiForm([
    field("Expire after days", input("expire_after_days", { type: "number", min: 1, max: 3650 }),
      { hint: "Files older than this are deleted. Empty: kept until deleted." }),
  ], "Save rule", async (values) => {
    const days = values.expire_after_days ? Number(values.expire_after_days) : null;
    await api("PUT", `/buckets/${bucket.id}/lifecycle`, { expire_after_days: days });
    lifecycle.status.textContent = "Saved.";
  }, { label: "Lifecycle" });
  const perms = h("div", {});
  panel.append(h("h2", {}, "Permissions"),
    h("p", { class: "note" }, "Admins and managers hold every permission; staff and view-only "
      + "members hold what is granted here."), perms,
    h("h2", {}, "Lifecycle"), lifecycle);
  if (me.role === "admin") {
    const [del, status] = actionButton("Delete bucket", async () => {
      if (!window.confirm(`Delete the bucket ${bucket.name}?`)) return;
      await api("DELETE", `/buckets/${bucket.id}`);
      window.location.assign("/console/buckets");
    }, { class: "danger" });
    panel.append(h("h2", {}, "Delete"), h("div", { class: "row" }, del, status));
  }
  all("/members").then((members) => {
    const rows = members.filter((m) => ["staff", "viewonly"].includes(m.role)).map((m) => {
      const boxes = ["read", "write", "delete"].map((right) => h("input", {
        type: "checkbox", "aria-label": `${right} for ${m.email}`, value: right,
        disabled: m.role === "viewonly" && right !== "read" }));
      const [save, status] = actionButton("Save", async () => {
        const [read, write, del] = boxes.map((b) => b.checked);
        await api("PUT", `/buckets/${bucket.id}/permissions/${m.id}`, { read, write, delete: del });
        status.textContent = "Saved.";
        status.className = "ok";
      }, { class: "secondary", "aria-label": `Save permissions for ${m.email}` });
      return h("tr", {}, h("td", {}, m.email), h("td", {}, m.role),
        boxes.map((b) => h("td", {}, b)), h("td", {}, h("div", { class: "row" }, save, status)));
    });
    perms.replaceChildren(rows.length === 0 ? h("p", {}, "No staff or view-only members.")
      : table("Permissions", ["Member", "Role", "Read", "Write", "Delete", "Actions"], rows));
  }).catch((error) => {
    const p = h("p", { class: "error" });
    showError(p, error);
    perms.replaceChildren(p);
  });
  return panel;
}
