// The page-level error banner and the short-lived success toast.

let toastTimer = null;

export function showError(message) {
  const box = document.getElementById("error-banner");
  if (!box) return;
  box.textContent = message;
  box.hidden = false;
}

export function clearError() {
  const box = document.getElementById("error-banner");
  if (!box) return;
  box.textContent = "";
  box.hidden = true;
}

export function toast(message, ms = 3000) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, ms);
}
