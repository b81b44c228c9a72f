// The speaker console's left side: the speakers as a list (live status and since when, filter by
// group and by name, choose one, several or a whole group) and on the city's grid map.
//
// Theory of operation: the list and the map read the same signals (speakers-state.js): the REST
// list, each speaker's live status, and the selection. A row and a map marker read the status of
// their own speaker, so a status change re-renders one row and one marker. Clicking a row's box or
// a marker toggles that speaker; a group's 选择整组 adds the group as a whole (the server expands
// it when playing, so a speaker added to the group later is reached too).
import { fmtTime } from "./dom.js";
import { fetchGrids, gridGeometry } from "./gridmap.js";
import {
  clearSelection,
  groupById,
  groups,
  selGroups,
  selSpeakers,
  speakers,
  speakersReady,
  statusLabel,
  statusOf,
  targetIds,
  toggleGroup,
  toggleSpeaker,
} from "./speakers-state.js";
import { computed, html, signal } from "./ui.js";

/** The list's filters: a group id ("" for all) and a piece of the name. */
export const filterGroup = signal("");
export const filterName = signal("");

const shown = computed(() => {
  const gid = filterGroup.value === "" ? null : Number(filterGroup.value);
  const needle = filterName.value.trim().toLowerCase();
  const members = gid === null ? null : new Set(groupById.value.get(gid)?.speaker_ids || []);
  return speakers.value.filter(
    (s) =>
      (!members || members.has(s.id) || (s.groups || []).includes(gid)) &&
      (!needle || String(s.name).toLowerCase().includes(needle)),
  );
});

function SpeakerRow({ sp }) {
  const st = statusOf(sp);
  const chosen = selSpeakers.value.has(sp.id);
  const viaGroup = !chosen && targetIds.value.has(sp.id);
  const names = (sp.groups || []).map((g) => groupById.value.get(g)?.name).filter(Boolean);
  return html`<li class=${`spk-row${chosen ? " is-chosen" : ""}${viaGroup ? " is-reached" : ""}`}
                  data-testid="speaker-row" data-id=${sp.id} data-status=${st.state}>
    <label class="spk-pick">
      <input type="checkbox" data-testid="speaker-check" checked=${chosen}
             onChange=${() => toggleSpeaker(sp.id)} aria-label=${`选择 ${sp.name}`} />
      <span class="spk-name">${sp.name}</span>
    </label>
    <span class=${`spk-status st-${st.state}`} data-testid="speaker-status">${statusLabel(st.state)}</span>
    <span class="spk-since muted" data-testid="speaker-since">
      ${st.since ? `自 ${fmtTime(st.since, { short: true })}` : ""}</span>
    ${names.length > 0 && html`<span class="spk-groups muted">${names.join("、")}</span>`}
    ${sp.active === false && html`<span class="tag">已停用</span>`}
  </li>`;
}

function GroupChips() {
  const list = groups.value;
  if (!list.length) return null;
  const chosen = selGroups.value;
  return html`<div class="spk-groupbar" data-testid="group-bar">
    <span class="muted">整组选择：</span>
    ${list.map(
      (g) => html`<button type="button" key=${g.id} data-testid="group-chip" data-id=${g.id}
                          class=${`check-chip${chosen.has(g.id) ? " is-on" : ""}`}
                          aria-pressed=${chosen.has(g.id)} title=${g.description || ""}
                          onClick=${() => toggleGroup(g.id)}>
        ${g.name}<small>（${(g.speaker_ids || []).length}）</small></button>`,
    )}
  </div>`;
}

function SelectionSummary() {
  const n = targetIds.value.size;
  const gs = [...selGroups.value].map((id) => groupById.value.get(id)?.name).filter(Boolean);
  return html`<div class="spk-selection" data-testid="selection-summary" data-count=${n}>
    ${n === 0
      ? html`<span class="muted">未选择喇叭</span>`
      : html`<span>已选 <strong>${n}</strong> 个喇叭${gs.length ? `（分组：${gs.join("、")}）` : ""}</span>
          <button type="button" class="link" data-testid="selection-clear" onClick=${clearSelection}>清除</button>`}
  </div>`;
}

export function SpeakerList() {
  const list = shown.value;
  return html`<section class="spk-panel spk-list-panel" aria-label="喇叭列表">
    <div class="spk-panel-head"><h2>广播喇叭</h2>
      <span class="muted" data-testid="speaker-count">${speakers.value.length} 个</span></div>
    <div class="spk-filters">
      <select data-testid="filter-group" aria-label="按分组筛选" value=${filterGroup.value}
              onChange=${(e) => (filterGroup.value = e.currentTarget.value)}>
        <option value="">全部分组</option>
        ${groups.value.map((g) => html`<option key=${g.id} value=${String(g.id)}>${g.name}</option>`)}
      </select>
      <input type="search" data-testid="filter-name" placeholder="按名称搜索" aria-label="按名称搜索"
             value=${filterName.value} onInput=${(e) => (filterName.value = e.currentTarget.value)} />
    </div>
    <${GroupChips} />
    <${SelectionSummary} />
    ${!speakersReady.value
      ? html`<p class="loading">正在加载…</p>`
      : list.length === 0
        ? html`<p class="empty muted" data-testid="speaker-empty">
            ${speakers.value.length ? "没有符合条件的喇叭" : "暂无广播喇叭"}</p>`
        : html`<ul class="spk-list" data-testid="speaker-list">
            ${list.map((sp) => html`<${SpeakerRow} key=${sp.id} sp=${sp} />`)}</ul>`}
  </section>`;
}

// ---- the map -----------------------------------------------------------------------------------

const grid = signal({ status: "idle", geo: null });

export function loadMap() {
  grid.value = { status: "loading", geo: null };
  fetchGrids()
    .then(({ level1, level2 }) => (grid.value = { status: "ready", geo: gridGeometry(level1, level2) }))
    .catch(() => (grid.value = { status: "failed", geo: null }));
}

function Marker({ sp, geo }) {
  const st = statusOf(sp);
  const [x, y] = geo.project(sp.location.lon, sp.location.lat);
  const chosen = selSpeakers.value.has(sp.id);
  const reached = targetIds.value.has(sp.id);
  return html`<g class=${`spk-marker st-${st.state}${chosen ? " is-chosen" : ""}${reached ? " is-reached" : ""}`}
                 transform=${`translate(${x.toFixed(1)} ${y.toFixed(1)})`} data-testid="speaker-marker"
                 data-id=${sp.id} data-status=${st.state} onClick=${() => toggleSpeaker(sp.id)}>
    <title>${`${sp.name} · ${statusLabel(st.state)}`}</title>
    ${reached && html`<circle class="spk-marker-ring" r="15" />`}
    <circle class="spk-marker-dot" r="9" />
  </g>`;
}

export function SpeakerMap() {
  const { status, geo } = grid.value;
  const placed = speakers.value.filter(
    (s) => s.location && typeof s.location.lon === "number" && typeof s.location.lat === "number",
  );
  let body;
  if (status !== "ready" && status !== "failed") body = html`<p class="muted spk-map-status">正在加载网格地图…</p>`;
  else if (!geo) body = html`<p class="muted spk-map-status" data-testid="speaker-map-status">网格地图不可用</p>`;
  else {
    body = html`<svg class="spk-map" viewBox=${geo.viewBox} data-testid="speaker-map" role="img"
                     aria-label="喇叭分布地图，点击喇叭选择">
      <g class="cells">${geo.cells.map(
        (c) => html`<polygon key=${c.grid.id} class=${`cell tone-${c.tone}`} points=${c.points} />`,
      )}</g>
      <g class="streets">${geo.streets.map((s) => html`<polygon key=${s.grid.id} class="street" points=${s.points} />`)}</g>
      <g class="street-labels">${geo.streets.map(
        (s) => html`<text key=${s.grid.id} class="street-label" x=${s.labelX.toFixed(1)}
                          y=${s.labelY.toFixed(1)}>${s.grid.name}</text>`,
      )}</g>
      <g class="spk-markers">${placed.map((sp) => html`<${Marker} key=${sp.id} sp=${sp} geo=${geo} />`)}</g>
    </svg>`;
  }
  return html`<section class="spk-panel spk-map-panel" aria-label="喇叭地图">
    <div class="spk-panel-head"><h2>分布地图</h2>
      <ul class="spk-legend">
        <li><span class="spk-dot st-online"></span>在线</li>
        <li><span class="spk-dot st-busy"></span>通话中</li>
        <li><span class="spk-dot st-offline"></span>离线</li>
        <li><span class="spk-dot st-unknown"></span>未知</li>
      </ul></div>
    ${body}
  </section>`;
}
