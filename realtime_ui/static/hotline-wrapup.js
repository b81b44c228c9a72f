// The console's wrap-up (话后小结) of the last call: a disposition code, a note and the 咨询 flag,
// then 保存 (or 保存并示闲).
//
// Theory of operation: the panel shows once the agent has left the call whose record id `lastCall`
// holds (in 话后整理 or later: the hub ends wrap-up by itself after its length, the record waits).
// The codes are GET /api/hotline/dispositions (read once). 保存 is
// POST /api/hotline/calls/{id}/disposition {code, note, consultation}; 保存并示闲 then sends
// 示闲 when the agent is still in wrap-up. A saved wrap-up clears `lastCall` and reloads the day's
// calls (hotline-records.js).
import { api } from "./api.js";
import { toast } from "./notify.js";
import { WrapUpClock } from "./hotline-agent.js";
import { lastCall, mine, setState } from "./hotline-state.js";
import { reloadCalls } from "./hotline-records.js";
import { html, signal, useSignal } from "./ui.js";

const dispositions = signal(null);

async function loadDispositions() {
  if (dispositions.peek()) return;
  dispositions.value = [];
  try {
    dispositions.value = (await api("/api/hotline/dispositions")).items || [];
  } catch {
    dispositions.value = null;
  }
}

export function WrapUpPanel() {
  const call = lastCall.value;
  const m = mine.value;
  const err = useSignal("");
  const busy = useSignal(false);
  if (!call || !call.id || (m.call && m.call === call.call)) return null;
  loadDispositions();
  const save = async (form, ready) => {
    const code = form.elements.code.value;
    if (!code) {
      err.value = "请选择话后小结";
      return;
    }
    busy.value = true;
    err.value = "";
    try {
      await api(`/api/hotline/calls/${call.id}/disposition`, {
        method: "POST",
        body: { code, note: form.elements.note.value.trim(), consultation: form.elements.consultation.checked || null },
      });
      lastCall.value = null;
      toast("话后小结已保存");
      reloadCalls();
      if (ready && mine.peek().state === "wrap_up") await setState("ready");
    } catch (ex) {
      err.value = `保存失败：${ex.message}`;
    } finally {
      busy.value = false;
    }
  };
  return html`<section class="hl-panel hl-wrapup" aria-label="话后小结" data-testid="wrapup-panel" data-call-id=${call.id}>
    <div class="hl-panel-head"><h2>话后小结 · ${call.caller}</h2><${WrapUpClock} /></div>
    <form onSubmit=${(e) => { e.preventDefault(); save(e.currentTarget, false); }}>
      <label class="field">小结
        <select name="code" data-testid="wrapup-code" required>
          <option value="">请选择</option>
          ${(dispositions.value || []).map((d) => html`<option key=${d.code} value=${d.code}>${d.label}</option>`)}
        </select></label>
      <label class="field">备注<textarea name="note" rows="2" maxlength="2000" data-testid="wrapup-note"></textarea></label>
      <label class="check-line"><input type="checkbox" name="consultation" data-testid="wrapup-consultation" /> 咨询类来电</label>
      ${err.value && html`<div class="banner banner-error" role="alert" data-testid="wrapup-error">${err.value}</div>`}
      <div class="form-buttons">
        <button type="submit" class="btn btn-small" data-testid="wrapup-save" disabled=${busy.value}>保存</button>
        <button type="button" class="btn btn-primary btn-small" data-testid="wrapup-save-ready" disabled=${busy.value}
                onClick=${(e) => save(e.currentTarget.form, true)}>保存并示闲</button>
      </div>
    </form>
  </section>`;
}
