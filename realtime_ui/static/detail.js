// The detail pane: every field of one case, its before/after photos, its timeline, a button for each
// allowed action (an action opens a small form and posts {action, version, ...}), and the printable
// case sheet (案件单); the case's voice warnings under the timeline are detail-warning.js's.
// Preact components over one small store (`view`); board.js drives it through
// the object createDetail() returns:
//   open(id), reload(), close(), externalUpdate(case | null, {resync}), current
// and it calls back onChanged(case), onClose() and, when an action takes the case out of this
// user's sight (a department returning it), ctx.onCaseGone(caseId, message) if the board has it.
import { api, uploadFiles } from "./api.js";
import { Countdown, calendarSignal, limitSecondsFor, loadCalendar } from "./countdown.js";
import { CaseWarnings } from "./detail-warning.js";
import { CITY_INPUT_HINT, fmtTime, fromCityInput, toCityInput } from "./dom.js";
import {
  ACTION_LABELS,
  DANGEROUS_ACTIONS,
  KIND_LABELS,
  NOTE_REQUIRED,
  PHOTO_OPTIONAL,
  PHOTO_REQUIRED,
  REJECT_REASON_LABELS,
  STATE_LABELS,
  actionLabel,
  sourceLabel,
  stateLabel,
} from "./labels.js";
import { toast } from "./notify.js";
import { html, render, signal, useEffect, useLayoutEffect, useRef, useState } from "./ui.js";
import { attachmentUrl, describeFiles } from "./widgets.js";

const CONFLICT_MESSAGE = "案件已被他人更新，已刷新";
/** How long the pane says why a case went away before it closes. */
const GONE_CLOSE_MS = 2500;
/** A phone: the detail covers the list, so the Back button must close it (history entry). */
const PHONE_QUERY = "(max-width: 760px)";

/** The category's urgency tier (1 most urgent), by name: the number alone means nothing to a user. */
const URGENCY_LABELS = { 1: "紧急", 2: "一般", 3: "较缓" };
/** States whose deadline runs (hub/core/workflow.py DEADLINE_STATES). */
const DEADLINE_STATES = new Set(["dispatched", "handling"]);
/** Photos filed with these actions show the site before handling, and after it. */
const BEFORE_ACTIONS = new Set(["report", "quick_report"]);
const AFTER_ACTIONS = new Set(["feedback", "quick_complete"]);
/** Whoever may take these (核实 of a report, 核查 of the work) looks at the photos first. */
const VERIFY_ACTIONS = new Set(["confirm_pass", "confirm_fail", "verify_pass", "verify_fail"]);

const NOTE_PLACEHOLDERS = {
  reject: "请说明不予立案的理由",
  return: "请说明回退原因（如：不属于本部门职责）",
  request_extension: "请说明申请延期的理由",
  deny_extension: "请说明驳回延期的理由",
  defer: "请说明缓办的原因",
  request_confirm: "选填：请监督员重点核实的内容",
  confirm_pass: "选填：现场核实情况",
  confirm_fail: "请说明现场核实情况（如：现场未发现所报问题）",
  verify_fail: "请说明核查发现的问题",
  rework: "请说明需要返工的问题",
  escalate: "请填写督办意见",
  void: "请说明作废原因",
  feedback: "请描述处置情况",
};

export function createDetail({ ctx, pane, onChanged, onClose }) {
  const placeholder = pane.querySelector("#detail-placeholder");
  const body = pane.querySelector("#detail-body");

  // ---- the store -------------------------------------------------------------------------------
  /** What the pane shows: {kind: "empty" | "loading" | "error" | "case" | "gone", ...}. */
  const view = signal({ kind: "empty" });
  /** A newer version of the open case waits while a form is open: {resync, state}. */
  const liveNotice = signal(null);
  /** The action whose form is open, or null. */
  const formAction = signal(null);

  let current = null;
  let seq = 0;
  let goneTimer = null;

  loadCalendar().catch(() => {}); // without it the deadline shows as a time only

  // ---- the phone's Back button -----------------------------------------------------------------
  const phone = window.matchMedia(PHONE_QUERY);
  let pushed = false; // our history entry is the current one
  let ignorePop = false; // the popstate of our own history.back()
  let closedUrl = null; // the address the board wrote on closing, for the entry Back lands on

  function pushHistory() {
    if (pushed || !phone.matches) return;
    history.pushState(history.state, "", location.href);
    pushed = true;
  }

  function popHistory() {
    if (!pushed) return;
    pushed = false;
    ignorePop = true;
    history.back();
    queueMicrotask(() => (closedUrl = location.href)); // after the board's writeUrl
  }

  window.addEventListener("popstate", () => {
    if (ignorePop) {
      ignorePop = false;
      if (closedUrl) history.replaceState(history.state, "", closedUrl);
      closedUrl = null;
      return;
    }
    if (pushed) {
      pushed = false; // Back left the open case's entry: close it
      onClose();
    }
  });

  // ---- the interface board.js uses --------------------------------------------------------------

  function show(c, notice = null) {
    current = c;
    formAction.value = null;
    liveNotice.value = null;
    view.value = { kind: "case", c, notice };
  }

  async function open(id, { notice = null } = {}) {
    const mine = ++seq;
    clearTimeout(goneTimer);
    placeholder.hidden = true;
    body.hidden = false;
    pushHistory();
    if (!current || current.id !== id) view.value = { kind: "loading" };
    try {
      const c = await api(`/api/cases/${encodeURIComponent(id)}`);
      if (mine !== seq) return;
      show(c, notice);
    } catch (err) {
      if (mine !== seq) return;
      current = null;
      view.value = {
        kind: "error",
        message: err.status === 404 ? "案件不存在，或您无权查看该案件" : `案件详情加载失败：${err.message}`,
      };
    }
  }

  function reload(opts) {
    if (current) return open(current.id, opts);
    return Promise.resolve();
  }

  function close() {
    seq += 1;
    clearTimeout(goneTimer);
    current = null;
    formAction.value = null;
    liveNotice.value = null;
    view.value = { kind: "empty" };
    body.hidden = true;
    placeholder.hidden = false;
    popHistory();
  }

  /** The action took the case out of this user's sight: say so, drop it from the board, close. */
  function gone(id, message) {
    current = null;
    formAction.value = null;
    view.value = { kind: "gone", id, message };
    toast(message);
    if (typeof ctx.onCaseGone === "function") ctx.onCaseGone(id, message);
    clearTimeout(goneTimer);
    goneTimer = setTimeout(() => {
      if (view.value.kind === "gone" && view.value.id === id) onClose();
    }, GONE_CLOSE_MS);
  }

  /**
   * A newer version of a case arrived live. The open case is reloaded at once, unless an action
   * form is open: then a notice offers the reload, so a half-filled form is not thrown away.
   */
  function externalUpdate(c, { resync = false } = {}) {
    if (!current) return;
    if (!resync) {
      if (!c || c.id !== current.id) return;
      if (typeof c.version === "number" && typeof current.version === "number" && c.version <= current.version) {
        return;
      }
    }
    if (!formAction.value) {
      open(current.id);
      return;
    }
    if (!liveNotice.value) liveNotice.value = { resync, state: c ? c.state : null };
  }

  // ---- components ------------------------------------------------------------------------------

  function CloseButton() {
    return html`<button
      type="button"
      class="btn btn-ghost btn-small detail-close"
      data-testid="detail-close"
      onClick=${() => onClose()}
    >
      关闭
    </button>`;
  }

  function Pane() {
    const v = view.value;
    if (v.kind === "empty") return null;
    if (v.kind === "loading") return html`<p class="loading">正在加载案件详情…</p>`;
    if (v.kind === "error") {
      return html`<${CloseButton} />
        <div class="banner banner-error" data-testid="detail-error" role="alert">${v.message}</div>`;
    }
    if (v.kind === "gone") {
      return html`<div class="detail-gone" data-testid="detail-gone" role="status">
        <p class="detail-gone-text">${v.message}</p>
        <p class="muted">该案件已不在您的案件列表中</p>
        <${CloseButton} />
      </div>`;
    }
    return html`<${CaseView} c=${v.c} notice=${v.notice} />`;
  }

  function CaseView({ c, notice }) {
    // The verifier compares the site before and after first: the photos come before the fields.
    const verifier = (c.allowed_actions || []).some((a) => VERIFY_ACTIONS.has(a));
    useLayoutEffect(() => {
      body.scrollTop = 0;
      pane.scrollTop = 0;
    }, [c.id]);
    return html`<div class="detail-screen">
        <header class="detail-head">
          <div class="detail-title">
            <h2 class="mono" data-testid="detail-case-no">${c.case_no}</h2>
            <${StateBadge} state=${c.state} />
            ${c.overdue ? html`<span class="tag tag-overdue">已超时</span>` : null}
            ${c.is_quick ? html`<span class="tag tag-quick">快速处置</span>` : null}
          </div>
          <div class="detail-head-buttons">
            <button
              type="button"
              class="btn btn-small"
              data-testid="print-sheet"
              title="打印本案件的案件单（含处理记录与照片）"
              onClick=${() => window.print()}
            >
              打印案件单
            </button>
            <${CloseButton} />
          </div>
        </header>
        ${liveNotice.value ? html`<${LiveNotice} n=${liveNotice.value} />` : null}
        ${notice
          ? html`<div class="banner banner-warn" data-testid="detail-notice" role="status">${notice}</div>`
          : null}
        <section class="detail-section">
          <h3>办理操作</h3>
          <${Actions} c=${c} />
        </section>
        ${verifier ? html`<${Photos} c=${c} />` : null}
        <section class="detail-section">
          <h3>案件信息</h3>
          <${Fields} c=${c} />
        </section>
        ${verifier ? null : html`<${Photos} c=${c} />`}
        <section class="detail-section">
          <h3>处理记录</h3>
          <${Timeline} c=${c} />
        </section>
        <${CaseWarnings} key=${c.id} c=${c} user=${ctx.user} />
      </div>
      <${CaseSheet} c=${c} />`;
  }

  function LiveNotice({ n }) {
    return html`<div class="banner banner-warn live-notice" data-testid="detail-live-notice" role="status">
      <span>${n.resync ? "案件可能已更新" : "案件已更新"}</span>
      ${n.state ? html`<span class="muted">（${stateLabel(n.state)}）</span>` : null}
      <span class="spacer"></span>
      <button
        type="button"
        class="btn btn-small"
        data-testid="detail-live-reload"
        onClick=${() => current && open(current.id)}
      >
        重新加载
      </button>
    </div>`;
  }

  function Actions({ c }) {
    const allowed = c.allowed_actions || [];
    const active = formAction.value;
    return html`<div class="action-buttons" data-testid="action-buttons">
        ${allowed.length === 0 ? html`<span class="muted">当前没有您可以执行的操作</span>` : null}
        ${allowed.map(
          (a) => html`<button
            key=${a}
            type="button"
            class=${`btn ${DANGEROUS_ACTIONS.has(a) ? "btn-danger-outline" : "btn-action"}${active === a ? " active" : ""}`}
            data-testid="action-button"
            data-action=${a}
            onClick=${() => (formAction.value = a)}
          >
            ${actionLabel(a)}
          </button>`,
        )}
      </div>
      <div class="action-form-box">
        ${active && allowed.includes(active) ? html`<${ActionForm} key=${`${c.id}:${active}`} c=${c} action=${active} />` : null}
      </div>`;
  }

  function Fields({ c }) {
    const cat = c.category || {};
    const rows = [];
    const row = (label, value, field, { always = false, cls = undefined } = {}) => {
      if (!always && (value === null || value === undefined || value === "")) return;
      rows.push(html`<dt key=${`${field}-t`}>${label}</dt>
        <dd key=${`${field}-d`} class=${cls} data-field=${field}>${value === "" || value == null ? "—" : value}</dd>`);
    };
    const running = DEADLINE_STATES.has(c.state);
    const deadline = c.deadline
      ? html`<span class=${c.overdue ? "overdue" : ""}>${fmtTime(c.deadline)}</span>
          ${running && calendarSignal.value
            ? html` <${Countdown} deadline=${c.deadline} limitSeconds=${limitSecondsFor(categoryOf(ctx, cat.id)?.time_limit)} />`
            : c.overdue
              ? html`<span class="tag tag-overdue">已超时</span>`
              : null}`
      : "";
    row("案件编号", c.case_no, "case_no", { always: true, cls: "mono" });
    row("案件状态", html`<${StateBadge} state=${c.state} />`, "state", { always: true });
    row("案件来源", sourceLabel(c.source), "source", { always: true });
    row(
      "案件类别",
      cat.name ? `${KIND_LABELS[cat.kind] ? `${KIND_LABELS[cat.kind]} · ` : ""}${cat.major_name || ""} / ${cat.name}` : "",
      "category",
      { always: true },
    );
    row("处置时限标准", timeLimitLabel(ctx, cat.id), "time_limit");
    row("紧急程度", c.urgency != null ? URGENCY_LABELS[c.urgency] || "" : "", "urgency");
    row("问题描述", c.description, "description", { always: true, cls: "pre" });
    row("地址", c.address, "address", { always: true });
    row(
      "坐标",
      typeof c.lon === "number" && typeof c.lat === "number" ? `${c.lon.toFixed(6)}, ${c.lat.toFixed(6)}` : "",
      "coords",
    );
    row("所属网格", c.grid ? c.grid.name || "未命名网格" : "不在网格内", "grid", { always: true });
    row("处置部门", c.department ? c.department.name : "", "department", { always: true });
    row("处置截止", deadline, "deadline", { always: true });
    row(
      "延期申请",
      c.pending_extension_until ? `申请延期至 ${fmtTime(c.pending_extension_until)}（待审批）` : "",
      "pending_extension_until",
    );
    row("上报人", c.reporter ? c.reporter.display_name : "", "reporter");
    row("联系人", c.contact_name, "contact_name");
    row("联系电话", c.contact_phone, "contact_phone");
    row("返工次数", c.rework_count ? String(c.rework_count) : "", "rework_count");
    row("延期次数", c.extension_count ? String(c.extension_count) : "", "extension_count");
    row("督办次数", c.escalation_count ? String(c.escalation_count) : "", "escalation_count");
    row("不予立案原因", c.reject_reason ? REJECT_REASON_LABELS[c.reject_reason] || "" : "", "reject_reason");
    row("重复于", c.duplicate_of ? html`<${CaseRef} id=${c.duplicate_of} />` : "", "duplicate_of");
    row("上报时间", fmtTime(c.reported_at), "reported_at", { always: true });
    row("最近更新", fmtTime(c.updated_at), "updated_at");
    row("结案时间", fmtTime(c.closed_at), "closed_at");
    return html`<dl class="fields" data-testid="detail-fields">${rows}</dl>`;
  }

  function Photos({ c }) {
    const { before, after, other } = photoGroups(c);
    if (!before.length && !after.length && !other.length) return null;
    return html`<section class="detail-section">
      <h3>现场照片与附件</h3>
      ${before.length || after.length
        ? html`<div class="photo-compare" data-testid="photo-compare">
            <${PhotoColumn} phase="before" label="处置前" items=${before} />
            <${PhotoColumn} phase="after" label="处置后" items=${after} />
          </div>`
        : null}
      ${other.length
        ? html`<div class="photo-other">
            <h4>其他附件（${other.length}）</h4>
            <div class="thumbs" data-testid="case-attachments">
              ${other.map((a) => html`<${Attachment} key=${a.id} a=${a} />`)}
            </div>
          </div>`
        : null}
    </section>`;
  }

  function PhotoColumn({ phase, label, items }) {
    return html`<figure class="photo-col" data-testid=${`photos-${phase}`} data-phase=${phase}>
      <figcaption class="photo-label">${label}</figcaption>
      ${items.length
        ? html`<div class="photo-grid">
            ${items.map((a) => html`<${Attachment} key=${a.id} a=${a} big=${true} />`)}
          </div>`
        : html`<p class="muted photo-none">${phase === "before" ? "未上传处置前照片" : "尚无处置后照片"}</p>`}
    </figure>`;
  }

  function Timeline({ c }) {
    const events = sortedEvents(c);
    if (events.length === 0) return html`<p class="muted">暂无处理记录</p>`;
    return html`<ol class="timeline" data-testid="timeline">
      ${events.map(
        (e) => html`<li
          key=${e.seq}
          class=${`tl-item tl-${e.action}`}
          data-testid="timeline-item"
          data-action=${e.action}
          data-seq=${e.seq}
        >
          <div class="tl-head">
            <strong class="tl-action" data-testid="timeline-action">${eventLabel(e)}</strong>
            <span class="tl-states">${eventStates(e)}</span>
          </div>
          <div class="tl-meta muted">
            <time datetime=${e.at}>${fmtTime(e.at, { seconds: true })}</time> · ${e.actor ? e.actor.display_name : "系统"}
          </div>
          <${EventData} data=${e.data} />
          ${e.note ? html`<p class="tl-note pre" data-testid="timeline-note">${e.note}</p>` : null}
          ${(e.attachments || []).length
            ? html`<div class="thumbs">${e.attachments.map((a) => html`<${Attachment} key=${a.id} a=${a} />`)}</div>`
            : null}
        </li>`,
      )}
    </ol>`;
  }

  function EventData({ data }) {
    const text = eventDataText(ctx, data);
    const dup = data && typeof data === "object" && data.duplicate_of != null;
    if (!text && !dup) return null;
    return html`<div class="tl-data">
      ${text}${text && dup ? "；" : ""}${dup ? html`重复于案件 <${CaseRef} id=${data.duplicate_of} />` : null}
    </div>`;
  }

  /** The printable case sheet (案件单): hidden on screen, the only thing printed (style.css). */
  function CaseSheet({ c }) {
    const cat = c.category || {};
    const { before, after } = photoGroups(c);
    const cells = [
      ["案件编号", c.case_no],
      ["案件状态", stateLabel(c.state)],
      ["案件来源", sourceLabel(c.source)],
      ["案件类别", cat.name ? `${cat.major_name || ""} / ${cat.name}` : "—"],
      ["紧急程度", URGENCY_LABELS[c.urgency] || "—"],
      ["处置时限标准", timeLimitLabel(ctx, cat.id) || "—"],
      ["地址", c.address || "—"],
      ["所属网格", c.grid ? c.grid.name || "未命名网格" : "不在网格内"],
      ["处置部门", c.department ? c.department.name : "—"],
      ["处置截止", fmtTime(c.deadline) || "—"],
      ["上报人", c.reporter ? c.reporter.display_name : "—"],
      ["上报时间", fmtTime(c.reported_at)],
      ["结案时间", fmtTime(c.closed_at) || "—"],
    ];
    return html`<article class="case-sheet" data-testid="case-sheet" aria-hidden="true">
      <h1 class="sheet-title">数字城管案件单</h1>
      <table class="sheet-fields">
        <tbody>
          ${pairs(cells).map(
            ([a, b], i) => html`<tr key=${i}>
              <th>${a[0]}</th>
              <td>${a[1]}</td>
              ${b ? html`<th>${b[0]}</th><td>${b[1]}</td>` : html`<th></th><td></td>`}
            </tr>`,
          )}
          <tr>
            <th>问题描述</th>
            <td colspan="3" class="pre">${c.description || "—"}</td>
          </tr>
        </tbody>
      </table>
      ${before.length || after.length
        ? html`<div class="sheet-photos">
            ${[
              ["处置前", before],
              ["处置后", after],
            ].map(
              ([label, items]) => html`<figure key=${label} class="sheet-photo-col" data-testid="sheet-photos">
                <figcaption>${label}</figcaption>
                ${items.length
                  ? items
                      .filter((a) => isImage(a))
                      .map((a) => html`<img key=${a.id} src=${attachmentUrl(a)} alt=${`${label}照片`} />`)
                  : html`<p>无</p>`}
              </figure>`,
            )}
          </div>`
        : null}
      <h2 class="sheet-sub">处理记录</h2>
      <table class="sheet-timeline" data-testid="sheet-timeline">
        <thead>
          <tr><th>时间</th><th>环节</th><th>办理人</th><th>说明</th></tr>
        </thead>
        <tbody>
          ${sortedEvents(c).map(
            (e) => html`<tr key=${e.seq} data-testid="sheet-event">
              <td>${fmtTime(e.at)}</td>
              <td>${eventLabel(e)}<br /><small>${eventStates(e)}</small></td>
              <td>${e.actor ? e.actor.display_name : "系统"}</td>
              <td class="pre">${[eventDataText(ctx, e.data), e.note].filter(Boolean).join("\n")}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <p class="sheet-foot">打印时间：${fmtTime(new Date().toISOString())}</p>
    </article>`;
  }

  // ---- the action form -------------------------------------------------------------------------

  function ActionForm({ c, action }) {
    const label = actionLabel(action);
    const noteRequired = NOTE_REQUIRED.has(action);
    const photoRequired = PHOTO_REQUIRED.has(action);
    const wantsPhotos = photoRequired || PHOTO_OPTIONAL.has(action);
    const suggested = action === "dispatch" ? suggestedDepartment(ctx, c) : null;

    const [note, setNote] = useState("");
    const [dept, setDept] = useState(suggested ? String(suggested.id) : "");
    const [ext, setExt] = useState(() => {
      const base = c.deadline ? new Date(c.deadline) : new Date();
      return toCityInput(new Date(Math.max(base.getTime(), Date.now()) + 24 * 3600 * 1000));
    });
    const [reason, setReason] = useState("");
    const [dup, setDup] = useState("");
    const [files, setFiles] = useState([]);
    const [error, setError] = useState("");
    const [busy, setBusy] = useState(false);
    const form = useRef(null);

    useEffect(() => {
      const first = form.current && form.current.querySelector("textarea, select, input");
      if (first) first.focus();
    }, []);

    async function submit(ev) {
      ev.preventDefault();
      setError("");
      const payload = { action, version: c.version };
      const text = note.trim();
      if (noteRequired && !text) return setError(`“${label}”需要填写说明`);
      if (text) payload.note = text;
      if (action === "dispatch") {
        if (!dept) return setError("请选择处置部门");
        payload.department_id = Number(dept);
      }
      if (action === "request_extension") {
        if (!ext.trim()) return setError("请填写延期时间");
        const iso = fromCityInput(ext, { endOfDay: true });
        if (!iso) return setError("延期时间格式有误，请按“年-月-日 时:分”填写，如 2026-12-01 08:30");
        if (new Date(iso).getTime() <= Date.now()) return setError("延期时间必须晚于当前时间");
        payload.extension_until = iso;
      }
      if (action === "reject") {
        if (!reason) return setError("请选择不予立案的原因");
        payload.reject_reason = reason;
        if (reason === "duplicate" && !dup.trim()) return setError("重复案件需要关联原案件");
      }
      if (photoRequired && files.length === 0) return setError(`“${label}”需要上传照片`);

      setBusy(true);
      try {
        if (payload.reject_reason === "duplicate") payload.duplicate_of = await resolveCaseRef(dup.trim(), c.id);
        if (files.length) payload.attachment_ids = await uploadFiles(files, "photo");
        const answer = await api(`/api/cases/${encodeURIComponent(c.id)}/actions`, {
          method: "POST",
          body: payload,
        });
        if (answer && answer.visible === false) {
          gone(c.id, answer.message || "案件已移出您的办理范围");
          return;
        }
        show(answer);
        onChanged(answer);
        toast(`${label}成功`);
      } catch (e) {
        if (e.code === "version_conflict") {
          await open(c.id, { notice: CONFLICT_MESSAGE });
          onChanged(current || c);
          return;
        }
        setError(e.message || "操作失败");
        setBusy(false);
      }
    }

    const req = html`<em class="req">*</em>`;
    const limit = action === "dispatch" && c.category ? timeLimitLabel(ctx, c.category.id) : "";
    return html`<form
      class="action-form"
      data-testid="action-form"
      data-action=${action}
      novalidate
      ref=${form}
      onSubmit=${submit}
    >
      <h4>${label}</h4>
      ${error ? html`<div class="banner banner-error" data-testid="action-error" role="alert">${error}</div>` : null}
      ${action === "dispatch"
        ? html`<label class="field">
            <span>处置部门 ${req}</span>
            <select
              name="department_id"
              required
              data-testid="action-department"
              value=${dept}
              onChange=${(e) => setDept(e.currentTarget.value)}
            >
              <option value="">请选择处置部门</option>
              ${ctx.departments.map((d) => html`<option key=${d.id} value=${String(d.id)}>${d.name}</option>`)}
            </select>
            ${suggested
              ? html`<small class="suggestion" data-testid="dispatch-suggestion"
                  >建议：${suggested.name}（本类案件的责任部门）</small
                >`
              : null}
            ${limit ? html`<small class="muted">处置时限按“${limit}”自动计算</small>` : null}
          </label>`
        : null}
      ${action === "request_extension"
        ? html`<label class="field">
            <span>延期至 ${req}</span>
            <input
              type="text"
              name="extension_until"
              required
              inputmode="numeric"
              maxlength="25"
              placeholder=${CITY_INPUT_HINT}
              data-testid="action-extension-until"
              value=${ext}
              onInput=${(e) => setExt(e.currentTarget.value)}
            />
            ${c.deadline ? html`<small class="muted">当前处置截止：${fmtTime(c.deadline)}</small>` : null}
          </label>`
        : null}
      ${action === "approve_extension" || action === "deny_extension"
        ? html`<p class="hint">
            ${c.pending_extension_until
              ? `部门申请延期至 ${fmtTime(c.pending_extension_until)}（当前截止 ${fmtTime(c.deadline) || "—"}）`
              : "没有待审批的延期申请"}
          </p>`
        : null}
      ${action === "reject"
        ? html`<fieldset class="field">
              <legend>不予立案原因 ${req}</legend>
              <div class="radio-row" role="radiogroup" data-testid="action-reject-reason">
                ${Object.entries(REJECT_REASON_LABELS).map(
                  ([value, text]) => html`<label key=${value} class="check-line">
                    <input
                      type="radio"
                      name="reject_reason"
                      value=${value}
                      data-testid=${`action-reject-${value}`}
                      checked=${reason === value}
                      onChange=${() => setReason(value)}
                    />
                    <span>${text}</span>
                  </label>`,
                )}
              </div>
            </fieldset>
            ${reason === "duplicate"
              ? html`<label class="field">
                  <span>重复于案件 ${req}</span>
                  <input
                    name="duplicate_of"
                    data-testid="action-duplicate-of"
                    placeholder="原案件编号，如 20261123-00012"
                    maxlength="40"
                    value=${dup}
                    onInput=${(e) => setDup(e.currentTarget.value)}
                  />
                </label>`
              : null}`
        : null}
      <label class="field">
        <span>${noteRequired ? html`说明 ${req}` : "说明（选填）"}</span>
        <textarea
          name="note"
          rows="3"
          maxlength="2000"
          required=${noteRequired}
          data-testid="action-note"
          placeholder=${NOTE_PLACEHOLDERS[action] || "选填"}
          value=${note}
          onInput=${(e) => setNote(e.currentTarget.value)}
        ></textarea>
      </label>
      ${wantsPhotos
        ? html`<div class="field">
            <span>${photoRequired ? html`现场照片 ${req}` : "现场照片（选填）"}</span>
            <${PhotoInput} testid="action-photos" onFiles=${setFiles} />
          </div>`
        : null}
      <div class="form-buttons">
        <button
          type="button"
          class="btn"
          data-testid="action-cancel"
          disabled=${busy}
          onClick=${() => (formAction.value = null)}
        >
          取消
        </button>
        <button
          type="submit"
          class=${`btn ${DANGEROUS_ACTIONS.has(action) ? "btn-danger" : "btn-primary"}`}
          data-testid="action-submit"
          disabled=${busy}
        >
          ${busy ? "正在提交…" : `确认${label}`}
        </button>
      </div>
    </form>`;
  }

  render(html`<${Pane} />`, body);

  return {
    open,
    reload,
    close,
    externalUpdate,
    get current() {
      return current;
    },
  };
}

// ---- small components and helpers (no pane state) -------------------------------------------------

function StateBadge({ state }) {
  return html`<span class=${`badge state-${state}`} data-testid="state-badge" data-state=${state}
    >${STATE_LABELS[state] || stateLabel(state)}</span
  >`;
}

let pickerSeq = 0;

/** A photo picker with a Chinese button (the native one speaks the browser's language). */
function PhotoInput({ testid, onFiles }) {
  const [id] = useState(() => `detail-photos-${++pickerSeq}`);
  const [status, setStatus] = useState("未选择照片");
  return html`<div class="file-picker">
    <input
      id=${id}
      type="file"
      name="photos"
      multiple
      accept="image/jpeg,image/png,image/webp"
      class="visually-hidden"
      data-testid=${testid}
      onChange=${(e) => {
        setStatus(describeFiles(e.currentTarget));
        onFiles(Array.from(e.currentTarget.files || []));
      }}
    />
    <label for=${id} class="btn btn-small">选择照片</label>
    <span class="muted file-status" data-testid=${`${testid}-status`}>${status}</span>
  </div>`;
}

function isImage(a) {
  return String(a.media_type || "").startsWith("image/");
}

/** A thumbnail (photos), a player (audio, video clips) or a link (anything else), opening the bytes. */
function Attachment({ a, big = false }) {
  const url = attachmentUrl(a);
  const type = a.media_type || "";
  const name =
    a.original_name ||
    (type.startsWith("image/") ? "现场照片" : type.startsWith("audio/") ? "录音" : type.startsWith("video/") ? "视频片段" : "附件");
  if (type.startsWith("image/")) {
    return html`<a
      href=${url}
      target="_blank"
      rel="noopener"
      class=${big ? "thumb thumb-big" : "thumb"}
      title=${name}
      data-testid="attachment"
    >
      <img src=${url} alt=${name} loading="lazy" decoding="async" />
    </a>`;
  }
  if (type.startsWith("audio/")) {
    return html`<div class="audio-att" data-testid="attachment">
      <audio src=${url} controls preload="none"></audio>
      <a href=${url} target="_blank" rel="noopener">${name}</a>
    </div>`;
  }
  if (type.startsWith("video/")) {
    return html`<div class="video-att" data-testid="attachment">
      <video src=${url} controls preload="metadata" muted playsinline></video>
      <a href=${url} target="_blank" rel="noopener">${name}</a>
    </div>`;
  }
  return html`<a href=${url} target="_blank" rel="noopener" class="file-att" data-testid="attachment">${name}</a>`;
}

const caseNumbers = new Map(); // case id -> Promise of its case number ("" when not visible)

/** Another case, shown by its case number (looked up once; "另一案件" when this user may not see it). */
function CaseRef({ id }) {
  const [no, setNo] = useState(null);
  useEffect(() => {
    if (!caseNumbers.has(id)) {
      caseNumbers.set(
        id,
        api(`/api/cases/${encodeURIComponent(id)}`).then(
          (x) => x.case_no || "",
          () => "",
        ),
      );
    }
    let live = true;
    caseNumbers.get(id).then((n) => live && setNo(n));
    return () => {
      live = false;
    };
  }, [id]);
  return html`<span class="mono" data-case-ref="">${no === null ? "…" : no || "另一案件（无权查看）"}</span>`;
}

/**
 * Photos by phase: those filed with the report are the site before handling (处置前), those filed
 * with the feedback after it (处置后); the rest (verification photos, recordings) are other.
 */
function photoGroups(c) {
  const before = [];
  const after = [];
  const other = [];
  const seen = new Set();
  for (const e of sortedEvents(c)) {
    for (const a of e.attachments || []) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      if (isImage(a) && BEFORE_ACTIONS.has(e.action)) before.push(a);
      else if (isImage(a) && AFTER_ACTIONS.has(e.action)) after.push(a);
      else other.push(a);
    }
  }
  for (const a of c.attachments || []) if (!seen.has(a.id)) other.push(a);
  return { before, after, other };
}

function sortedEvents(c) {
  return [...(c.timeline || [])].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
}

function eventLabel(e) {
  return ACTION_LABELS[e.action] || e.action_label || "";
}

function eventStates(e) {
  if (e.from_state && e.to_state && e.from_state !== e.to_state) {
    return `${stateLabel(e.from_state)} → ${stateLabel(e.to_state)}`;
  }
  if (e.from_state) return `状态保持：${stateLabel(e.to_state || e.from_state)}`;
  if (e.to_state) return `→ ${stateLabel(e.to_state)}`;
  return "";
}

function eventDataText(ctx, data) {
  if (!data || typeof data !== "object") return "";
  const parts = [];
  if (data.department_id != null) {
    const d = ctx.departmentById.get(data.department_id);
    parts.push(`处置部门：${d ? d.name : "已停用的部门"}`);
  }
  if (data.deadline) parts.push(`处置时限：${fmtTime(data.deadline)}`);
  if (data.extension_until) parts.push(`延期至：${fmtTime(data.extension_until)}`);
  if (data.reject_reason) parts.push(`原因：${REJECT_REASON_LABELS[data.reject_reason] || "其他"}`);
  return parts.join("；");
}

function pairs(list) {
  const out = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i], list[i + 1]]);
  return out;
}

function categoryOf(ctx, categoryId) {
  return categoryId === undefined ? undefined : ctx.categoryById.get(categoryId);
}

/** The category's time limit in Chinese (the server's time_limit_label), or "". */
function timeLimitLabel(ctx, categoryId) {
  const cat = categoryOf(ctx, categoryId);
  return (cat && cat.time_limit_label) || "";
}

/** The category's default department (GET /api/categories default_department_id), if active. */
function suggestedDepartment(ctx, c) {
  const cat = c.category ? categoryOf(ctx, c.category.id) : undefined;
  if (!cat || cat.default_department_id == null) return null;
  return ctx.departmentById.get(cat.default_department_id) || null;
}

/** A case number ("20261123-00012") or a numeric id, as the case id. */
async function resolveCaseRef(ref, selfId) {
  let id = null;
  if (/^\d{1,12}$/.test(ref)) {
    id = Number(ref);
  } else {
    const res = await api("/api/cases", { query: { q: ref, limit: 20 } });
    const hit = (res.items || []).find((x) => x.case_no === ref);
    if (!hit) throw Object.assign(new Error(`未找到编号为“${ref}”的案件`), { code: "not_found" });
    id = hit.id;
  }
  if (id === selfId) throw Object.assign(new Error("不能关联案件本身"), { code: "validation_failed" });
  return id;
}
