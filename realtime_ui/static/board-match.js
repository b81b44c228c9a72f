// Whether a case belongs on the board: the user's scope and the filters, judged in the browser for
// live updates exactly as the server's list query (storage/cases.py list_cases) and text search
// (storage/search.py) judge them.
import { formValues } from "./board-filters.js";
import { ctx } from "./board-state.js";
import { fromCityInput } from "./dom.js";

/** What the server lets this user see anyway (it checks too; this is for cases leaving scope). */
export function mayShow(c) {
  const u = ctx.user;
  if (u && u.role === "department") return !!c.department && c.department.id === u.department_id;
  if (u && u.role === "supervisor" && Array.isArray(u.grid_ids) && u.grid_ids.length) {
    // A supervisor's grids may be first-level ones: a case in a child grid is theirs too.
    if (!c.grid) return false;
    return u.grid_ids.includes(c.grid.id) || u.grid_ids.includes(parentGridOf(c.grid));
  }
  return true;
}

function parentGridOf(grid) {
  if (!grid) return null;
  if (typeof grid.parent_id === "number") return grid.parent_id;
  const code = String(grid.code || "");
  const parent = ctx.grids.find((g) => g.code && code.length > g.code.length && code.startsWith(g.code));
  return parent ? parent.id : null;
}

/**
 * Whether a case belongs in the list under the current filters: the rules of GET /api/cases
 * (storage/cases.py list_cases), checked against it in tests/ui/test_ui_board.py.
 */
export function matchesFilters(c, v = formValues()) {
  if (v.state.length && !v.state.includes(c.state)) return false;
  if (v.category_id && String(c.category?.id) !== v.category_id) return false;
  if (v.source && c.source !== v.source) return false;
  if (v.department_id && String(c.department?.id) !== v.department_id) return false;
  if (v.grid_id) {
    if (!c.grid) return false;
    if (String(c.grid.id) !== v.grid_id && String(parentGridOf(c.grid)) !== v.grid_id) return false;
  }
  // overdue: a deadline state past its deadline (the server's `overdue` flag of the summary).
  if (v.overdue && !c.overdue) return false;
  const reported = new Date(c.reported_at).getTime();
  const since = fromCityInput(v.since);
  const until = fromCityInput(v.until, { endOfDay: true });
  if (since && !(reported >= new Date(since).getTime())) return false;
  if (until && !(reported < new Date(until).getTime())) return false; // the server: reported_at < until
  if (v.q && !textMatches(v.q, [c.case_no, c.description, c.address])) return false;
  return true;
}

// The server's text search (storage/search.py): the character bigrams of each run of letters or
// digits (ASCII runs also whole); a query matches when the text holds all of its bigrams (a
// one-character run: any term starting with it). Tested against GET /api/cases?q=.
const SEARCH_RUN = /[0-9a-z]+|(?:(?![0-9a-z_])[\p{L}\p{N}])+|[\u3400-\u9fff\uf900-\ufaff]+/gu;
const SEARCH_MAX_TEXT = 4000;
const SEARCH_MAX_TERMS = 32;

function searchRuns(text) {
  return String(text || "").toLowerCase().slice(0, SEARCH_MAX_TEXT).match(SEARCH_RUN) || [];
}

function bigrams(run) {
  const chars = [...run];
  if (chars.length === 1) return chars;
  const out = [];
  for (let i = 0; i < chars.length - 1; i += 1) out.push(chars[i] + chars[i + 1]);
  return out;
}

/** Whether texts (case number, description, address) match the search text q as the server does. */
export function textMatches(q, texts) {
  const terms = new Set();
  for (const t of texts) {
    for (const run of searchRuns(t)) {
      for (const b of bigrams(run)) terms.add(b);
      if (/^[\x00-\x7f]*$/.test(run)) terms.add(run);
    }
  }
  const wanted = [];
  for (const run of searchRuns(q)) {
    if ([...run].length === 1) wanted.push({ prefix: run });
    else for (const b of bigrams(run)) wanted.push({ term: b });
  }
  if (!wanted.length) return false; // nothing searchable: the server lists nothing
  const seen = new Set();
  const uniq = wanted.filter((w) => {
    const k = w.prefix !== undefined ? `${w.prefix}:*` : w.term;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return uniq.slice(0, SEARCH_MAX_TERMS).every((w) =>
    w.prefix !== undefined ? [...terms].some((t) => t.startsWith(w.prefix)) : terms.has(w.term),
  );
}
