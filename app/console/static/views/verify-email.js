// /verify-email?token=: posts the token (already gone from the address bar).
import { api } from "../api.js";
import { h, heading } from "../dom.js";
import { showError } from "../forms.js";
import { linkToken } from "../link.js";

export async function render(main) {
  const token = linkToken();
  const message = h("p", { class: "error", role: "alert" });
  if (!token) {
    message.textContent = "This link has no token. Open the link from the email again.";
    main.append(heading("Email not verified"), message);
    return;
  }
  try {
    await api("POST", "/auth/verify-email", { token });
    main.append(heading("Email verified"), h("p", {}, "Your email address is confirmed."),
      h("p", {}, h("a", { href: "/console/login" }, "Sign in")));
  } catch (error) {
    showError(message, error);
    main.append(heading("Email not verified"), message,
      h("p", {}, h("a", { href: "/console/login" }, "Sign in")));
  }
}
