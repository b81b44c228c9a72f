// What every console page does first: ask who is signed in (api.js goes to /login on a 401),
// take the city's time zone, and fill the header's user name, role and 退出 button.
import { logout, me } from "./api.js";
import { setCityTimeZone } from "./dom.js";
import { roleLabel } from "./labels.js";
import { showError } from "./notify.js";

/** The header's user name, role and sign-out button. */
export function renderUser(u) {
  document.getElementById("user-name").textContent = u.display_name || u.username;
  document.getElementById("user-role").textContent = u.role_label || roleLabel(u.role);
  document.getElementById("logout-button").addEventListener("click", async () => {
    try {
      await logout();
    } catch {
      // signed out anyway as far as this page is concerned
    }
    location.replace("/login");
  });
}

/** `GET /api/auth/me`, the city's zone and the header; null when not signed in (or failed). */
export async function signIn() {
  let who;
  try {
    who = await me();
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return null;
  }
  setCityTimeZone(who.timezone);
  renderUser(who.user);
  return who;
}
