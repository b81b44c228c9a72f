// The "新建案件" form (Preact components, ui.js): the category by major → minor class with a search
// box, the description with a character counter, the location picked on the grid map (or "use my
// position" on a phone) with its grid checked locally and the address filled in from it, source
// and contact, photos previewed, checked and compressed before upload. Every missing or wrong
// field is reported at once, highlighted, before anything is sent.
import { api, uploadFiles } from "./api.js";
import { baseTiles, fetchGrids, gridAt, gridGeometry } from "./gridmap.js";
import {
  DEFAULT_SOURCE_BY_ROLE,
  LOCATED_SOURCES,
  SOURCES,
  SOURCES_BY_ROLE,
  sourceLabel,
} from "./labels.js";
import { toast } from "./notify.js";
import { DEFAULT_LIMITS, PhotoPicker, limitsFrom } from "./photos-upload.js";
import { html, render, signal, useMemo, useRef, useState } from "./ui.js";

const CONTACT_SOURCES = new Set(["hotline", "public"]);
/** The API's limits (hub/web/routes/cases.py CreateCaseBody). */
export const DESCRIPTION_MAX = 4000;
export const ADDRESS_MAX = 200;
const SEARCH_SHOWN = 60;

/** The grids with their boundaries, loaded once per page: {status, level1, level2, geo, byId}. */
const gridStore = signal({ status: "idle" });
/** The hub's upload limits (GET /api/auth/me `uploads`). */
const uploadLimits = signal(DEFAULT_LIMITS);
/** The city's base map (GET /api/auth/me `map`: {tiles, attribution}; tiles null: grids only). */
const baseMap = signal({ tiles: null, attribution: "" });

function loadGrids() {
  if (gridStore.value.status !== "idle" && gridStore.value.status !== "failed") return;
  gridStore.value = { status: "loading" };
  fetchGrids()
    .then(({ level1, level2 }) => {
      const byId = new Map([...level1, ...level2].map((g) => [g.id, g]));
      gridStore.value = { status: "ready", level1, level2, byId, geo: gridGeometry(level1, level2) };
    })
    .catch(() => {
      gridStore.value = { status: "failed" };
    });
}

function loadLimits() {
  api("/api/auth/me")
    .then((who) => {
      uploadLimits.value = limitsFrom(who);
      if (who.map && typeof who.map.tiles === "string") baseMap.value = who.map;
    })
    .catch(() => {});
}

/** "南宁街道 第001网格": the street and the unit grid, as an address a person would write. */
export function gridAddress(grid, parent) {
  const name = grid.name || "";
  const street = parent ? parent.name || "" : "";
  if (!street) return name;
  return name.startsWith(street) ? `${street} ${name.slice(street.length)}`.trim() : `${street} ${name}`;
}

function parseCoords(lonRaw, latRaw) {
  const a = String(lonRaw).trim();
  const b = String(latRaw).trim();
  if (!a && !b) return null;
  const lon = Number(a);
  const lat = Number(b);
  if (!a || !b || !Number.isFinite(lon) || !Number.isFinite(lat)) return undefined;
  if (lon < -180 || lon > 180 || lat < -90 || lat > 90) return undefined;
  return { lon, lat };
}

/** Grid ids a field supervisor may report in (a street grid covers its unit grids); null: any. */
function scopeOf(user, store) {
  if (!user || user.role !== "supervisor" || store.status !== "ready") return null;
  const own = new Set(user.grid_ids || []);
  for (const g of store.level2) if (own.has(g.parent_id)) own.add(g.id);
  return own;
}

// ---- the category picker -----------------------------------------------------------------------

function majorKey(c) {
  return `${c.kind || ""}|${c.major_name || "其他"}`;
}

function CategoryPicker({ categories, value, onChange, invalid }) {
  const [query, setQuery] = useState("");
  const [major, setMajor] = useState(null);
  const kinds = useMemo(() => new Set(categories.map((c) => c.kind)), [categories]);
  const groups = useMemo(() => {
    const m = new Map();
    for (const c of categories) {
      const key = majorKey(c);
      if (!m.has(key)) {
        const kind = kinds.size > 1 ? `${c.kind === "component" ? "部件" : "事件"} · ` : "";
        m.set(key, { key, kind: c.kind, major: c.major_name || "其他", label: `${kind}${c.major_name || "其他"}`, items: [] });
      }
      m.get(key).items.push(c);
    }
    return [...m.values()];
  }, [categories, kinds]);
  const chosen = categories.find((c) => c.id === value) || null;
  const openMajor = major ?? (chosen ? majorKey(chosen) : null);
  const needle = query.trim().toLowerCase();
  const found = needle
    ? categories.filter((c) =>
        [c.major_name, c.name, c.code].some((x) => String(x || "").toLowerCase().includes(needle)),
      )
    : null;
  const minor = (c, withMajor) => html`
    <li key=${c.id}>
      <button type="button" class=${`cat-minor${c.id === value ? " is-chosen" : ""}`}
              data-testid="report-minor" data-category-id=${c.id} aria-pressed=${c.id === value}
              onClick=${() => {
                onChange(c.id);
                setQuery("");
                setMajor(majorKey(c));
              }}>
        <span class="cat-name">${withMajor ? html`<span class="muted">${c.major_name} › </span>` : ""}${c.name}</span>
        ${c.time_limit_label && html`<small class="muted cat-limit">时限：${c.time_limit_label}</small>`}
      </button>
    </li>`;
  return html`
    <div class=${`cat-picker${invalid ? " has-error" : ""}`} data-testid="report-category">
      <div class="cat-chosen" data-testid="report-category-chosen">
        ${chosen
          ? html`<strong>${chosen.major_name} › ${chosen.name}</strong>
              ${chosen.time_limit_label && html`<span class="muted">处置时限：${chosen.time_limit_label}</span>`}`
          : html`<span class="muted">尚未选择类别</span>`}
      </div>
      <input type="search" class="cat-search" placeholder="搜索大类或小类，如“乱建”“井盖”"
             aria-label="搜索案件类别" data-testid="report-category-search" value=${query}
             aria-invalid=${invalid ? "true" : "false"}
             onInput=${(ev) => setQuery(ev.currentTarget.value)} />
      ${found
        ? html`<ul class="cat-minors cat-found" data-testid="report-category-results">
            ${found.length === 0 && html`<li class="muted" data-testid="report-category-none">没有匹配的类别</li>`}
            ${found.slice(0, SEARCH_SHOWN).map((c) => minor(c, true))}
          </ul>`
        : html`
          <ul class="cat-majors">
            ${groups.map(
              (g) => html`<li key=${g.key}>
                <button type="button" class=${`cat-major${g.key === openMajor ? " is-open" : ""}`}
                        data-testid="report-major" data-kind=${g.kind} data-major=${g.major}
                        aria-expanded=${g.key === openMajor}
                        onClick=${() => setMajor(g.key === openMajor ? "" : g.key)}>${g.label}</button>
              </li>`,
            )}
          </ul>
          ${groups
            .filter((g) => g.key === openMajor)
            .map((g) => html`<ul key=${g.key} class="cat-minors">${g.items.map((c) => minor(c, false))}</ul>`)}`}
    </div>`;
}

// ---- the map -----------------------------------------------------------------------------------

const MAX_ZOOM = 8;

/** The viewBox of the map at zoom `k` around (cx, cy), kept inside the city's box. */
function zoomedBox(geo, { k, cx, cy }) {
  const [x0, y0, w0, h0] = geo.viewBox.split(" ").map(Number);
  if (k <= 1) return { box: geo.viewBox, cx: x0 + w0 / 2, cy: y0 + h0 / 2 };
  const w = w0 / k;
  const h = h0 / k;
  const x = Math.min(Math.max(cx - w / 2, x0), x0 + w0 - w);
  const y = Math.min(Math.max(cy - h / 2, y0), y0 + h0 - h);
  return { box: `${x.toFixed(1)} ${y.toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`, cx: x + w / 2, cy: y + h / 2 };
}

function GridMap({ store, point, chosenId, scope, onPick }) {
  const ref = useRef(null);
  const geo = store.geo;
  const [zoom, setZoom] = useState({ k: 1, cx: 0, cy: 0 });
  const cells = useMemo(
    () =>
      geo
        ? geo.cells.map((c) => {
            const cls = ["cell", `tone-${c.tone}`];
            if (scope && !scope.has(c.grid.id)) cls.push("is-foreign");
            return html`<polygon key=${c.grid.id} class=${cls.join(" ")} points=${c.points}
                                 data-grid-id=${c.grid.id}><title>${c.grid.name || ""}</title></polygon>`;
          })
        : null,
    [geo, scope],
  );
  if (store.status === "loading" || store.status === "idle") {
    return html`<p class="report-map-status muted" data-testid="report-map-status">正在加载网格地图…</p>`;
  }
  if (!geo) {
    return html`<p class="report-map-status muted" data-testid="report-map-status">
      网格地图加载失败，请使用当前位置或手动填写经纬度</p>`;
  }
  const chosen = chosenId ? geo.cells.find((c) => c.grid.id === chosenId) : null;
  const click = (ev) => {
    const svg = ref.current;
    const m = svg.getScreenCTM();
    if (!m) return;
    const pt = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
    const [lon, lat] = geo.unproject(pt.x, pt.y);
    onPick(Number(lon.toFixed(6)), Number(lat.toFixed(6)));
  };
  const pin = point ? geo.project(point.lon, point.lat) : null;
  const view = zoomedBox(geo, zoom);
  const tiles = baseTiles(geo, baseMap.value.tiles, view.box);
  const zoomBy = (factor) => {
    const k = Math.min(MAX_ZOOM, Math.max(1, zoom.k * factor));
    // Zooming in goes to the chosen point; out, it keeps the centre.
    const [cx, cy] = factor > 1 && pin ? pin : [view.cx, view.cy];
    setZoom({ k, cx, cy });
  };
  return html`
    <div class="report-map-tools">
      <button type="button" class="btn btn-small" data-testid="report-map-zoom-in" aria-label="放大地图"
              disabled=${zoom.k >= MAX_ZOOM} onClick=${() => zoomBy(2)}>放大</button>
      <button type="button" class="btn btn-small" data-testid="report-map-zoom-out" aria-label="缩小地图"
              disabled=${zoom.k <= 1} onClick=${() => zoomBy(0.5)}>缩小</button>
      <button type="button" class="btn btn-small" data-testid="report-map-zoom-reset" aria-label="显示全部网格"
              disabled=${zoom.k <= 1} onClick=${() => setZoom({ k: 1, cx: 0, cy: 0 })}>全图</button>
    </div>
    <svg ref=${ref} class="report-map-svg" viewBox=${view.box} data-testid="report-map"
         data-zoom=${zoom.k} role="img" aria-label="网格地图，点击选择问题位置" onClick=${click}>
      ${tiles.length > 0 &&
      html`<g class="basemap" data-testid="report-basemap">
        ${tiles.map(
          (t) => html`<image key=${t.key} href=${t.href} x=${t.x.toFixed(1)} y=${t.y.toFixed(1)}
                             width=${t.width.toFixed(1)} height=${t.height.toFixed(1)}
                             preserveAspectRatio="none" data-tile=${t.key} />`,
        )}
      </g>`}
      <g class="cells">${cells}</g>
      <g class="streets">
        ${geo.streets.map((s) => html`<polygon key=${s.grid.id} class="street" points=${s.points} />`)}
      </g>
      <g class="street-labels">
        ${geo.streets.map(
          (s) => html`<text key=${s.grid.id} class="street-label" x=${s.labelX.toFixed(1)}
                            y=${s.labelY.toFixed(1)}>${s.grid.name}</text>`,
        )}
      </g>
      ${chosen && html`<polygon class="cell-chosen" points=${chosen.points} data-testid="report-map-chosen" />`}
      ${pin &&
      html`<g class="report-pin" data-testid="report-pin"
              transform=${`translate(${pin[0].toFixed(1)} ${pin[1].toFixed(1)}) scale(${(1 / Math.sqrt(zoom.k)).toFixed(3)})`}>
        <circle class="report-pin-halo" r="16" /><circle class="report-pin-dot" r="7" />
      </g>`}
    </svg>
    ${tiles.length > 0 && baseMap.value.attribution &&
    html`<small class="map-attribution muted" data-testid="report-map-attribution">
      底图：${baseMap.value.attribution}</small>`}`;
}

// ---- the form ----------------------------------------------------------------------------------

function Counter({ value, max, testid }) {
  const n = [...value].length;
  return html`<small class=${`char-count${n > max ? " over" : ""}`} data-testid=${testid} aria-live="polite">
    ${n} / ${max}${n > max ? `（超出 ${n - max} 字）` : ""}</small>`;
}

function FieldError({ problems, name }) {
  const text = problems[name];
  return text ? html`<small class="field-error" data-testid="report-field-error" data-field=${name}>${text}</small>` : null;
}

function validate(f, { grid, scope, quickShown, photoCount, busy }) {
  const out = {};
  if (!f.categoryId) out.category = "请选择案件类别";
  if (!f.source) out.source = "请选择案件来源";
  const desc = f.description.trim();
  const descLen = [...f.description].length;
  if (!desc) out.description = "请填写问题描述";
  else if (descLen > DESCRIPTION_MAX) out.description = `问题描述最多 ${DESCRIPTION_MAX} 字，已超出 ${descLen - DESCRIPTION_MAX} 字`;
  const addrLen = [...f.address.trim()].length;
  if (addrLen > ADDRESS_MAX) out.address = `地址最多 ${ADDRESS_MAX} 字，已超出 ${addrLen - ADDRESS_MAX} 字`;
  const p = parseCoords(f.lon, f.lat);
  if (p === undefined) out.location = "经纬度格式不正确（经度 -180～180，纬度 -90～90）";
  else if (!p && LOCATED_SOURCES.has(f.source)) out.location = "请在地图上点选问题位置，或使用当前位置";
  else if (!p && !f.address.trim()) out.location = "请在地图上点选问题位置，或填写地址";
  else if (p && grid.state === "outside") out.location = "该位置不在本市网格范围内，请在网格内选点";
  else if (p && grid.state === "inside" && scope && !scope.has(grid.grid.id)) {
    out.location = "该位置不在您负责的网格内";
  }
  if (CONTACT_SOURCES.has(f.source) && !/^[0-9+\- ]*$/.test(f.contactPhone.trim())) {
    out.contact_phone = "联系电话只能包含数字、“+”、“-”和空格";
  }
  if (busy > 0) out.photos = "照片还在处理中，请稍候";
  else if (quickShown && f.quick && photoCount === 0) out.photos = "快速处置需要上传处置前照片";
  return out;
}

const FIELD_ORDER = ["category", "source", "description", "location", "address", "contact_phone", "photos"];

function ReportForm({ ctx, close, onCreated }) {
  const user = ctx.user || {};
  const allowed = SOURCES_BY_ROLE[user.role] || SOURCES;
  const wanted = DEFAULT_SOURCE_BY_ROLE[user.role];
  const quickShown = user.role === "supervisor" || user.role === "admin";
  const [f, setF] = useState(() => ({
    categoryId: null,
    source: allowed.includes(wanted) ? wanted : allowed[0] || "",
    quick: false,
    description: "",
    address: "",
    addressAuto: true, // the address is ours (empty or filled from the grid) until the user types
    lon: "",
    lat: "",
    contactName: "",
    contactPhone: "",
  }));
  const [extra, setExtra] = useState({}); // problems only a submit finds (a pending grid lookup)
  const [tried, setTried] = useState(false);
  const [locating, setLocating] = useState("");
  const [sending, setSending] = useState(false);
  const [failure, setFailure] = useState("");
  const [remote, setRemote] = useState({ key: "", state: "none", grid: null });
  const [photos] = useState(() => signal([]));
  const [photoProblems] = useState(() => signal([]));
  const [busy] = useState(() => signal(0));
  const lookupTimer = useRef(null);
  const store = gridStore.value;
  const limits = uploadLimits.value;
  const scope = useMemo(() => scopeOf(user, store), [user, store]);

  const point = parseCoords(f.lon, f.lat);
  // The grid of the point: from the polygons when they are loaded, else from the API.
  let grid = { state: "none", grid: null };
  if (point) {
    if (store.status === "ready") {
      const g = gridAt(store.level2, point.lon, point.lat);
      grid = g ? { state: "inside", grid: g } : { state: "outside", grid: null };
    } else {
      const key = `${point.lon},${point.lat}`;
      grid = remote.key === key ? remote : { state: "checking", grid: null };
      if (remote.key !== key) {
        clearTimeout(lookupTimer.current);
        lookupTimer.current = setTimeout(() => {
          api("/api/grids/lookup", { query: point })
            .then((g) => setRemote({ key, state: "inside", grid: g }))
            .catch((e) => setRemote({ key, state: e.status === 404 ? "outside" : "error", grid: null }));
        }, 300);
      }
    }
  }

  // `patch`: fields, or a function of the current fields returning them.
  const set = (patch) => {
    setExtra({});
    setF((old) => ({ ...old, ...(typeof patch === "function" ? patch(old) : patch) }));
  };
  const checks = { grid, scope, quickShown, photoCount: photos.value.length, busy: busy.value };
  // Once submitted, the form re-checks as the user types: a fixed field loses its mark at once.
  const problems = tried ? { ...validate(f, checks), ...extra } : {};

  /** A point from the map or the phone's position: coordinates, and the address from its grid. */
  const pick = (lon, lat) => {
    set((old) => {
      const patch = { lon: String(lon), lat: String(lat) };
      const g = store.status === "ready" ? gridAt(store.level2, lon, lat) : null;
      if (g && (old.addressAuto || !old.address.trim())) {
        Object.assign(patch, { address: gridAddress(g, store.byId.get(g.parent_id)), addressAuto: true });
      }
      return patch;
    });
  };

  const locate = () => {
    if (!navigator.geolocation) {
      setLocating("此浏览器不支持定位，请在地图上点选位置");
      return;
    }
    setLocating("正在定位…");
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        setLocating("");
        pick(Number(pos.coords.longitude.toFixed(6)), Number(pos.coords.latitude.toFixed(6)));
      },
      (err) => {
        setLocating(
          err && err.code === 1
            ? "未获得定位权限，请在浏览器设置中允许定位，或在地图上点选位置"
            : "定位失败，请在地图上点选位置",
        );
      },
      { enableHighAccuracy: true, timeout: 10000 },
    );
  };

  const submit = async (ev) => {
    ev.preventDefault();
    setFailure("");
    setTried(true);
    const later = {};
    if (point && grid.state === "checking") later.location = "正在查询所属网格，请稍候再提交";
    if (point && grid.state === "error") later.location = "所属网格查询失败，请稍后重试";
    setExtra(later);
    const found = { ...validate(f, checks), ...later };
    if (Object.keys(found).length) {
      const first = FIELD_ORDER.find((k) => found[k]);
      const node = ev.currentTarget.querySelector(`[data-field-box="${first}"]`);
      if (node) node.scrollIntoView({ block: "nearest" });
      return;
    }
    const body = {
      category_id: f.categoryId,
      source: f.source,
      description: f.description.trim(),
      address: f.address.trim(),
    };
    if (point) Object.assign(body, point);
    if (CONTACT_SOURCES.has(f.source)) {
      if (f.contactName.trim()) body.contact_name = f.contactName.trim();
      if (f.contactPhone.trim()) body.contact_phone = f.contactPhone.trim();
    }
    const quick = quickShown && f.quick;
    if (quick) body.quick = true;
    setSending(true);
    try {
      const files = photos.value.map((p) => p.file);
      if (files.length) {
        try {
          body.attachment_ids = await uploadFiles(files, "photo");
        } catch (e) {
          setFailure(`照片上传失败：${e.message || "请稍后重试"}`);
          return;
        }
      }
      const created = await api("/api/cases", { method: "POST", body });
      close();
      toast(`案件 ${created.case_no} 已上报`);
      await onCreated(created);
    } catch (e) {
      setFailure(`上报失败：${e.message || "请稍后重试"}`);
    } finally {
      setSending(false);
    }
  };

  const shown = FIELD_ORDER.filter((k) => problems[k]);
  const box = (name, extra = "") => `field ${extra}${problems[name] ? " has-error" : ""}`;
  const inv = (name) => (problems[name] ? "true" : "false");
  const showContact = CONTACT_SOURCES.has(f.source);
  let gridText = "";
  if (grid.state === "inside") {
    const parent = store.status === "ready" ? store.byId.get(grid.grid.parent_id) : null;
    gridText = `所属网格：${gridAddress(grid.grid, parent)}`;
    if (scope && !scope.has(grid.grid.id)) gridText += "（不在您负责的网格内）";
  } else if (grid.state === "outside") gridText = "该位置不在本市网格范围内";
  else if (grid.state === "checking") gridText = "正在查询所属网格…";
  else if (grid.state === "error") gridText = "所属网格查询失败";
  else if (point === undefined) gridText = "经纬度格式不正确";

  return html`
    <form class="report-form" data-testid="report-form" novalidate onSubmit=${submit}>
      <header class="dialog-head">
        <h2 id="report-title">新建案件</h2>
        <button type="button" class="btn btn-ghost btn-small" aria-label="关闭" onClick=${close}>关闭</button>
      </header>
      ${shown.length > 0 &&
      html`<div class="banner banner-error report-problems" data-testid="report-error" role="alert">
        <p>还有 ${shown.length} 项需要填写或修改：</p>
        <ul>${shown.map((k) => html`<li key=${k} data-testid="report-problem" data-field=${k}>${problems[k]}</li>`)}</ul>
      </div>`}
      ${failure && html`<div class="banner banner-error" data-testid="report-failure" role="alert">${failure}</div>`}
      <div class="form-grid report-grid-form">
        <div class=${box("category", "span-2")} data-field-box="category">
          <span>案件类别 <em class="req">*</em></span>
          <${CategoryPicker} categories=${ctx.categories || []} value=${f.categoryId}
                             invalid=${!!problems.category} onChange=${(id) => set({ categoryId: id })} />
          <${FieldError} problems=${problems} name="category" />
        </div>
        <label class=${box("source")} data-field-box="source">
          <span>案件来源 <em class="req">*</em></span>
          <select data-testid="report-source" value=${f.source} aria-invalid=${inv("source")}
                  onChange=${(ev) => set({ source: ev.currentTarget.value })}>
            ${allowed.map((s) => html`<option key=${s} value=${s}>${sourceLabel(s)}</option>`)}
          </select>
          <${FieldError} problems=${problems} name="source" />
        </label>
        ${quickShown &&
        html`<label class="check-line field">
          <input type="checkbox" data-testid="report-quick" checked=${f.quick}
                 onChange=${(ev) => set({ quick: ev.currentTarget.checked })} />
          <span>快速处置（自行处置，需上传处置前照片）</span>
        </label>`}
        <label class=${box("description", "span-2")} data-field-box="description">
          <span>问题描述 <em class="req">*</em></span>
          <textarea data-testid="report-description" rows="3" value=${f.description}
                    aria-invalid=${inv("description")}
                    onInput=${(ev) => set({ description: ev.currentTarget.value })}></textarea>
          <${Counter} value=${f.description} max=${DESCRIPTION_MAX} testid="report-description-count" />
          <${FieldError} problems=${problems} name="description" />
        </label>
        <div class=${box("location", "span-2 report-location")} data-field-box="location">
          <span>问题位置 ${LOCATED_SOURCES.has(f.source) && html`<em class="req">*</em>`}
            <small class="muted">在地图上点击问题所在处</small></span>
          <div class="report-map">
            <${GridMap} store=${store} point=${point || null} scope=${scope}
                        chosenId=${grid.state === "inside" ? grid.grid.id : null} onPick=${pick} />
          </div>
          <div class="inline-row report-coords">
            <button type="button" class="btn btn-small" data-testid="report-locate" onClick=${locate}>使用我的位置</button>
            <label class="sub-field"><span>经度</span>
              <input inputmode="decimal" data-testid="report-lon" value=${f.lon} aria-invalid=${inv("location")}
                     onInput=${(ev) => set({ lon: ev.currentTarget.value })} /></label>
            <label class="sub-field"><span>纬度</span>
              <input inputmode="decimal" data-testid="report-lat" value=${f.lat} aria-invalid=${inv("location")}
                     onInput=${(ev) => set({ lat: ev.currentTarget.value })} /></label>
          </div>
          <small class=${`muted report-grid-info${grid.state === "outside" ? " bad" : ""}`}
                 data-testid="report-grid" data-state=${grid.state}>${locating || gridText}</small>
          <${FieldError} problems=${problems} name="location" />
        </div>
        <label class=${box("address", "span-2")} data-field-box="address">
          <span>地址 <small class="muted">选点后按网格自动填写，可修改</small></span>
          <input data-testid="report-address" value=${f.address} placeholder="街道、门牌号或标志物"
                 aria-invalid=${inv("address")}
                 onInput=${(ev) => set({ address: ev.currentTarget.value, addressAuto: false })} />
          <${Counter} value=${f.address} max=${ADDRESS_MAX} testid="report-address-count" />
          <${FieldError} problems=${problems} name="address" />
        </label>
        ${showContact &&
        html`<label class="field">
            <span>联系人</span>
            <input data-testid="report-contact-name" maxlength="50" value=${f.contactName}
                   onInput=${(ev) => set({ contactName: ev.currentTarget.value })} />
          </label>
          <label class=${box("contact_phone")} data-field-box="contact_phone">
            <span>联系电话</span>
            <input type="tel" data-testid="report-contact-phone" maxlength="30" value=${f.contactPhone}
                   aria-invalid=${inv("contact_phone")}
                   onInput=${(ev) => set({ contactPhone: ev.currentTarget.value })} />
            <${FieldError} problems=${problems} name="contact_phone" />
          </label>`}
        <div class=${box("photos", "span-2")} data-field-box="photos">
          <span>现场照片</span>
          <${PhotoPicker} id="report-photos" testid="report-photos" photos=${photos}
                          problems=${photoProblems} busy=${busy} limits=${limits}
                          hint=${`最多 ${limits.maxFiles} 张，过大的照片会自动压缩后再上传`} />
          <${FieldError} problems=${problems} name="photos" />
        </div>
      </div>
      <footer class="dialog-foot">
        <button type="button" class="btn" onClick=${close}>取消</button>
        <button type="submit" class="btn btn-primary" data-testid="report-submit" disabled=${sending}>
          ${sending ? "正在提交…" : "提交上报"}</button>
      </footer>
    </form>`;
}

/** The dialog (board.html's <dialog>): `open()` shows a fresh form; `onCreated(case)` after a report. */
export function createReport({ ctx, dialog, onCreated }) {
  let opened = 0;
  let built = false;
  const close = () => {
    if (dialog.open) dialog.close();
  };
  function open() {
    if (!built) {
      built = true;
      dialog.replaceChildren(); // the form is ours from here on
      loadLimits();
    }
    loadGrids();
    opened += 1;
    render(html`<${ReportForm} key=${opened} ctx=${ctx} close=${close} onCreated=${onCreated} />`, dialog);
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else dialog.setAttribute("open", "");
    // Not on a phone: the keyboard would cover the form.
    const search = dialog.querySelector('[data-testid="report-category-search"]');
    if (search && !window.matchMedia("(max-width: 760px)").matches) search.focus();
  }
  return { open };
}
