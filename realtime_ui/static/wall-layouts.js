// The wall's toolbar: the tile count (1 … 48), named layouts saved per seat
// (GET/PUT/DELETE /api/wall/layouts), and 「新窗口」, which opens the next screen of the wall
// (/wall?screen=N) for another monitor; the seat's windows share the layout (wall-state.js).
// A saved layout is one screen's tiles: saving takes this window's slice of the wall, applying
// puts the layout on this window's screen (and its tile count on every window).
import { api } from "./api.js";
import { toast } from "./notify.js";
import { LAYOUTS, myList, round, screenNo, setScreen, setTiles, wall } from "./wall-state.js";
import { html, signal, useSignal } from "./ui.js";

const layouts = signal([]);
const layoutError = signal("");
let nextScreen = screenNo + 1;

export async function loadLayouts() {
  const res = await api("/api/wall/layouts");
  layouts.value = res.items || [];
}

/** A saved layout is one screen: this window's tiles (trailing empty ones left out). */
function screenToSave(tiles) {
  const out = myList().slice(0, tiles);
  while (out.length && out[out.length - 1] === null) out.pop();
  return out;
}

export function Toolbar() {
  const name = useSignal("");
  const chosen = useSignal("");
  const w = wall.value;
  const patrol = !!round.value;
  const save = async () => {
    layoutError.value = "";
    const n = name.peek().trim() || chosen.peek();
    if (!n) {
      layoutError.value = "请填写布局名称";
      return;
    }
    try {
      const cur = wall.peek();
      await api(`/api/wall/layouts/${encodeURIComponent(n)}`, {
        method: "PUT",
        body: { tiles: cur.tiles, cameras: screenToSave(cur.tiles) },
      });
      await loadLayouts();
      chosen.value = n;
      name.value = "";
      toast(`布局“${n}”已保存`);
    } catch (err) {
      layoutError.value = err.message;
    }
  };
  const apply = (n) => {
    chosen.value = n;
    const l = layouts.peek().find((x) => x.name === n);
    if (l) setScreen(l.cameras || [], l.tiles);
  };
  const remove = async () => {
    const n = chosen.peek();
    if (!n) return;
    try {
      await api(`/api/wall/layouts/${encodeURIComponent(n)}`, { method: "DELETE" });
      chosen.value = "";
      await loadLayouts();
    } catch (err) {
      layoutError.value = err.message;
    }
  };
  const openWindow = () => {
    const n = nextScreen;
    nextScreen += 1;
    window.open(`/wall?screen=${n}`, `cityhub-wall-${n}`, "popup=yes,width=1280,height=800");
  };
  return html`<div class="wall-toolbar" data-testid="wall-toolbar">
    <div class="wall-tiles-choice" role="group" aria-label="画面数">
      ${LAYOUTS.map(
        (n) => html`<button type="button" key=${n} data-testid=${`layout-${n}`}
                            class=${`btn btn-small${w.tiles === n ? " btn-primary" : ""}`}
                            aria-pressed=${w.tiles === n} onClick=${() => setTiles(n)}>${n}</button>`,
      )}
    </div>
    <select data-testid="layout-select" value=${chosen.value} disabled=${patrol}
            onChange=${(e) => apply(e.currentTarget.value)}>
      <option value="">${layouts.value.length ? "已存布局…" : "暂无已存布局"}</option>
      ${layouts.value.map((l) => html`<option key=${l.name} value=${l.name}>${l.name}（${l.tiles} 画面）</option>`)}
    </select>
    <input type="text" class="wall-layout-name" placeholder="布局名称" maxlength="50" data-testid="layout-name"
           value=${name.value} onInput=${(e) => (name.value = e.currentTarget.value)} />
    <button type="button" class="btn btn-small" data-testid="layout-save" onClick=${save}>保存布局</button>
    <button type="button" class="btn btn-small" data-testid="layout-delete" disabled=${!chosen.value}
            onClick=${remove}>删除</button>
    <button type="button" class="btn btn-small" data-testid="new-window" onClick=${openWindow}>新窗口</button>
    <span class="muted" data-testid="screen-no">第 ${screenNo} 屏</span>
    ${layoutError.value && html`<span class="banner banner-error" role="alert" data-testid="layout-error">${layoutError.value}</span>`}
  </div>`;
}
