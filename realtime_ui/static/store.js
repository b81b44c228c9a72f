// Keyed stores fed by the live picture (live.js): one per live channel, a snapshot then changes.
// Components read them through signals, so a change re-renders the one row that shows it.
//
//   case channel  - the REST snapshot (the list query, page by page), then `case.updated` envelopes;
//                   the newest version per case id wins (a REST answer that raced an event does not
//                   undo it); a case that stops matching the list's filter or leaves the user's scope
//                   is dropped, one that starts matching is inserted where the list order puts it.
//   state channel - the websocket `snapshot` ({key: value}), then `state.changed` ({key, value};
//                   a null value removes the key).
//
//   const cases = createCaseStore({ matches: (c) => ..., mayShow: (c) => ... });
//   const live = connectStores([cases]);          // live.js: routes envelopes and resyncs
//   cases.reset(items, nextCursor);               // after GET /api/cases
//   html`${cases.ids.value.map((id) => html`<${Row} key=${id} item=${cases.item(id)} />`)}`
import { createVersionTracker } from "./live.js";
import { batch, computed, signal } from "./ui.js";

/** How many cases heard live (and not shown) are remembered for a list answer that raced them. */
const HEARD_KEPT = 500;

/** Newest first by (reported_at, id), the order of GET /api/cases. */
export function newestFirst(a, b) {
  const ta = Date.parse(a.reported_at);
  const tb = Date.parse(b.reported_at);
  if (ta !== tb) return tb - ta;
  return b.id - a.id;
}

/**
 * The store of a case list.
 * @param {{
 *   matches?: (c: object) => boolean,   // the list's filter (the server's rules, see board.js)
 *   mayShow?: (c: object) => boolean,   // the user's scope
 *   order?: (a: object, b: object) => number,
 *   onChange?: (kind: "inserted"|"updated"|"dropped", c: object) => void,
 * }} opts
 */
export function createCaseStore(opts = {}) {
  let matches = opts.matches || (() => true);
  const mayShow = opts.mayShow || (() => true);
  const order = opts.order || newestFirst;
  const listeners = new Set();
  if (opts.onChange) listeners.add(opts.onChange);

  const versions = createVersionTracker();
  /** id -> signal(case summary) for the shown cases. */
  const items = new Map();
  /** The shown ids in list order. */
  const ids = signal([]);
  /** More pages on the server (the cursor of the next one), or null. */
  const nextCursor = signal(null);
  /** False until the first snapshot. */
  const ready = signal(false);
  /** Cases heard live (newest version), for a snapshot that raced them. */
  const heard = new Map();
  let loading = false;
  let racedIds = new Set();

  function emit(kind, c) {
    for (const fn of listeners) {
      try {
        fn(kind, c);
      } catch (err) {
        console.error(err);
      }
    }
  }

  function remember(c) {
    heard.delete(c.id);
    heard.set(c.id, c);
    if (heard.size > HEARD_KEPT) heard.delete(heard.keys().next().value);
  }

  /** Where c goes in the shown list: an index, or -1 when it sorts past the loaded page. */
  function placeOf(c, list) {
    for (let i = 0; i < list.length; i += 1) {
      const other = items.get(list[i]).peek();
      if (order(c, other) < 0) return i;
    }
    return nextCursor.peek() ? -1 : list.length;
  }

  function insert(c) {
    const list = ids.peek();
    const at = placeOf(c, list);
    if (at < 0) return false;
    items.set(c.id, signal(c));
    ids.value = [...list.slice(0, at), c.id, ...list.slice(at)];
    return true;
  }

  function drop(id) {
    if (!items.has(id)) return false;
    items.delete(id);
    ids.value = ids.peek().filter((x) => x !== id);
    return true;
  }

  /** A case summary heard live (or from the detail pane): update, insert or drop its row. */
  function apply(c, { force = false } = {}) {
    if (!c || typeof c !== "object" || typeof c.id !== "number") return null;
    if (!force && !versions.accept(c.id, c.version)) return null; // not newer than what we know
    if (force) versions.see(c.id, c.version);
    remember(c);
    if (loading) racedIds.add(c.id);
    let kind = null;
    batch(() => {
      const shown = items.get(c.id);
      if (!mayShow(c) || !matches(c)) {
        if (drop(c.id)) kind = "dropped";
      } else if (shown) {
        shown.value = c;
        kind = "updated";
      } else if (ready.peek() && insert(c)) {
        kind = "inserted";
      }
    });
    if (kind) emit(kind, c);
    return kind;
  }

  return {
    ids,
    nextCursor,
    ready,
    /** The signal of a shown case (undefined if not shown). */
    item: (id) => items.get(id),
    get: (id) => items.get(id)?.peek(),
    has: (id) => items.has(id),
    size: computed(() => ids.value.length),
    versions,
    /** A list request is about to go out (events heard meanwhile are re-checked on reset). */
    loading() {
      loading = true;
      racedIds = new Set();
    },
    /** The REST snapshot: the first page (replaces the list) or the next page (appended). */
    reset(list, cursor = null, { append = false } = {}) {
      batch(() => {
        if (!append) items.clear();
        const out = append ? [...ids.peek()] : [];
        for (const item of list) {
          const live = heard.get(item.id);
          const c = live && live.version > item.version ? live : item; // whichever is newer
          versions.see(c.id, c.version);
          if (items.has(c.id)) continue; // inserted live meanwhile (paging)
          if (live && c === live && (!mayShow(c) || !matches(c))) continue; // left since
          items.set(c.id, signal(c));
          out.push(c.id);
        }
        ids.value = out;
        nextCursor.value = cursor || null;
        ready.value = true;
        if (!append) {
          for (const id of racedIds) {
            const c = heard.get(id);
            if (c && !items.has(id) && mayShow(c) && matches(c)) insert(c);
          }
        }
      });
      loading = false;
      racedIds = new Set();
    },
    /** The list's filter changed (a reload follows). */
    setMatcher(fn) {
      matches = fn;
    },
    apply,
    /** Drop a case from the list (it left the user's scope). */
    remove(id) {
      const c = items.get(id)?.peek();
      if (drop(id)) emit("dropped", c || { id });
    },
    /** live.js routing: case envelopes of any case channel. */
    handles: (env) => env.type === "case.updated",
    onEnvelope(env) {
      apply(env.data);
    },
    /** Set by the page: reload the snapshot over REST. */
    onResync: null,
    resync(channel, reason) {
      if (typeof this.onResync === "function") this.onResync(channel, reason);
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/**
 * The store of a state channel (queue, agents, cameras, speakers, alarms): key -> signal(value).
 * `keys` lists the present keys in insertion order.
 */
export function createStateStore(channel) {
  const values = new Map();
  const keys = signal([]);
  const ready = signal(false);
  function set(key, value) {
    const cur = values.get(key);
    if (value === null || value === undefined) {
      if (cur) {
        values.delete(key);
        keys.value = keys.peek().filter((k) => k !== key);
      }
      return;
    }
    if (cur) cur.value = value;
    else {
      values.set(key, signal(value));
      keys.value = [...keys.peek(), key];
    }
  }
  return {
    channel,
    keys,
    ready,
    item: (key) => values.get(key),
    get: (key) => values.get(key)?.peek(),
    handles: (env) => env.channel === channel,
    onEnvelope(env) {
      if (env.type === "snapshot") {
        const data = env.data && typeof env.data === "object" ? env.data : {};
        batch(() => {
          for (const k of [...values.keys()]) if (!(k in data)) set(k, null);
          for (const [k, v] of Object.entries(data)) set(k, v);
          ready.value = true;
        });
      } else if (env.type === "state.changed" && env.data) {
        set(String(env.data.key), env.data.value);
      }
    },
    onResync: null,
    resync(ch, reason) {
      if (typeof this.onResync === "function") this.onResync(ch, reason);
    },
  };
}
