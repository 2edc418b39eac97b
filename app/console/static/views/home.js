// /console/: the buckets for a signed-in person, else the sign-in page.
import { api } from "../api.js";

export async function render() {
  let me = null;
  try {
    me = await api("GET", "/auth/me", undefined, { allow401: true });
  } catch {
    me = null;
  }
  window.location.replace(me && me.session === "full" ? "/console/buckets" : "/console/login");
}
