// The detail pane: every field of one case, its timeline, and a button for each allowed action.
// An action opens a small form with the inputs it needs and posts {action, version, ...}.
import { api, uploadFiles } from "./api.js";
import { CITY_INPUT_HINT, clear, el, fmtTime, fromCityInput, toCityInput } from "./dom.js";
import {
  ACTION_LABELS,
  DANGEROUS_ACTIONS,
  KIND_LABELS,
  NOTE_REQUIRED,
  PHOTO_OPTIONAL,
  PHOTO_REQUIRED,
  REJECT_REASON_LABELS,
  actionLabel,
  sourceLabel,
  stateLabel,
} from "./labels.js";
import { toast } from "./notify.js";
import { attachmentThumb, photoPicker, stateBadge } from "./widgets.js";

const CONFLICT_MESSAGE = "案件已被他人更新，已刷新";

const NOTE_PLACEHOLDERS = {
  reject: "请说明不予立案的理由",
  return: "请说明回退原因（如：不属于本部门职责）",
  request_extension: "请说明申请延期的理由",
  deny_extension: "请说明驳回延期的理由",
  defer: "请说明缓办的原因",
  verify_fail: "请说明核查发现的问题",
  rework: "请说明需要返工的问题",
  escalate: "请填写督办意见",
  void: "请说明作废原因",
  feedback: "请描述处置情况",
};

export function createDetail({ ctx, pane, onChanged, onClose }) {
  const placeholder = pane.querySelector("#detail-placeholder");
  const body = pane.querySelector("#detail-body");
  let current = null;
  let seq = 0;
  let pendingNotice = null;

  async function open(id, { notice = null } = {}) {
    const mine = ++seq;
    pendingNotice = notice;
    placeholder.hidden = true;
    body.hidden = false;
    if (!current || current.id !== id) {
      clear(body, el("p", { class: "loading" }, "正在加载案件详情…"));
    }
    try {
      const c = await api(`/api/cases/${encodeURIComponent(id)}`);
      if (mine !== seq) return;
      current = c;
      render(c);
    } catch (err) {
      if (mine !== seq) return;
      current = null;
      clear(
        body,
        closeBar(),
        el(
          "div",
          { class: "banner banner-error", "data-testid": "detail-error", role: "alert" },
          err.status === 404 ? "案件不存在，或您无权查看该案件" : `案件详情加载失败：${err.message}`,
        ),
      );
    }
  }

  function reload(opts) {
    if (current) return open(current.id, opts);
    return Promise.resolve();
  }

  function close() {
    seq += 1;
    current = null;
    clear(body);
    body.hidden = true;
    placeholder.hidden = false;
  }

  function closeBar() {
    return el(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-small detail-close",
        "data-testid": "detail-close",
        on: { click: () => onClose() },
      },
      "关闭",
    );
  }

  // ---- rendering -------------------------------------------------------------------------------

  function render(c) {
    const actionsBox = el("div", { class: "action-buttons", "data-testid": "action-buttons" });
    const formBox = el("div", { class: "action-form-box" });
    const allowed = c.allowed_actions || [];
    if (allowed.length === 0) {
      actionsBox.append(el("span", { class: "muted" }, "当前没有您可以执行的操作"));
    }
    for (const a of allowed) {
      actionsBox.append(
        el(
          "button",
          {
            type: "button",
            class: ["btn", DANGEROUS_ACTIONS.has(a) ? "btn-danger-outline" : "btn-action"],
            "data-testid": "action-button",
            "data-action": a,
            on: {
              click: (ev) => {
                for (const b of actionsBox.querySelectorAll("button")) b.classList.remove("active");
                ev.currentTarget.classList.add("active");
                clear(formBox, actionForm(c, a, formBox));
                const first = formBox.querySelector("textarea, select, input");
                if (first) first.focus();
              },
            },
          },
          actionLabel(a),
        ),
      );
    }

    const notice = el(
      "div",
      { class: "banner banner-warn", "data-testid": "detail-notice", role: "status" },
      pendingNotice || "",
    );
    notice.hidden = !pendingNotice;
    pendingNotice = null;

    clear(
      body,
      el(
        "header",
        { class: "detail-head" },
        el(
          "div",
          { class: "detail-title" },
          el("h2", { class: "mono", "data-testid": "detail-case-no" }, c.case_no),
          stateBadge(c),
          c.overdue ? el("span", { class: "tag tag-overdue" }, "已超时") : null,
          c.is_quick ? el("span", { class: "tag tag-quick" }, "快速处置") : null,
        ),
        closeBar(),
      ),
      notice,
      el("section", { class: "detail-section" }, el("h3", {}, "办理操作"), actionsBox, formBox),
      el("section", { class: "detail-section" }, el("h3", {}, "案件信息"), fieldList(c)),
      (c.attachments || []).length
        ? el(
            "section",
            { class: "detail-section" },
            el("h3", {}, `附件（${c.attachments.length}）`),
            el("div", { class: "thumbs", "data-testid": "case-attachments" }, c.attachments.map(attachmentThumb)),
          )
        : null,
      el("section", { class: "detail-section" }, el("h3", {}, "处理记录"), timeline(c)),
    );
    body.scrollTop = 0;
    pane.scrollTop = 0;
  }

  function fieldList(c) {
    const cat = c.category || {};
    const dl = el("dl", { class: "fields", "data-testid": "detail-fields" });
    const row = (label, value, opts = {}) => {
      if (!opts.always && (value === null || value === undefined || value === "")) return;
      dl.append(
        el("dt", {}, label),
        el("dd", { class: opts.class, "data-field": opts.field }, value === "" || value == null ? "—" : value),
      );
    };
    const deadline = c.deadline
      ? el(
          "span",
          { class: c.overdue ? "overdue" : "" },
          fmtTime(c.deadline),
          c.overdue ? el("span", { class: "tag tag-overdue" }, "已超时") : null,
        )
      : "";
    row("案件编号", c.case_no, { always: true, class: "mono", field: "case_no" });
    row("案件状态", stateBadge(c), { always: true, field: "state" });
    row("案件来源", sourceLabel(c.source), { always: true, field: "source" });
    row(
      "案件类别",
      cat.name
        ? `${KIND_LABELS[cat.kind] ? `${KIND_LABELS[cat.kind]} · ` : ""}${cat.major_name || ""} / ${cat.name}（${cat.code}）`
        : "",
      { always: true, field: "category" },
    );
    row("处置时限标准", timeLimitLabel(ctx, cat.id), { field: "time_limit" });
    row("紧急程度", c.urgency != null ? `${c.urgency} 级` : "", { field: "urgency" });
    row("问题描述", c.description, { always: true, class: "pre", field: "description" });
    row("地址", c.address, { always: true, field: "address" });
    row(
      "坐标",
      typeof c.lon === "number" && typeof c.lat === "number"
        ? `${c.lon.toFixed(6)}, ${c.lat.toFixed(6)}`
        : "",
      { field: "coords" },
    );
    row("所属网格", c.grid ? `${c.grid.name || ""}（${c.grid.code}）` : "不在网格内", {
      always: true,
      field: "grid",
    });
    row("处置部门", c.department ? c.department.name : "", { always: true, field: "department" });
    row("处置截止", deadline, { always: true, field: "deadline" });
    row(
      "延期申请",
      c.pending_extension_until ? `申请延期至 ${fmtTime(c.pending_extension_until)}（待审批）` : "",
      { field: "pending_extension_until" },
    );
    row("上报人", c.reporter ? c.reporter.display_name : "", { field: "reporter" });
    row("联系人", c.contact_name, { field: "contact_name" });
    row("联系电话", c.contact_phone, { field: "contact_phone" });
    row("返工次数", c.rework_count ? String(c.rework_count) : "", { field: "rework_count" });
    row("延期次数", c.extension_count ? String(c.extension_count) : "", { field: "extension_count" });
    row("督办次数", c.escalation_count ? String(c.escalation_count) : "", { field: "escalation_count" });
    row("不予立案原因", c.reject_reason ? REJECT_REASON_LABELS[c.reject_reason] || c.reject_reason : "", {
      field: "reject_reason",
    });
    row("重复于", c.duplicate_of ? caseRef(c.duplicate_of) : "", { field: "duplicate_of" });
    row("上报时间", fmtTime(c.reported_at), { always: true, field: "reported_at" });
    row("最近更新", fmtTime(c.updated_at), { field: "updated_at" });
    row("结案时间", fmtTime(c.closed_at), { field: "closed_at" });
    return dl;
  }

  function timeline(c) {
    const events = [...(c.timeline || [])].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    if (events.length === 0) return el("p", { class: "muted" }, "暂无处理记录");
    return el(
      "ol",
      { class: "timeline", "data-testid": "timeline" },
      events.map((e) => {
        const states =
          e.from_state && e.to_state && e.from_state !== e.to_state
            ? `${stateLabel(e.from_state)} → ${stateLabel(e.to_state)}`
            : e.from_state
              ? `状态保持：${stateLabel(e.to_state || e.from_state)}`
              : e.to_state
                ? `→ ${stateLabel(e.to_state)}`
                : "";
        return el(
          "li",
          {
            class: ["tl-item", `tl-${e.action}`],
            "data-testid": "timeline-item",
            "data-action": e.action,
            "data-seq": e.seq,
          },
          el(
            "div",
            { class: "tl-head" },
            el("strong", { class: "tl-action", "data-testid": "timeline-action" }, ACTION_LABELS[e.action] || e.action_label || e.action),
            el("span", { class: "tl-states" }, states),
          ),
          el(
            "div",
            { class: "tl-meta muted" },
            el("time", { datetime: e.at }, fmtTime(e.at, { seconds: true })),
            " · ",
            e.actor ? e.actor.display_name : "系统",
          ),
          eventData(e.data),
          e.note ? el("p", { class: "tl-note pre", "data-testid": "timeline-note" }, e.note) : null,
          (e.attachments || []).length ? el("div", { class: "thumbs" }, e.attachments.map(attachmentThumb)) : null,
        );
      }),
    );
  }

  function eventData(data) {
    if (!data || typeof data !== "object") return null;
    const parts = [];
    if (data.department_id != null) {
      const d = ctx.departmentById.get(data.department_id);
      parts.push(`处置部门：${d ? d.name : "已停用的部门"}`);
    }
    if (data.deadline) parts.push(`处置时限：${fmtTime(data.deadline)}`);
    if (data.extension_until) parts.push(`延期至：${fmtTime(data.extension_until)}`);
    if (data.reject_reason) {
      parts.push(`原因：${REJECT_REASON_LABELS[data.reject_reason] || data.reject_reason}`);
    }
    const dup = data.duplicate_of != null ? ["重复于案件 ", caseRef(data.duplicate_of)] : null;
    if (parts.length === 0 && !dup) return null;
    return el("div", { class: "tl-data" }, parts.join("；"), parts.length && dup ? "；" : "", dup);
  }

  // ---- the action form -------------------------------------------------------------------------

  function actionForm(c, action, formBox) {
    const label = actionLabel(action);
    const err = el("div", { class: "banner banner-error", "data-testid": "action-error", role: "alert" });
    err.hidden = true;
    const fields = [];
    let deptSel = null;
    let extInput = null;
    let reasonBox = null;
    let dupInput = null;
    let photoInput = null;

    if (action === "dispatch") {
      deptSel = el(
        "select",
        { name: "department_id", required: true, "data-testid": "action-department" },
        el("option", { value: "" }, "请选择处置部门"),
        ctx.departments.map((d) => el("option", { value: d.id }, d.name)),
      );
      const limit = c.category ? timeLimitLabel(ctx, c.category.id) : "";
      fields.push(
        el(
          "label",
          { class: "field" },
          el("span", {}, "处置部门 ", el("em", { class: "req" }, "*")),
          deptSel,
          limit ? el("small", { class: "muted" }, `处置时限按“${limit}”自动计算`) : null,
        ),
      );
    }

    if (action === "request_extension") {
      const base = c.deadline ? new Date(c.deadline) : new Date();
      const suggested = new Date(Math.max(base.getTime(), Date.now()) + 24 * 3600 * 1000);
      extInput = el("input", {
        type: "text",
        name: "extension_until",
        required: true,
        inputmode: "numeric",
        maxlength: 25,
        placeholder: CITY_INPUT_HINT,
        "data-testid": "action-extension-until",
        props: { value: toCityInput(suggested) },
      });
      fields.push(
        el(
          "label",
          { class: "field" },
          el("span", {}, "延期至 ", el("em", { class: "req" }, "*")),
          extInput,
          c.deadline ? el("small", { class: "muted" }, `当前处置截止：${fmtTime(c.deadline)}`) : null,
        ),
      );
    }

    if (action === "approve_extension" || action === "deny_extension") {
      fields.push(
        el(
          "p",
          { class: "hint" },
          c.pending_extension_until
            ? `部门申请延期至 ${fmtTime(c.pending_extension_until)}（当前截止 ${fmtTime(c.deadline) || "—"}）`
            : "没有待审批的延期申请",
        ),
      );
    }

    if (action === "reject") {
      dupInput = el("input", {
        name: "duplicate_of",
        "data-testid": "action-duplicate-of",
        placeholder: "原案件编号，如 20261123-00012",
        maxlength: 40,
      });
      const dupField = el("label", { class: "field" }, el("span", {}, "重复于案件 ", el("em", { class: "req" }, "*")), dupInput);
      dupField.hidden = true;
      reasonBox = el(
        "div",
        { class: "radio-row", role: "radiogroup", "data-testid": "action-reject-reason" },
        Object.entries(REJECT_REASON_LABELS).map(([value, text]) =>
          el(
            "label",
            { class: "check-line" },
            el("input", {
              type: "radio",
              name: "reject_reason",
              value,
              "data-testid": `action-reject-${value}`,
              on: { change: () => (dupField.hidden = value !== "duplicate") },
            }),
            el("span", {}, text),
          ),
        ),
      );
      fields.push(
        el("fieldset", { class: "field" }, el("legend", {}, "不予立案原因 ", el("em", { class: "req" }, "*")), reasonBox),
        dupField,
      );
    }

    const noteRequired = NOTE_REQUIRED.has(action);
    const note = el("textarea", {
      name: "note",
      rows: 3,
      maxlength: 2000,
      required: noteRequired,
      "data-testid": "action-note",
      placeholder: NOTE_PLACEHOLDERS[action] || "选填",
    });
    fields.push(
      el(
        "label",
        { class: "field" },
        el("span", {}, noteRequired ? "说明 " : "说明（选填）", noteRequired ? el("em", { class: "req" }, "*") : null),
        note,
      ),
    );

    const photoRequired = PHOTO_REQUIRED.has(action);
    if (photoRequired || PHOTO_OPTIONAL.has(action)) {
      const picker = photoPicker({ testid: "action-photos" });
      photoInput = picker.input;
      fields.push(
        el(
          "div",
          { class: "field" },
          el("span", {}, photoRequired ? "现场照片 " : "现场照片（选填）", photoRequired ? el("em", { class: "req" }, "*") : null),
          picker.node,
        ),
      );
    }

    const submit = el(
      "button",
      {
        type: "submit",
        class: ["btn", DANGEROUS_ACTIONS.has(action) ? "btn-danger" : "btn-primary"],
        "data-testid": "action-submit",
      },
      `确认${label}`,
    );
    const cancel = el(
      "button",
      {
        type: "button",
        class: "btn",
        "data-testid": "action-cancel",
        on: {
          click: () => {
            clear(formBox);
            for (const b of body.querySelectorAll('[data-testid="action-button"]')) b.classList.remove("active");
          },
        },
      },
      "取消",
    );

    const form = el(
      "form",
      { class: "action-form", "data-testid": "action-form", "data-action": action, novalidate: true },
      el("h4", {}, label),
      err,
      fields,
      el("div", { class: "form-buttons" }, cancel, submit),
    );

    const fail = (message) => {
      err.textContent = message;
      err.hidden = false;
    };

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      const payload = { action, version: c.version };
      const text = note.value.trim();
      if (noteRequired && !text) return fail(`“${label}”需要填写说明`);
      if (text) payload.note = text;
      if (deptSel) {
        if (!deptSel.value) return fail("请选择处置部门");
        payload.department_id = Number(deptSel.value);
      }
      if (extInput) {
        if (!extInput.value.trim()) return fail("请填写延期时间");
        const iso = fromCityInput(extInput.value, { endOfDay: true });
        if (!iso) return fail("延期时间格式有误，请按“年-月-日 时:分”填写，如 2026-12-01 08:30");
        if (new Date(iso).getTime() <= Date.now()) return fail("延期时间必须晚于当前时间");
        payload.extension_until = iso;
      }
      if (reasonBox) {
        const picked = reasonBox.querySelector('input[name="reject_reason"]:checked');
        if (!picked) return fail("请选择不予立案的原因");
        payload.reject_reason = picked.value;
        if (picked.value === "duplicate") {
          if (!dupInput.value.trim()) return fail("重复案件需要关联原案件");
        }
      }
      const files = photoInput ? Array.from(photoInput.files || []) : [];
      if (photoRequired && files.length === 0) return fail(`“${label}”需要上传照片`);

      submit.disabled = true;
      cancel.disabled = true;
      submit.textContent = "正在提交…";
      try {
        if (payload.reject_reason === "duplicate") {
          payload.duplicate_of = await resolveCaseRef(dupInput.value.trim(), c.id);
        }
        if (files.length) payload.attachment_ids = await uploadFiles(files, "photo");
        const updated = await api(`/api/cases/${encodeURIComponent(c.id)}/actions`, {
          method: "POST",
          body: payload,
        });
        current = updated;
        render(updated);
        onChanged(updated);
        toast(`${label}成功`);
      } catch (e) {
        if (e.code === "version_conflict") {
          await open(c.id, { notice: CONFLICT_MESSAGE });
          onChanged(current || c);
          return;
        }
        fail(e.message || "操作失败");
        submit.disabled = false;
        cancel.disabled = false;
        submit.textContent = `确认${label}`;
      }
    });
    return form;
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
    const formOpen = body.querySelector('[data-testid="action-form"]');
    if (!formOpen) {
      open(current.id);
      return;
    }
    if (body.querySelector('[data-testid="detail-live-notice"]')) return;
    const reloadBtn = el(
      "button",
      {
        type: "button",
        class: "btn btn-small",
        "data-testid": "detail-live-reload",
        on: { click: () => open(current.id) },
      },
      "重新加载",
    );
    const box = el(
      "div",
      { class: "banner banner-warn live-notice", "data-testid": "detail-live-notice", role: "status" },
      el("span", {}, resync ? "案件可能已更新" : "案件已更新"),
      c ? el("span", { class: "muted" }, `（${stateLabel(c.state) || c.state_label}）`) : null,
      el("span", { class: "spacer" }),
      reloadBtn,
    );
    const head = body.querySelector(".detail-head");
    if (head) head.after(box);
    else body.prepend(box);
  }

  return { open, reload, close, externalUpdate, get current() { return current; } };
}

const caseNumbers = new Map(); // case id -> Promise of its case number ("" when not visible)

/** Another case, shown by its case number (looked up once; "另一案件" when this user may not see it). */
function caseRef(id) {
  const node = el("span", { class: "mono", "data-case-ref": id }, "…");
  if (!caseNumbers.has(id)) {
    caseNumbers.set(
      id,
      api(`/api/cases/${encodeURIComponent(id)}`).then(
        (x) => x.case_no || "",
        () => "",
      ),
    );
  }
  caseNumbers.get(id).then((no) => {
    node.textContent = no || "另一案件（无权查看）";
  });
  return node;
}

/** The category's time limit in Chinese (the server's time_limit_label), or "". */
function timeLimitLabel(ctx, categoryId) {
  const cat = categoryId === undefined ? undefined : ctx.categoryById.get(categoryId);
  return (cat && cat.time_limit_label) || "";
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
