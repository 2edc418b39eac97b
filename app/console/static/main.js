// The console's entry point: which page this address is, who is signed in, the navigation
// their role may use, then the page's own module.
import { api, ApiError, LOGIN_PAGE } from "./api.js";
import { clear, h } from "./dom.js";
import { showError } from "./forms.js";

const ALL = ["admin", "manager", "staff", "viewonly"];
export const NAV = [
  ["Buckets", "/console/buckets", ALL],
  ["Members", "/console/members", ALL],
  ["Access keys", "/console/access-keys", ["admin"]],
  ["SFTP", "/console/sftp", ["admin", "manager"]],
  ["Audit", "/console/audit", ["admin"]],
  ["Billing", "/console/billing", ["admin", "manager"]],
  ["Security", "/console/security", ALL],
];

// [pattern, module, signed in?]
const PAGES = [
  [/^\/console\/$/, "home", false],
  [/^\/console\/signup$/, "signup", false],
  [/^\/console\/login$/, "login", false],
  [/^\/console\/forgot-password$/, "forgot", false],
  [/^\/verify-email$/, "verify-email", false],
  [/^\/accept-invitation$/, "accept-invitation", false],
  [/^\/reset-password$/, "reset-password", false],
  [/^\/console\/buckets$/, "buckets", true],
  [/^\/console\/buckets\/([0-9a-f-]{36})$/, "bucket", true],
  [/^\/console\/members$/, "members", true],
  [/^\/console\/access-keys$/, "access-keys", true],
  [/^\/console\/sftp$/, "sftp", true],
  [/^\/console\/audit$/, "audit", true],
  [/^\/console\/billing$/, "billing", true],
  [/^\/console\/security$/, "security", true],
];

function renderNav(me) {
  const nav = document.getElementById("nav");
  const here = window.location.pathname;
  const links = NAV.filter(([, , roles]) => roles.includes(me.role)).map(([text, href]) => {
    const current = here === href || here.startsWith(`${href}/`);
    return h("li", {}, h("a", { href, "aria-current": current ? "page" : null }, text));
  });
  const signOut = h("button", { type: "button" }, "Sign out");
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    try {
      await api("POST", "/auth/logout", undefined, { allow401: true });
    } catch {
      // Signed out already, or the session is gone: the sign-in page either way.
    }
    window.location.assign(LOGIN_PAGE);
  });
  nav.replaceChildren(h("ul", {}, links, h("li", {}, signOut)));
  nav.hidden = false;
}

export function allowed(me, path) {
  const entry = NAV.find(([, href]) => path === href || path.startsWith(`${href}/`));
  return !entry || entry[2].includes(me.role);
}

async function start() {
  const main = document.getElementById("main");
  const path = window.location.pathname;
  const found = PAGES.map(([re, name, privateOnly]) => [path.match(re), name, privateOnly])
    .find(([match]) => match);
  if (!found) {
    clear(main).append(h("h1", {}, "Page not found"));
    return;
  }
  const [match, name, signedIn] = found;
  try {
    let me = null;
    if (signedIn) {
      me = await api("GET", "/auth/me");
      if (me.session !== "full") {
        window.location.assign(LOGIN_PAGE);
        return;
      }
      renderNav(me);
      if (!allowed(me, path)) {
        clear(main).append(h("h1", { tabindex: "-1" }, "Not available"),
          h("p", {}, "Your role cannot use this page."));
        return;
      }
    }
    const view = await import(`./views/${name}.js`);
    clear(main);
    await view.render(main, { me, params: match.slice(1) });
    const first = main.querySelector("h1");
    if (first) first.focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // on its way to sign in
    const message = h("p", { class: "error", role: "alert" });
    showError(message, error);
    clear(main).append(h("h1", {}, "Something went wrong"), message);
  }
}

start();
