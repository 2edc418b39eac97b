// /console/buckets: the buckets the caller may read; admins and managers create them.
import { api, all } from "../api.js";
import { button, field, formatBytes, formatTime, h, heading, input, table } from "../dom.js";
import { apiForm } from "../forms.js";

export const MANAGES = ["admin", "manager"];

export async function render(main, { me }) {
  const list = h("div", {});
  async function load() {
    const buckets = await all("/buckets");
    list.replaceChildren(buckets.length === 0 ? h("p", {}, "No buckets yet.")
      : table("Buckets", ["Name", "Size", "Files", "Created"], buckets.map((b) => h("tr", {},
        h("td", {}, h("a", { href: `/console/buckets/${b.id}` }, b.name)),
        h("td", {}, formatBytes(b.bytes)), h("td", {}, String(b.objects)),
        h("td", {}, formatTime(b.created_at))))));
  }
  main.append(heading("Buckets"));
  if (MANAGES.includes(me.role)) {
    const name = input("name", { required: true, minlength: 3, maxlength: 63,
      pattern: "[a-z0-9-]+", autocomplete: "off" });
    const form = apiForm([field("Bucket name", name,
      { hint: "3 to 63 characters: lower-case letters, digits and hyphens." })],
    "Create", async (values) => {
      await api("POST", "/buckets", { name: values.name.trim() });
      form.reset();
      form.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      await load();
    }, { label: "New bucket" });
    form.hidden = true;
    form.id = "new-bucket";
    const toggle = button("New bucket", { "aria-expanded": "false", "aria-controls": "new-bucket" });
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) name.focus();
    });
    main.append(h("div", { class: "row" }, toggle), form);
  }
  main.append(list);
  await load();
}
