// The voice warning on a case's detail pane (detail.js): the case's warnings (喊话警示记录) and, for
// the roles that may issue warnings, a "喊话警示" control that plays a clip at the loudspeaker
// nearest to the case. detail.js renders <CaseWarnings key=${c.id} c=${c} user=${ctx.user} />.
//
// Theory of operation:
// - Only the roles that may read warnings (admin, seat, dispatcher, viewer) see the section; the
//   control is for the issuers (admin, seat, dispatcher) and only when the case has a location.
//   The API decides anyway; this only keeps controls that would be refused off the page.
// - The list is GET /api/cases/{id}/warnings (newest first). Running warnings live on the
//   `warnings` state channel (warning id -> the warning JSON while it runs; the key goes when it
//   ends). While a case pane is open this module holds one live.js connection for that channel
//   (connectStores, the board's own socket carries only the case channels); it is closed a while
//   after the last pane goes. A running entry shows the channel's copy, so each speaker's outcome
//   changes in place; a warning of this case that appears there (started elsewhere) joins the
//   list; when one leaves the channel the list is read again for its final outcomes. A resync, or
//   a running entry the channel does not show (no connection), also rereads it (POLL_MS apart).
// - 在最近的喇叭播放 posts {clip_id, repeat} to /api/cases/{id}/warning: 202 is the warning (its
//   one target is the chosen speaker) plus distance_m, shown above the live outcome with 停止
//   (POST /api/warnings/{id}/stop) while it runs; a 409 (no speaker within 2 km, no location) is
//   the API's own message in the form. Clips (GET /api/clips) are read once per page.
// - Times are the city's (dom.js fmtTime); a terminal state is never replaced by a running copy.
import { api } from "./api.js";
import { fmtTime } from "./dom.js";
import { connectStores } from "./live.js";
import { toast } from "./notify.js";
import {
  CONTROL_ROLES,
  KIND_LABELS,
  READ_ROLES,
  WARNING_STATE_LABELS,
  outcomeLabel,
} from "./speakers-state.js";
import { createStateStore } from "./store.js";
import { html, signal, useEffect, useRef, useState } from "./ui.js";

/** The repeat counts offered here (the API takes 1..10; a case warning is short). */
const REPEATS = [1, 2, 3];
/** How often the list is reread while a running entry is not on the channel. */
const POLL_MS = 10_000;
const STALE_MS = 5_000;
/** How long the channel's connection outlives the last open case pane (switching cases). */
const LINGER_MS = 60_000;
const TERMINAL = new Set(["done", "stopped", "failed"]);

// ---- the `warnings` channel, shared by the mounted panes --------------------------------------

const running = createStateStore("warnings");
/** Bumped on each resync of the channel: the panes reread their lists. */
const resyncs = signal(0);
running.onResync = () => {
  resyncs.value += 1;
};
let conn = null;
let holders = 0;
let lingerTimer = null;

function holdChannel() {
  holders += 1;
  clearTimeout(lingerTimer);
  if (!conn) conn = connectStores([running], { channels: ["warnings"] });
  return () => {
    holders -= 1;
    if (holders > 0) return;
    clearTimeout(lingerTimer);
    lingerTimer = setTimeout(() => {
      if (holders > 0 || !conn) return;
      conn.close();
      conn = null;
      running.onEnvelope({ type: "snapshot", data: {} }); // nothing known while not listening
      running.ready.value = false;
    }, LINGER_MS);
  };
}

/** The last copy the channel gave of each warning (id -> warning), kept past its removal. */
const lastCopies = new Map();
const LAST_COPIES_KEPT = 200;

/** The channel's copy of a warning while it runs (reads its signal), or the last one it gave. */
function liveCopy(id) {
  const item = running.item(String(id));
  if (!item) return lastCopies.get(id) || null;
  const w = item.value;
  lastCopies.delete(id);
  lastCopies.set(id, w);
  if (lastCopies.size > LAST_COPIES_KEPT) lastCopies.delete(lastCopies.keys().next().value);
  return w;
}

/**
 * What to show of a warning: a terminal REST copy as it is; else the channel's copy (the last one
 * it gave, between its leaving the channel and the list's reread), else the REST one.
 */
function current(w) {
  if (TERMINAL.has(w.state)) return w;
  return liveCopy(w.id) || w;
}

// ---- clips, read once per page ------------------------------------------------------------------

let clipsPromise = null;
function loadClips() {
  if (!clipsPromise) {
    clipsPromise = api("/api/clips").then(
      (res) => res.items || [],
      (err) => {
        clipsPromise = null; // try again next time
        throw err;
      },
    );
  }
  return clipsPromise;
}

// ---- components -------------------------------------------------------------------------------

export function CaseWarnings({ c, user }) {
  const role = user ? user.role : null;
  if (!READ_ROLES.has(role)) return null;
  return html`<${Section} c=${c} control=${CONTROL_ROLES.has(role)} />`;
}

function Section({ c, control }) {
  const [items, setItems] = useState(null); // null: loading
  const [loadError, setLoadError] = useState("");
  const [started, setStarted] = useState(null); // {id, distance_m} of the one started here
  const seq = useRef(0);
  const seen = useRef(new Set()); // ids of this case's warnings seen on the channel
  const lastLoad = useRef(0);

  async function reload() {
    const mine = ++seq.current;
    lastLoad.current = Date.now();
    try {
      const res = await api(`/api/cases/${encodeURIComponent(c.id)}/warnings`);
      if (mine !== seq.current) return;
      setLoadError("");
      setItems((prev) => keepNewer(prev, res.items || []));
    } catch (err) {
      if (mine !== seq.current) return;
      setLoadError(`喊话记录加载失败：${err.message}`);
      setItems((prev) => prev || []);
    }
  }

  const upsert = (w) => setItems((prev) => upserted(prev || [], w));

  useEffect(() => holdChannel(), []);
  useEffect(() => {
    reload();
  }, [c.id]);
  const resync = resyncs.value;
  useEffect(() => {
    if (resync) reload();
  }, [resync]);

  // The channel: this case's warnings that start elsewhere join the list; one that leaves it ended.
  const keys = running.keys.value;
  const ready = running.ready.value;
  useEffect(() => {
    const present = new Set(keys);
    let ended = false;
    for (const k of keys) {
      const w = running.get(k);
      if (!w || w.case_id !== c.id) continue;
      seen.current.add(w.id);
      if (!items || !items.some((x) => x.id === w.id)) upsert(w);
    }
    for (const id of [...seen.current]) {
      if (!present.has(String(id))) {
        seen.current.delete(id);
        ended = true;
      }
    }
    if (ended) reload();
  }, [keys, c.id]);

  // A running entry the channel does not show (ended before the snapshot, or no connection).
  useEffect(() => {
    const stale = (items || []).some((w) => w.state === "running" && !(ready && keys.includes(String(w.id))));
    if (!stale) return undefined;
    // Not sooner than STALE_MS: a warning that has just left the channel is reread at once above.
    const wait = Math.max(STALE_MS, POLL_MS - (Date.now() - lastLoad.current));
    const t = setTimeout(reload, wait);
    return () => clearTimeout(t);
  }, [items, keys, ready]);

  const hasLocation = typeof c.lon === "number" && typeof c.lat === "number";
  const startedWarning = started && items ? items.find((w) => w.id === started.id) : null;
  return html`<section class="detail-section case-warnings" data-testid="case-warnings">
    <h3>喊话警示</h3>
    ${control && hasLocation
      ? html`<${Control}
          c=${c}
          busyWarning=${startedWarning && current(startedWarning).state === "running"}
          onStarted=${(w) => {
            upsert(w);
            setStarted({ id: w.id, distance_m: w.distance_m });
          }}
        />`
      : null}
    ${control && !hasLocation
      ? html`<p class="muted" data-testid="cw-no-location">案件没有位置，无法在最近的喇叭喊话</p>`
      : null}
    ${startedWarning
      ? html`<${Result} w=${current(startedWarning)} distance=${started.distance_m} onStopped=${upsert} />`
      : null}
    ${loadError ? html`<div class="banner banner-error" role="alert">${loadError}</div>` : null}
    <${WarningList} items=${items} />
  </section>`;
}

function Control({ c, busyWarning, onStarted }) {
  const [clips, setClips] = useState(null); // null: loading, false: failed
  const [clipId, setClipId] = useState("");
  const [repeat, setRepeat] = useState("1");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    loadClips().then(
      (list) => {
        if (!live) return;
        setClips(list);
        setClipId((cur) => cur || (list.length ? String(list[0].id) : ""));
      },
      (err) => {
        if (!live) return;
        setClips(false);
        setError(`录音列表加载失败：${err.message}`);
      },
    );
    return () => {
      live = false;
    };
  }, []);

  async function play() {
    if (!clipId) return setError("请选择要播放的录音");
    setError("");
    setBusy(true);
    try {
      const w = await api(`/api/cases/${encodeURIComponent(c.id)}/warning`, {
        method: "POST",
        body: { clip_id: Number(clipId), repeat: Number(repeat) },
      });
      onStarted(w);
      toast(`已开始在${w.targets && w.targets[0] ? w.targets[0].speaker_name : "最近的喇叭"}播放`);
    } catch (err) {
      setError(err.message || "喊话失败");
    } finally {
      setBusy(false);
    }
  }

  const failed = clips === false;
  const none = Array.isArray(clips) && clips.length === 0;
  return html`<div class="cw-control" data-testid="cw-control">
    ${error ? html`<div class="banner banner-error" data-testid="cw-error" role="alert">${error}</div>` : null}
    <div class="cw-row">
      <label class="field cw-clip">
        <span>录音</span>
        <select
          data-testid="cw-clip"
          value=${clipId}
          disabled=${!Array.isArray(clips) || none}
          onChange=${(e) => setClipId(e.currentTarget.value)}
        >
          ${clips === null ? html`<option value="">正在加载…</option>` : null}
          ${failed ? html`<option value="">录音列表未能加载</option>` : null}
          ${none ? html`<option value="">暂无录音（请在喊话控制台添加）</option>` : null}
          ${(clips || []).map(
            (x) => html`<option key=${x.id} value=${String(x.id)}>
              ${x.name}${x.category ? `（${x.category}）` : ""}
            </option>`,
          )}
        </select>
      </label>
      <label class="field cw-repeat">
        <span>播放次数</span>
        <select data-testid="cw-repeat" value=${repeat} onChange=${(e) => setRepeat(e.currentTarget.value)}>
          ${REPEATS.map((n) => html`<option key=${n} value=${String(n)}>${n} 次</option>`)}
        </select>
      </label>
      <button
        type="button"
        class="btn btn-primary cw-play"
        data-testid="cw-play"
        disabled=${busy || busyWarning || !clipId}
        title="在距离案件位置最近（2 公里内）的启用喇叭播放所选录音"
        onClick=${play}
      >
        ${busy ? "正在发起…" : busyWarning ? "正在播放…" : "在最近的喇叭播放"}
      </button>
    </div>
  </div>`;
}

/** The warning started here: the speaker chosen, how far, its outcome live, 停止 while it runs. */
function Result({ w, distance, onStopped }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const target = (w.targets || [])[0];
  const runningNow = w.state === "running";
  async function stop() {
    setBusy(true);
    setError("");
    try {
      onStopped(await api(`/api/warnings/${encodeURIComponent(w.id)}/stop`, { method: "POST" }));
    } catch (err) {
      setError(err.message || "停止失败");
    } finally {
      setBusy(false);
    }
  }
  return html`<div class="cw-result" data-testid="cw-result" data-id=${w.id} data-state=${w.state}
    role="status" aria-live="polite">
    <div class="cw-result-head">
      <span>喇叭：<strong data-testid="cw-speaker">${target ? target.speaker_name : "—"}</strong></span>
      ${typeof distance === "number"
        ? html`<span class="muted">距案件位置约 <span data-testid="cw-distance">${fmtDistance(distance)}</span></span>`
        : null}
      <span class=${`tag cw-state cw-state-${w.state}`} data-testid="cw-result-state"
        >${WARNING_STATE_LABELS[w.state] || w.state}</span
      >
      <span class="spacer"></span>
      ${runningNow
        ? html`<button
            type="button"
            class="btn btn-small btn-danger"
            data-testid="cw-stop"
            disabled=${busy}
            onClick=${stop}
          >
            停止
          </button>`
        : null}
    </div>
    ${error ? html`<div class="banner banner-error" role="alert">${error}</div>` : null}
    <${Targets} targets=${w.targets} testid="cw-target" />
  </div>`;
}

function WarningList({ items }) {
  if (items === null) return html`<p class="loading">正在加载喊话记录…</p>`;
  if (!items.length) return html`<p class="muted" data-testid="cw-empty">本案件暂无喊话记录</p>`;
  return html`<ol class="timeline cw-list" data-testid="cw-list">
    ${items.map((w) => html`<${WarningItem} key=${w.id} w=${w} />`)}
  </ol>`;
}

function WarningItem({ w: rest }) {
  const w = current(rest); // reads the channel's signal while it runs
  const what = w.clip ? w.clip.name : KIND_LABELS[w.kind] || "喊话";
  return html`<li class=${`tl-item cw-item cw-item-${w.state}`} data-testid="cw-item" data-id=${w.id}
    data-state=${w.state}>
    <div class="tl-head">
      <strong class="tl-action">喊话警示</strong>
      <span class="tl-states" data-testid="cw-item-clip">${what}${w.repeat > 1 ? `（${w.repeat} 次）` : ""}</span>
      <span class=${`tag cw-state cw-state-${w.state}`}>${WARNING_STATE_LABELS[w.state] || w.state}</span>
    </div>
    <div class="tl-meta muted">
      <time datetime=${w.started_at} data-testid="cw-item-time">${fmtTime(w.started_at, { seconds: true })}</time>
      · <span data-testid="cw-item-who">${w.started_by ? w.started_by.name : "定时任务"}</span>
    </div>
    <${Targets} targets=${w.targets} testid="cw-item-target" />
  </li>`;
}

function Targets({ targets, testid }) {
  if (!targets || !targets.length) return null;
  return html`<ul class="cw-targets">
    ${targets.map(
      (t) => html`<li
        key=${t.speaker_id}
        class=${`cw-target cw-target-${t.outcome}`}
        data-testid=${testid}
        data-speaker-id=${t.speaker_id}
        data-outcome=${t.outcome}
      >
        <span>${t.speaker_name || "喇叭"}</span>
        <span class="cw-outcome">${outcomeLabel(t.outcome)}</span>
        ${t.attempts > 1 ? html`<span class="muted">第 ${t.attempts} 次</span>` : null}
      </li>`,
    )}
  </ul>`;
}

// ---- helpers ----------------------------------------------------------------------------------

function fmtDistance(m) {
  return m < 1000 ? `${Math.round(m)} 米` : `${(m / 1000).toFixed(1)} 公里`;
}

/** Put w into a newest-first list (replace by id unless that would undo a terminal state). */
function upserted(list, w) {
  if (!w || typeof w.id !== "number") return list;
  const at = list.findIndex((x) => x.id === w.id);
  if (at >= 0) {
    if (TERMINAL.has(list[at].state) && !TERMINAL.has(w.state)) return list;
    const next = [...list];
    next[at] = { ...list[at], ...w };
    return next;
  }
  const next = [...list];
  const pos = next.findIndex((x) => x.id < w.id);
  if (pos < 0) next.push(w);
  else next.splice(pos, 0, w);
  return next;
}

/** A fresh REST answer, except where what is known already is further along (a terminal state). */
function keepNewer(prev, items) {
  if (!prev) return items;
  const known = new Map(prev.map((w) => [w.id, w]));
  const out = items.map((w) => {
    const k = known.get(w.id);
    return k && TERMINAL.has(k.state) && !TERMINAL.has(w.state) ? k : w;
  });
  // A warning started here a moment ago may not be in a list read just before it.
  for (const w of prev) if (!out.some((x) => x.id === w.id) && w.state === "running") out.unshift(w);
  return out.sort((a, b) => b.id - a.id);
}
