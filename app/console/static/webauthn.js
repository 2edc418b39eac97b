// Passkeys: the API's WebAuthn options (JSON, base64url for binary fields) to the
// browser's navigator.credentials and its answer back to JSON.

function fromB64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const bytes = atob(padded);
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 1) out[i] = bytes.charCodeAt(i);
  return out.buffer;
}

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
}

export function supported() {
  return Boolean(window.PublicKeyCredential && navigator.credentials);
}

export async function create(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
  };
  const credential = await navigator.credentials.create({ publicKey });
  const response = {
    clientDataJSON: toB64url(credential.response.clientDataJSON),
    attestationObject: toB64url(credential.response.attestationObject),
  };
  if (credential.response.getTransports) response.transports = credential.response.getTransports();
  return { id: credential.id, rawId: toB64url(credential.rawId), type: credential.type, response };
}

export async function get(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    allowCredentials: descriptors(options.allowCredentials),
  };
  const credential = await navigator.credentials.get({ publicKey });
  const response = {
    clientDataJSON: toB64url(credential.response.clientDataJSON),
    authenticatorData: toB64url(credential.response.authenticatorData),
    signature: toB64url(credential.response.signature),
  };
  if (credential.response.userHandle) response.userHandle = toB64url(credential.response.userHandle);
  return { id: credential.id, rawId: toB64url(credential.rawId), type: credential.type, response };
}

// A refused or cancelled ceremony, in words (the browser's own errors are terse).
export function describe(error) {
  if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
  if (error && error.name === "InvalidStateError") return "This passkey is already registered.";
  return (error && error.message) || "The passkey could not be used.";
}
