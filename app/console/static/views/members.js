// /console/members: who is in the company; admins and managers invite, admins change roles,
// suspend and remove.
import { all, api } from "../api.js";
import { field, h, heading, input, select, table } from "../dom.js";
import { actionButton, apiForm, showError } from "../forms.js";

const ROLES = ["admin", "manager", "staff", "viewonly"];
const ROLE_NAMES = { admin: "Admin", manager: "Manager", staff: "Staff", viewonly: "View only" };

export async function render(main, { me }) {
  const list = h("div", {});
  async function load() {
    const members = await all("/members");
    list.replaceChildren(table("Members", ["Name", "Email", "Role", "Status", "Actions"],
      members.map((m) => row(m, me, load))));
  }
  main.append(heading("Members"));
  if (me.role === "admin" || me.role === "manager") {
    const invitable = me.role === "admin" ? ROLES : ["staff", "viewonly"];
    const form = apiForm([
      h("div", { class: "grid" },
        field("Email", input("email", { type: "email", autocomplete: "off", required: true })),
        field("Role", select("role", invitable.map((r) => [r, ROLE_NAMES[r]])))),
    ], "Invite", async (values) => {
      await api("POST", "/invitations", values);
      form.reset();
      form.status.className = "ok";
      form.status.textContent = `Invitation sent to ${values.email}.`;
    }, { label: "Invite a member" });
    form.addEventListener("submit", () => { form.status.className = "error"; }, { capture: true });
    form.querySelector("select").value = "staff"; // the least a new member usually needs
    main.append(h("h2", {}, "Invite"), form);
  }
  main.append(h("h2", {}, "People"), list);
  await load();
}

function row(member, me, reload) {
  const status = h("span", { class: "error", "aria-live": "polite" });
  let roleCell = ROLE_NAMES[member.role] || member.role;
  const actions = [];
  if (me.role === "admin") {
    const picker = select("role", ROLES.map((r) => [r, ROLE_NAMES[r]]),
      { "aria-label": `Role for ${member.email}` });
    picker.value = member.role;
    picker.addEventListener("change", async () => {
      status.textContent = "";
      try {
        await api("PATCH", `/members/${member.id}`, { role: picker.value });
        await reload();
      } catch (error) {
        picker.value = member.role;
        showError(status, error);
      }
    });
    roleCell = picker;
    const suspended = member.status === "suspended";
    actions.push(...actionButton(suspended ? "Reactivate" : "Suspend", async () => {
      await api("PATCH", `/members/${member.id}`, { status: suspended ? "active" : "suspended" });
      await reload();
    }, { class: "secondary" }));
    actions.push(...actionButton("Remove", async () => {
      if (!window.confirm(`Remove ${member.email}?`)) return;
      await api("DELETE", `/members/${member.id}`);
      await reload();
    }, { class: "danger" }));
  }
  return h("tr", {}, h("td", {}, member.name), h("td", {}, member.email), h("td", {}, roleCell),
    h("td", {}, member.status), h("td", {}, h("div", { class: "row" }, actions, status)));
}
