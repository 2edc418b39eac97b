// /console/login: password, then the second factor: a code or a passkey when one is due,
// or enrolment (TOTP with its QR code, or a passkey) for a role that must have one.
import { api } from "../api.js";
import { clear, field, h, heading, input } from "../dom.js";
import { actionButton, apiForm, showError } from "../forms.js";
import * as webauthn from "../webauthn.js";

const HOME = "/console/buckets";

function done() {
  window.location.assign(HOME);
}

function show(main, ...children) {
  clear(main).append(...children);
  main.querySelector("h1").focus();
}

function passwordStep(main) {
  const form = apiForm([
    field("Email", input("email", { type: "email", autocomplete: "username", required: true })),
    field("Password", input("password", { type: "password", autocomplete: "current-password", required: true })),
  ], "Sign in", async (values) => {
    const answer = await api("POST", "/auth/login", values, { allow401: true });
    next(main, answer.status);
  }, { cls: "card narrow", label: "Sign in" });
  return [heading("Sign in"), form,
    h("p", {}, h("a", { href: "/console/forgot-password" }, "Forgot password?")),
    h("p", {}, "New here? ", h("a", { href: "/console/signup" }, "Create an account"))];
}

function next(main, status) {
  if (status === "ok") done();
  else if (status === "mfa_required") show(main, ...codeStep());
  else enrolStep(main);
}

function codeStep() {
  const form = apiForm([
    field("Code", input("code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
      { hint: "From your authenticator app, or one of your recovery codes." }),
  ], "Verify", async (values) => {
    await api("POST", "/auth/mfa/verify", { code: values.code.trim() }, { allow401: true });
    done();
  }, { cls: "card narrow", label: "Two-factor code" });
  const passkey = webauthn.supported() ? actionButton("Use passkey", async () => {
    const { publicKey } = await api("POST", "/auth/webauthn/authenticate/options");
    let credential;
    try {
      credential = await webauthn.get(publicKey);
    } catch (error) {
      throw new Error(webauthn.describe(error));
    }
    await api("POST", "/auth/webauthn/authenticate", { credential }, { allow401: true });
    done();
  }, { class: "secondary" }) : [];
  return [heading("Two-factor authentication"), form,
    h("div", { class: "card narrow" }, h("p", {}, "Or sign in with a passkey."), passkey)];
}

async function enrolStep(main) {
  const problem = h("p", { class: "error", role: "alert" });
  let enrolment;
  try {
    enrolment = await api("POST", "/auth/mfa/enroll");
  } catch (error) {
    showError(problem, error);
    show(main, heading("Set up two-factor authentication"), problem);
    return;
  }
  const secret = input("secret", { readonly: true, value: enrolment.secret, class: "mono",
    autocomplete: "off", spellcheck: "false" });
  const confirm = apiForm([
    field("Code", input("code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
      { hint: "The 6-digit code your app shows for Portcullis." }),
  ], "Confirm", async (values) => {
    const { recovery_codes: codes } = await api("POST", "/auth/mfa/enroll/confirm",
      { code: values.code.trim() });
    recoveryCodes(main, codes);
  }, { cls: "narrow", label: "Confirm the authenticator" });
  const passkey = webauthn.supported() ? passkeyEnrolment() : null;
  show(main, heading("Set up two-factor authentication"),
    h("section", { "aria-labelledby": "totp-title" },
      h("h2", { id: "totp-title" }, "Authenticator app"),
      h("p", {}, "Scan the QR code with your authenticator app, or type the secret into it."),
      h("img", { class: "qr", src: enrolment.qr_svg, alt: "QR code for your authenticator app",
        width: 180, height: 180 }),
      field("Secret", secret),
      confirm),
    passkey);
}

function passkeyEnrolment() {
  const name = input("passkey_name", { value: "Passkey", maxlength: 100 });
  const [button, status] = actionButton("Add passkey", async () => {
    const { publicKey } = await api("POST", "/auth/webauthn/register/options");
    let credential;
    try {
      credential = await webauthn.create(publicKey);
    } catch (error) {
      throw new Error(webauthn.describe(error));
    }
    await api("POST", "/auth/webauthn/register", { name: name.value.trim() || "Passkey", credential });
    done();
  }, { class: "secondary" });
  return h("section", { "aria-labelledby": "passkey-title" },
    h("h2", { id: "passkey-title" }, "Or a passkey"),
    h("p", {}, "Use this device's screen lock or a security key instead of an app."),
    field("Passkey name", name), h("div", { class: "row" }, button, status));
}

function recoveryCodes(main, codes) {
  const cont = h("button", { type: "button" }, "Continue");
  cont.addEventListener("click", done);
  show(main, heading("Recovery codes"),
    h("p", {}, "Keep these somewhere safe. Each one signs you in once if you lose your "
      + "authenticator. They are shown only now."),
    h("ul", { class: "codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", {}, c))),
    cont);
}

export async function render(main) {
  let me = null;
  try {
    me = await api("GET", "/auth/me", undefined, { allow401: true });
  } catch {
    me = null;
  }
  if (me && me.session === "full") {
    done();
    return;
  }
  if (me && me.session === "mfa_pending") {
    main.append(...codeStep());
  } else if (me && me.session === "mfa_enrollment") {
    await enrolStep(main);
  } else {
    main.append(...passwordStep(main));
  }
}
