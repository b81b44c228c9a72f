// The sign-in page: POST /api/auth/login, then go to ?next= (a same-origin path) or /board.
import { login } from "./api.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = form.querySelector('[data-testid="login-submit"]');

/** The page to go to after signing in: only a same-origin path starting with a single "/". */
export function safeNext(raw) {
  if (typeof raw !== "string" || raw === "") return "/board";
  if (!raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return "/board";
  if (/[\u0000-\u001f\\]/.test(raw)) return "/board";
  let url;
  try {
    url = new URL(raw, location.origin);
  } catch {
    return "/board";
  }
  if (url.origin !== location.origin) return "/board";
  if (url.pathname === "/login" || url.pathname.startsWith("/api/")) return "/board";
  return url.pathname + url.search + url.hash;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.textContent = "";
  errorBox.hidden = true;
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    showError(!username ? "请输入用户名" : "请输入密码");
    (!username ? form.username : form.password).focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = "正在登录…";
  try {
    await login(username, password);
    const next = safeNext(new URLSearchParams(location.search).get("next"));
    location.replace(next);
  } catch (err) {
    let message = err.message || "登录失败";
    if (err.status === 429 && err.retryAfter && !message.includes("秒")) {
      message += `（请 ${err.retryAfter} 秒后再试）`;
    }
    showError(message);
    form.password.value = "";
    form.password.focus();
    submit.disabled = false;
    submit.textContent = "登录";
  }
});
