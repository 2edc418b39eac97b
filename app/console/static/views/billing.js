// /console/billing: the billing profile (admins), invoices with their PDF and a chart of
// the last 30 days' stored bytes (admins and managers).
import { all, api, ApiError } from "../api.js";
import { field, formatBytes, formatTime, h, heading, input, select, svg, table } from "../dom.js";
import { apiForm } from "../forms.js";

const TAX_TYPES = [["none", "None"], ["cpf", "CPF"], ["cnpj", "CNPJ"]];

function money(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

async function profileForm() {
  let profile = null;
  try {
    profile = await api("GET", "/billing/profile");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  const p = profile || { address: {} };
  const a = p.address || {};
  const form = apiForm([
    h("div", { class: "grid" },
      field("Legal name", input("legal_name", { value: p.legal_name, required: true, autocomplete: "organization" })),
      field("Billing email", input("email", { type: "email", value: p.email, required: true })),
      field("Tax ID type", select("tax_id_type", TAX_TYPES)),
      field("Tax ID", input("tax_id", { value: p.tax_id || "" }))),
    h("div", { class: "grid" },
      field("Address line 1", input("address.line1", { value: a.line1, autocomplete: "address-line1" })),
      field("Address line 2", input("address.line2", { value: a.line2, autocomplete: "address-line2" })),
      field("City", input("address.city", { value: a.city, autocomplete: "address-level2" })),
      field("State", input("address.state", { value: a.state, autocomplete: "address-level1" })),
      field("Postal code", input("address.postal_code", { value: a.postal_code, autocomplete: "postal-code" })),
      field("Country", input("address.country", { value: a.country || "BR", maxlength: 2,
        autocomplete: "country" }), { hint: "Two letters (ISO 3166-1), for example BR." })),
  ], "Save", async (values) => {
    const body = { legal_name: values.legal_name, email: values.email,
      tax_id_type: values.tax_id_type, tax_id: values.tax_id || null, address: {} };
    for (const [name, value] of Object.entries(values)) {
      if (name.startsWith("address.")) body.address[name.slice(8)] = value;
    }
    await api("PUT", "/billing/profile", body);
    form.status.className = "ok";
    form.status.textContent = "Saved.";
  }, { label: "Billing profile" });
  form.addEventListener("submit", () => { form.status.className = "error"; }, { capture: true });
  form.querySelector("select").value = p.tax_id_type || "none";
  return form;
}

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

async function chart() {
  const today = new Date();
  const from = new Date(today.getTime() - 29 * 24 * 3600 * 1000);
  const items = await all(`/usage?from=${isoDate(from)}&to=${isoDate(today)}`);
  const days = [];
  for (let i = 0; i < 30; i += 1) days.push(isoDate(new Date(from.getTime() + i * 24 * 3600 * 1000)));
  const totals = Object.fromEntries(days.map((d) => [d, 0]));
  for (const item of items) if (item.date in totals) totals[item.date] += item.bytes;
  const max = Math.max(1, ...Object.values(totals));
  const width = 600;
  const height = 200;
  const left = 70;
  const bottom = 24;
  const barWidth = (width - left) / days.length;
  const latest = totals[days[days.length - 1]];
  const graphic = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Storage over time" },
  svg("title", {}, "Storage over time"),
  svg("desc", {}, `Stored bytes per day for the last 30 days; peak ${formatBytes(max)}, latest ${formatBytes(latest)}.`),
  svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
  svg("text", { x: 4, y: 14 }, formatBytes(max)),
  svg("text", { x: 4, y: height - bottom }, "0"),
  svg("text", { x: left, y: height - 6 }, days[0]),
  svg("text", { x: width - 80, y: height - 6 }, days[days.length - 1]),
  days.map((d, i) => {
    const barHeight = ((height - bottom - 20) * totals[d]) / max;
    return svg("rect", { class: "bar", x: left + i * barWidth + 1, y: height - bottom - barHeight,
      width: Math.max(1, barWidth - 2), height: barHeight });
  }));
  return graphic;
}

export async function render(main, { me }) {
  main.append(heading("Billing"));
  if (me.role === "admin") main.append(h("h2", {}, "Billing profile"), await profileForm());
  const invoices = await all("/invoices");
  main.append(h("h2", {}, "Invoices"), invoices.length === 0 ? h("p", {}, "No invoices yet.")
    : table("Invoices", ["Number", "Period", "Status", "Total", "Due", "Document"],
      invoices.map((i) => h("tr", {}, h("td", { class: "mono" }, i.number), h("td", {}, i.period),
        h("td", {}, i.status), h("td", {}, money(i.total_cents, i.currency)),
        h("td", {}, formatTime(i.due_at)),
        h("td", {}, h("a", { href: `/api/v1/invoices/${i.id}/pdf` }, "PDF"))))));
  main.append(h("h2", {}, "Storage over time"), await chart());
}
