// The caller beside the call: the caller's open cases first (case number, state, address,
// description, a link to the case on the board, a one-click 关联), then the caller's earlier calls;
// 新建案件 (a case of source 12319热线 with the caller's number as its contact phone) and 关联案件
// (an existing case by its number or id).
//
// Theory of operation: the history is GET /api/hotline/me `current` (open_cases, calls), kept in
// `lastCall` through the wrap-up. 新建案件 is POST /api/hotline/calls/{record id}/case with a
// category (GET /api/categories, read once), the description and the address; the hub fills the
// source and the phone and links the call. 关联案件 is POST …/link {case_id}: a case number
// ("20261202-00012") is looked up with GET /api/cases?q=…, plain digits are an id. The call's linked
// case is shown at the top once known.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { lastCall, outcomeLabel } from "./hotline-state.js";
import { stateLabel } from "./labels.js";
import { html, signal, useSignal } from "./ui.js";

const categories = signal(null);
const CASE_NO = /^\d{8}-\d{3,6}$/;

async function loadCategories() {
  if (categories.peek()) return;
  categories.value = [];
  try {
    categories.value = (await api("/api/categories")).items || [];
  } catch {
    categories.value = null;
  }
}

function setLinked(c) {
  const call = lastCall.peek();
  if (call) lastCall.value = { ...call, case: c };
}

/** A case number or id as the case's id (null when there is none). */
async function resolveCase(text) {
  const t = text.trim();
  if (CASE_NO.test(t)) {
    const res = await api("/api/cases", { query: { q: t, limit: 5 } });
    const hit = (res.items || []).find((c) => c.case_no === t);
    return hit ? hit.id : null;
  }
  return /^\d{1,12}$/.test(t) ? Number(t) : null;
}

const caseLink = (c) => html`<a href=${`/board?case=${c.id}`} target="_blank" rel="noopener"
                                 data-testid="case-link" data-case-id=${c.id}>${c.case_no || `案件 ${c.id}`}</a>`;

function NewCaseForm({ call, onDone }) {
  const err = useSignal("");
  const busy = useSignal(false);
  const cats = categories.value || [];
  const majors = [...new Set(cats.map((c) => c.major_name || "其他"))];
  const submit = async (e) => {
    e.preventDefault();
    const f = e.currentTarget;
    const body = {
      category_id: Number(f.elements.category.value),
      description: f.elements.description.value.trim(),
      address: f.elements.address.value.trim(),
    };
    if (!body.category_id || !body.description) {
      err.value = "请选择类别并填写问题描述";
      return;
    }
    busy.value = true;
    err.value = "";
    try {
      const res = await api(`/api/hotline/calls/${call.id}/case`, { method: "POST", body });
      setLinked({ id: res.case.id, case_no: res.case.case_no, state: res.case.state });
      onDone();
    } catch (ex) {
      err.value = `立案失败：${ex.message}`;
    } finally {
      busy.value = false;
    }
  };
  return html`<form class="hl-case-form" data-testid="new-case-form" onSubmit=${submit}>
    <label class="field">类别
      <select name="category" data-testid="new-case-category" required>
        <option value="">请选择</option>
        ${majors.map((m) => html`<optgroup key=${m} label=${m}>
          ${cats.filter((c) => (c.major_name || "其他") === m).map((c) => html`<option key=${c.id} value=${c.id}>${c.name}</option>`)}
        </optgroup>`)}
      </select></label>
    <label class="field">问题描述<textarea name="description" rows="3" maxlength="2000" data-testid="new-case-description"></textarea></label>
    <label class="field">地址<input name="address" maxlength="200" data-testid="new-case-address" /></label>
    ${err.value && html`<div class="banner banner-error" role="alert" data-testid="new-case-error">${err.value}</div>`}
    <div class="form-buttons">
      <button type="submit" class="btn btn-primary btn-small" data-testid="new-case-submit" disabled=${busy.value}>立案</button>
      <button type="button" class="btn btn-small" onClick=${onDone}>取消</button>
    </div>
  </form>`;
}

function LinkForm({ call, onDone }) {
  const err = useSignal("");
  const submit = async (e) => {
    e.preventDefault();
    err.value = "";
    try {
      const id = await resolveCase(e.currentTarget.elements.case.value);
      if (id === null) {
        err.value = "没有找到该案件，请输入案件编号（如 20261202-00012）或案件 ID";
        return;
      }
      const res = await api(`/api/hotline/calls/${call.id}/link`, { method: "POST", body: { case_id: id } });
      setLinked(res.case);
      onDone();
    } catch (ex) {
      err.value = `关联失败：${ex.message}`;
    }
  };
  return html`<form class="hl-link-form" data-testid="link-form" onSubmit=${submit}>
    <input name="case" placeholder="案件编号或 ID" aria-label="案件编号或 ID" data-testid="link-case" required />
    <button type="submit" class="btn btn-primary btn-small" data-testid="link-submit">关联</button>
    ${err.value && html`<div class="banner banner-error" role="alert" data-testid="link-error">${err.value}</div>`}
  </form>`;
}

async function linkOne(call, c) {
  const res = await api(`/api/hotline/calls/${call.id}/link`, { method: "POST", body: { case_id: c.id } });
  setLinked(res.case);
}

function History({ call, canAct, err }) {
  const open = call.open_cases || [];
  const earlier = call.calls || [];
  return html`<div data-testid="caller-history"><h3>未办结案件（${open.length}）</h3>
    ${open.length === 0
      ? html`<p class="muted" data-testid="no-open-cases">该号码没有未办结的案件</p>`
      : html`<ul class="hl-history" data-testid="open-cases">${open.map((c) => html`
          <li key=${c.id} data-testid="open-case" data-case-id=${c.id}>
            <div>${caseLink(c)} <span class="tag">${stateLabel(c.state)}</span> <span class="muted">${c.category || ""} · ${fmtTime(c.reported_at, { short: true })}</span>
              ${canAct && html`<button type="button" class="btn btn-small" data-testid="open-case-link"
                onClick=${() => linkOne(call, c).catch((ex) => (err.value = `关联失败：${ex.message}`))}>关联</button>`}</div>
            <div class="muted">${c.address || "（无地址）"}</div><div>${c.description}</div>
          </li>`)}</ul>`}
    <h3>历史来电（${earlier.length}）</h3>
    ${earlier.length === 0
      ? html`<p class="muted" data-testid="no-earlier-calls">没有更早的来电</p>`
      : html`<ul class="hl-history" data-testid="earlier-calls">${earlier.map((h) => html`
          <li key=${h.id} data-testid="earlier-call">
            <span>${fmtTime(h.arrived_at, { short: true })}</span> <span class="tag">${outcomeLabel(h.outcome)}</span>
            ${h.disposition_label && html` <span>${h.disposition_label}</span>`}
            ${h.case_no && html` <span class="muted">案件 ${h.case_no}</span>`}
            ${h.note && html`<div class="muted">${h.note}</div>`}
          </li>`)}</ul>`}
  </div>`;
}

export function CallerPanel() {
  const call = lastCall.value;
  const mode = useSignal("");
  const err = useSignal("");
  if (!call) return null;
  const canAct = !!call.id && !call.case;
  return html`<section class="hl-panel hl-caller" aria-label="来电人历史" data-testid="caller-panel" data-call-id=${call.id ?? ""}>
    <div class="hl-panel-head"><h2>来电人 ${call.caller}</h2>
      ${call.case ? html`<span class="tag" data-testid="call-case">已关联 ${caseLink(call.case)}</span>` : html`<span class="muted">未关联案件</span>`}</div>
    ${canAct &&
    html`<div class="hl-caller-buttons">
      <button type="button" class="btn btn-primary btn-small" data-testid="new-case"
              onClick=${() => { mode.value = "new"; loadCategories(); }}>新建案件</button>
      <button type="button" class="btn btn-small" data-testid="link-case-open" onClick=${() => (mode.value = "link")}>关联案件</button>
    </div>`}
    ${canAct && mode.value === "new" && html`<${NewCaseForm} call=${call} onDone=${() => (mode.value = "")} />`}
    ${canAct && mode.value === "link" && html`<${LinkForm} call=${call} onDone=${() => (mode.value = "")} />`}
    ${err.value && html`<div class="banner banner-error" role="alert">${err.value}</div>`}
    ${call.open_cases && html`<${History} call=${call} canAct=${canAct} err=${err} />`}
  </section>`;
}
