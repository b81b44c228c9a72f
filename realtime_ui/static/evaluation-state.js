// The evaluation page's state: the chosen period (signals) and the calls of /api/evaluation/*
// (docs/evaluation.md, the API contract of issue 11). Every table is loaded on its own: an
// endpoint that has not landed (404/405) or fails leaves its tab empty with "暂无数据", never the
// whole page.
import { api, toQuery } from "./api.js";
import { zonedParts } from "./dom.js";
import { signal } from "./ui.js";

export const READ_ROLES = new Set(["admin", "seat", "dispatcher", "viewer", "department"]);
/** Roles that see only their own row of their own post's table (the API refuses them the rest). */
export const OWN_ROW_ROLES = new Set(["supervisor", "agent"]);

export const PERIOD_KINDS = [
  ["day", "日"],
  ["week", "周"],
  ["month", "月"],
  ["quarter", "季"],
  ["year", "年"],
  ["range", "自定义"],
];

const q = new URLSearchParams(location.search);
/** {kind, day, start, end}: kind "range" uses start/end (local dates, end exclusive). */
export const period = signal({
  kind: q.get("period") || (q.get("start") ? "range" : "week"),
  day: q.get("day") || "",
  start: q.get("start") || "",
  end: q.get("end") || "",
});

/** The period as query parameters of the API. */
export function periodParams(p = period.value) {
  if (p.kind === "range") return { start: p.start, end: p.end };
  return { period: p.kind, day: p.day || undefined };
}

/** Today in the city's zone as YYYY-MM-DD (the API's default day, shown in the picker). */
export function cityToday() {
  const p = zonedParts(new Date());
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

/** One endpoint's answer: {status: "loading"|"ok"|"empty"|"error", data, message}. */
export function slot() {
  return signal({ status: "loading", data: null, message: "" });
}

export async function loadInto(target, path, params = {}) {
  target.value = { ...target.peek(), status: "loading" };
  try {
    const data = await api(path, { query: { ...periodParams(), ...params } });
    target.value = { status: "ok", data, message: "" };
  } catch (err) {
    const missing = err.status === 404 || err.status === 405;
    target.value = { status: missing ? "empty" : "error", data: null, message: err.message };
  }
}

/** The export of a table (+ level / post) for the period, as a file. */
export function exportUrl(kind, table, params = {}) {
  return `/api/evaluation/export.${kind}${toQuery({ table, ...params, ...periodParams() })}`;
}

export function weeklyUrl() {
  const p = period.value;
  return `/api/evaluation/weekly${toQuery({ day: p.kind === "range" ? p.start : p.day })}`;
}

/** The drill-down being shown: null or {table, key, figure, title}. */
export const drill = signal(null);
