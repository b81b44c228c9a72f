// DOM and formatting helpers. Text always goes in through textContent / text nodes, never innerHTML.

/**
 * Create an element.
 *   el("td", { class: "x", "data-testid": "y", on: { click: fn } }, "text", childNode, ...)
 * Attribute values of null / undefined / false are skipped; true sets an empty attribute.
 * Properties that must be set as properties (value, checked, disabled, hidden ...) go under `props`.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    } else if (key === "props") {
      Object.assign(node, value);
    } else if (key === "class") {
      node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Empty a node, then append `children` (null / false / undefined are skipped). */
export function clear(node, ...children) {
  while (node.firstChild) node.removeChild(node.firstChild);
  append(node, children);
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

const pad = (n) => String(n).padStart(2, "0");

// ---- times in the city's time zone -------------------------------------------------------------
// Every time on the pages is the city's wall-clock time (the hub's CITYHUB_TIMEZONE, which
// GET /api/auth/me reports), whatever zone the browser runs in: a seat in another province, a
// laptop set to UTC or a big screen with a wrong zone all show the command center's clock.

let cityZone = undefined; // undefined: the browser's own zone, until setCityTimeZone()
const partsFormatters = new Map();

/** Use `tz` (an IANA name such as "Asia/Shanghai") for every time shown; false if it is unknown. */
export function setCityTimeZone(tz) {
  if (typeof tz !== "string" || tz === "") return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    return false; // an unknown zone: keep what we have rather than break every page
  }
  cityZone = tz;
  return true;
}

/** The zone times are shown in (an IANA name). */
export function cityTimeZone() {
  return cityZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function partsFormatter(tz) {
  const key = tz || "";
  let f = partsFormatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    partsFormatters.set(key, f);
  }
  return f;
}

/**
 * The wall-clock fields of an instant in the city's zone (or `tz`):
 * {year, month (1-12), day, hour, minute, second, weekday (0 = Sunday)}.
 */
export function zonedParts(date, tz = cityZone) {
  const d = date instanceof Date ? date : new Date(date);
  const out = {};
  for (const p of partsFormatter(tz).formatToParts(d)) {
    if (p.type !== "literal") out[p.type] = Number(p.value);
  }
  if (out.hour === 24) out.hour = 0; // old engines say 24:00 for midnight even with h23
  out.weekday = new Date(Date.UTC(out.year, out.month - 1, out.day)).getUTCDay();
  return out;
}

/** Milliseconds the zone is ahead of UTC at instant `ms`. */
function zoneOffset(ms, tz) {
  const p = zonedParts(new Date(ms), tz);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - (Math.floor(ms / 1000) * 1000);
}

/**
 * The instant at which the city's clock (or `tz`'s) shows the given wall-clock time. A time skipped
 * by a daylight-saving jump is taken as the same distance after the jump; a time seen twice, the
 * first time.
 */
export function fromZonedParts({ year, month, day, hour = 0, minute = 0, second = 0 }, tz = cityZone) {
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const before = zoneOffset(wall - 86_400_000, tz);
  const after = zoneOffset(wall + 86_400_000, tz);
  // Try the earlier offset first (a repeated hour keeps its first occurrence).
  for (const off of before >= after ? [before, after] : [after, before]) {
    const t = wall - off;
    if (zoneOffset(t, tz) === off) return new Date(t);
  }
  return new Date(wall - before); // in a gap: shift by the offset in force before it
}

/** Midnight that starts the city's day holding `date` (default: now), as a Date. */
export function startOfCityDay(date = new Date()) {
  const p = zonedParts(date);
  return fromZonedParts({ year: p.year, month: p.month, day: p.day });
}

/** "2026-11-23 14:05" in the city's time zone ("11-23 14:05" this year with short); "" for none. */
export function fmtTime(iso, { seconds = false, short = false, now = new Date() } = {}) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = zonedParts(d);
  const clock = `${pad(p.hour)}:${pad(p.minute)}${seconds ? `:${pad(p.second)}` : ""}`;
  if (short && p.year === zonedParts(now).year) return `${pad(p.month)}-${pad(p.day)} ${clock}`;
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${clock}`;
}

/** "14:05:09", the city's time of day. */
export function fmtClock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = zonedParts(d);
  return `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

// Date-time fields are plain text boxes ("2026-12-01 08:30"), not <input type="datetime-local">:
// the browser draws that one in its own interface language ("mm/dd/yyyy, --:-- --" in an English
// browser) and in no particular zone, while these fields always mean the city's clock.

/** The placeholder of a date-time field. */
export const CITY_INPUT_HINT = "年-月-日 时:分，如 2026-12-01 08:30";

/** An instant as the text of a date-time field: the city's wall-clock time, "2026-12-01 08:30". */
export function toCityInput(date) {
  const d = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(d.getTime())) return "";
  const p = zonedParts(d);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
}

const FULL_WIDTH = /[\uff10-\uff19\uff1a\uff0f\uff0d]/g;
const DATE_TIME_RE =
  /^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:(?:\s+|T|\s*日\s*)(\d{1,2})\s*[:时点]\s*(\d{1,2})(?:\s*[:分]\s*(\d{1,2})\s*秒?)?\s*分?)?$/;

/**
 * The wall-clock fields a person typed: "2026-12-01 08:30", "2026/12/1 8:30", "2026年12月1日 8:30",
 * "2026-12-01T08:30" (older links) or a bare date; full-width digits and colons are fine. Returns
 * {year, month, day, hour, minute, second, dateOnly} or null when it is not a real date and time.
 */
export function parseCityDateTime(text) {
  const t = String(text ?? "")
    .replace(FULL_WIDTH, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
    .trim();
  const m = DATE_TIME_RE.exec(t);
  if (!m) return null;
  const [year, month, day] = [m[1], m[2], m[3]].map(Number);
  const dateOnly = m[4] === undefined;
  const [hour, minute, second] = dateOnly ? [0, 0, 0] : [m[4], m[5], m[6] || 0].map(Number);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
    return null; // 2026-02-30
  }
  return { year, month, day, hour, minute, second, dateOnly };
}

/**
 * The text of a date-time field (the city's wall-clock time) as an ISO 8601 UTC string; "" when
 * empty or not a date. A bare date means its first moment, or with `endOfDay` its last.
 */
export function fromCityInput(text, { endOfDay = false } = {}) {
  const p = parseCityDateTime(text);
  if (!p) return "";
  if (p.dateOnly && endOfDay) {
    const next = new Date(Date.UTC(p.year, p.month - 1, p.day + 1));
    const start = fromZonedParts({
      year: next.getUTCFullYear(),
      month: next.getUTCMonth() + 1,
      day: next.getUTCDate(),
    });
    return new Date(start.getTime() - 1).toISOString();
  }
  return fromZonedParts(p).toISOString();
}

/** "1.2 MB" */
export function fmtSize(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
