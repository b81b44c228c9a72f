// The "新建案件" dialog: category, description, address, coordinates, source, contact, photos.
import { api, uploadFiles } from "./api.js";
import { debounce, el } from "./dom.js";
import {
  DEFAULT_SOURCE_BY_ROLE,
  LOCATED_SOURCES,
  SOURCES,
  SOURCES_BY_ROLE,
  sourceLabel,
} from "./labels.js";
import { toast } from "./notify.js";
import { describeFiles, fillCategorySelect } from "./widgets.js";

const CONTACT_SOURCES = new Set(["hotline", "public"]);

export function createReport({ ctx, dialog, onCreated }) {
  const form = dialog.querySelector("form");
  const err = dialog.querySelector('[data-testid="report-error"]');
  const submit = form.querySelector('[data-testid="report-submit"]');
  const gridInfo = dialog.querySelector('[data-testid="report-grid"]');
  const quickField = dialog.querySelector("#report-quick-field");
  let built = false;

  function build() {
    if (built) return;
    built = true;
    fillCategorySelect(form.elements.category_id, ctx.categories);
    const allowed = SOURCES_BY_ROLE[ctx.user.role] || SOURCES;
    for (const s of allowed) form.elements.source.append(el("option", { value: s }, sourceLabel(s)));
    quickField.hidden = !(ctx.user.role === "supervisor" || ctx.user.role === "admin");
    form.elements.source.addEventListener("change", syncContact);
    for (const b of dialog.querySelectorAll("[data-close]")) {
      b.addEventListener("click", () => dialog.close());
    }
    const lookup = debounce(lookupGrid, 500);
    form.elements.lon.addEventListener("input", lookup);
    form.elements.lat.addEventListener("input", lookup);
    dialog.querySelector("#report-locate").addEventListener("click", locate);
    form.addEventListener("submit", onSubmit);
    form.elements.photos.addEventListener("change", syncPhotos);
  }

  function syncPhotos() {
    dialog.querySelector(".file-status").textContent = describeFiles(form.elements.photos);
  }

  function syncContact() {
    const source = form.elements.source.value;
    const show = CONTACT_SOURCES.has(source);
    for (const f of dialog.querySelectorAll(".contact-field")) f.hidden = !show;
    for (const mark of dialog.querySelectorAll(".coord-req")) mark.hidden = !LOCATED_SOURCES.has(source);
  }

  function fail(message) {
    err.textContent = message;
    err.hidden = false;
  }

  function open() {
    build();
    form.reset();
    err.hidden = true;
    gridInfo.textContent = "";
    syncPhotos();
    const wanted = DEFAULT_SOURCE_BY_ROLE[ctx.user.role];
    const options = [...form.elements.source.options].map((o) => o.value);
    form.elements.source.value = options.includes(wanted) ? wanted : options[0] || "";
    syncContact();
    submit.disabled = false;
    submit.textContent = "提交上报";
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    form.elements.category_id.focus();
  }

  function coords() {
    const lonRaw = form.elements.lon.value.trim();
    const latRaw = form.elements.lat.value.trim();
    if (!lonRaw && !latRaw) return null;
    const lon = Number(lonRaw);
    const lat = Number(latRaw);
    if (!lonRaw || !latRaw || !Number.isFinite(lon) || !Number.isFinite(lat)) return undefined;
    if (lon < -180 || lon > 180 || lat < -90 || lat > 90) return undefined;
    return { lon, lat };
  }

  async function lookupGrid() {
    const p = coords();
    if (!p) {
      gridInfo.textContent = p === undefined ? "坐标格式不正确" : "";
      return;
    }
    gridInfo.textContent = "正在查询所属网格…";
    try {
      const g = await api("/api/grids/lookup", { query: p });
      gridInfo.textContent = `所属网格：${g.name || ""}（${g.code}）`;
    } catch (e) {
      gridInfo.textContent = e.status === 404 ? "该位置不在任何网格内" : `网格查询失败：${e.message}`;
    }
  }

  function locate() {
    if (!navigator.geolocation) {
      gridInfo.textContent = "此浏览器不支持定位";
      return;
    }
    gridInfo.textContent = "正在定位…";
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        form.elements.lon.value = pos.coords.longitude.toFixed(6);
        form.elements.lat.value = pos.coords.latitude.toFixed(6);
        lookupGrid();
      },
      () => {
        gridInfo.textContent = "定位失败，请手动填写坐标";
      },
      { enableHighAccuracy: true, timeout: 10000 },
    );
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    err.hidden = true;
    const f = form.elements;
    if (!f.category_id.value) return fail("请选择案件类别");
    if (!f.source.value) return fail("请选择案件来源");
    const description = f.description.value.trim();
    if (!description) return fail("请填写问题描述");
    const p = coords();
    if (p === undefined) return fail("请填写有效的经纬度（经度 -180～180，纬度 -90～90）");
    if (!p && LOCATED_SOURCES.has(f.source.value)) return fail("该来源的案件须提供位置坐标");
    if (!p && !f.address.value.trim()) return fail("须提供位置坐标或地址");
    if (!/^[0-9+\- ]*$/.test(f.contact_phone.value.trim())) return fail("联系电话只能包含数字、“+”、“-”和空格");
    const quick = !quickField.hidden && f.quick.checked;
    const files = Array.from(f.photos.files || []);
    if (quick && files.length === 0) return fail("快速处置需要上传处置前照片");

    const body = {
      category_id: Number(f.category_id.value),
      source: f.source.value,
      description,
      address: f.address.value.trim(),
    };
    if (p) Object.assign(body, p);
    if (CONTACT_SOURCES.has(body.source)) {
      if (f.contact_name.value.trim()) body.contact_name = f.contact_name.value.trim();
      if (f.contact_phone.value.trim()) body.contact_phone = f.contact_phone.value.trim();
    }
    if (quick) body.quick = true;

    submit.disabled = true;
    submit.textContent = "正在提交…";
    try {
      if (files.length) body.attachment_ids = await uploadFiles(files, "photo");
      const created = await api("/api/cases", { method: "POST", body });
      dialog.close();
      toast(`案件 ${created.case_no} 已上报`);
      await onCreated(created);
    } catch (e) {
      fail(e.message || "上报失败");
    } finally {
      submit.disabled = false;
      submit.textContent = "提交上报";
    }
  }

  return { open };
}
