// /console/audit (admins): events newest first, filtered and paged; exports as a job whose
// result is a share link.
import { api, waitForJob } from "../api.js";
import { field, formatTime, h, heading, input, select, table } from "../dom.js";
import { actionButton, apiForm } from "../forms.js";

const SEVERITIES = ["info", "notice", "warning", "critical"];

function iso(local) {
  if (!local) return null;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

async function actions() {
  try {
    const document_ = await fetch("/api/v1/openapi.json", { credentials: "same-origin" })
      .then((r) => r.json());
    return document_.components.schemas.AuditAction.enum;
  } catch {
    return [];
  }
}

function party(p) {
  if (!p) return "";
  return p.id ? `${p.type} ${p.id}` : p.type;
}

export async function render(main) {
  const rows = h("tbody", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const moreStatus = h("span", { class: "error", "aria-live": "polite" });
  const count = h("p", { class: "note", "aria-live": "polite" });
  let query = "";
  let cursor = null;

  async function page(reset) {
    const params = new URLSearchParams(query);
    params.set("limit", "50");
    if (!reset && cursor) params.set("cursor", cursor);
    const data = await api("GET", `/audit-events?${params}`);
    if (reset) rows.replaceChildren();
    for (const e of data.items) {
      rows.append(h("tr", {}, h("td", {}, formatTime(e.occurred_at)), h("td", { class: "action" }, e.action),
        h("td", {}, e.severity), h("td", { class: "clip" }, party(e.actor)),
        h("td", { class: "clip" }, party(e.target)), h("td", { class: "mono" }, e.ip || "")));
    }
    cursor = data.next_cursor;
    more.hidden = !cursor;
    const shown = rows.children.length;
    count.textContent = `${shown} ${shown === 1 ? "event" : "events"} shown.`;
  }
  more.addEventListener("click", async () => {
    more.disabled = true;
    moreStatus.textContent = "";
    try {
      await page(false);
    } catch (error) {
      moreStatus.textContent = error.describe ? error.describe() : String(error);
    } finally {
      more.disabled = false;
    }
  });

  const names = await actions();
  const filters = apiForm([
    h("div", { class: "grid" },
      field("Action", select("action", [["", "Any"], ...names.map((a) => [a, a])])),
      field("Severity", select("severity", [["", "Any"], ...SEVERITIES.map((s) => [s, s])])),
      field("Since", input("since", { type: "datetime-local" })),
      field("Until", input("until", { type: "datetime-local" }))),
  ], "Apply", async (values) => {
    const params = new URLSearchParams();
    if (values.action) params.set("action", values.action);
    if (values.severity) params.set("severity", values.severity);
    if (iso(values.since)) params.set("since", iso(values.since));
    if (iso(values.until)) params.set("until", iso(values.until));
    query = params.toString();
    await page(true);
  }, { label: "Filters" });

  const format = select("format", [["jsonl", "JSON lines"], ["csv", "CSV"]]);
  const download = h("p", { "aria-live": "polite" });
  const [exportButton, exportStatus] = actionButton("Export", async () => {
    download.replaceChildren();
    const values = new FormData(filters);
    const until = iso(values.get("until")) || new Date().toISOString();
    const since = iso(values.get("since"))
      || new Date(Date.now() - 30 * 24 * 3600 * 1000).toISOString();
    const { job_id: jobId } = await api("POST", "/audit-exports", { since, until, format: format.value });
    download.textContent = "Preparing the export…";
    const result = await waitForJob(jobId);
    download.replaceChildren(h("a", { href: result.url }, "Download export"));
  });

  main.append(heading("Audit"), filters,
    h("section", { "aria-labelledby": "export-title" }, h("h2", { id: "export-title" }, "Export"),
      h("p", { class: "note" }, "The events between Since and Until (default: the last 30 days)."),
      h("div", { class: "row" }, field("Format", format), exportButton, exportStatus), download),
    h("h2", {}, "Events"), count,
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Audit events"),
      h("thead", {}, h("tr", {}, ["Time", "Action", "Severity", "Actor", "Target", "IP"]
        .map((c) => h("th", { scope: "col" }, c)))), rows)),
    h("div", { class: "row" }, more, moreStatus));
  await page(true);
}
