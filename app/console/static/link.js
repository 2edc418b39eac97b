// The email links' token, taken from the address by link-token.js before anything loaded.
export function linkToken() {
  return window.portcullisLinkToken || null;
}
