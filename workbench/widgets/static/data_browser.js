// The workbench data browser (anywidget ES module, hand-written: no build step, no CDN).
//
// Rows arrive as Arrow IPC streams in the binary buffer of custom messages; decodeArrowIPC below
// reads the subset the kernel sends (see workbench/widgets/_data_requests.py): Int 8-64 (signed and
// unsigned), Float 32/64, Utf8/LargeUtf8, Bool, Date, Timestamp (any unit, with or without a zone),
// Null, each with its validity bitmap; no dictionaries, no compression.

// ---- Arrow IPC stream reader ------------------------------------------------------------------
const TYPE = { Null: 1, Int: 2, FloatingPoint: 3, Utf8: 5, Bool: 6, Date: 8, Timestamp: 10, LargeUtf8: 20 };
const HEADER_SCHEMA = 1;
const HEADER_RECORD_BATCH = 3;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const UNIT_PER_SECOND = [1n, 1000n, 1000000n, 1000000000n];
const UNIT_DIGITS = [0, 3, 6, 9];
const utf8 = new TextDecoder("utf-8");

function asView(buffer) {
  if (buffer instanceof DataView) return buffer;
  if (ArrayBuffer.isView(buffer)) return new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return new DataView(buffer);
}

// A flatbuffer table: field `slot` lives at vtable[4 + 2 * slot] (0 = absent, use the default).
class Table {
  constructor(dv, pos) {
    this.dv = dv;
    this.pos = pos;
    this.vt = pos - dv.getInt32(pos, true);
    this.vtLen = dv.getUint16(this.vt, true);
  }
  field(slot) {
    const o = 4 + 2 * slot;
    return o < this.vtLen ? this.dv.getUint16(this.vt + o, true) : 0;
  }
  u8(slot, dflt = 0) { const o = this.field(slot); return o ? this.dv.getUint8(this.pos + o) : dflt; }
  bool(slot, dflt = false) { const o = this.field(slot); return o ? this.dv.getUint8(this.pos + o) !== 0 : dflt; }
  i16(slot, dflt = 0) { const o = this.field(slot); return o ? this.dv.getInt16(this.pos + o, true) : dflt; }
  i32(slot, dflt = 0) { const o = this.field(slot); return o ? this.dv.getInt32(this.pos + o, true) : dflt; }
  i64(slot, dflt = 0) { const o = this.field(slot); return o ? Number(this.dv.getBigInt64(this.pos + o, true)) : dflt; }
  ref(slot) { // absolute position of the table, vector or string an offset field points at
    const o = this.field(slot);
    if (!o) return null;
    const p = this.pos + o;
    return p + this.dv.getUint32(p, true);
  }
  table(slot) { const p = this.ref(slot); return p === null ? null : new Table(this.dv, p); }
  string(slot) {
    const p = this.ref(slot);
    if (p === null) return null;
    const n = this.dv.getUint32(p, true);
    return utf8.decode(new Uint8Array(this.dv.buffer, this.dv.byteOffset + p + 4, n));
  }
  vector(slot) { // {start, length} of a vector's elements
    const p = this.ref(slot);
    return p === null ? { start: 0, length: 0 } : { start: p + 4, length: this.dv.getUint32(p, true) };
  }
  tables(slot) {
    const { start, length } = this.vector(slot);
    const out = [];
    for (let i = 0; i < length; i++) {
      const e = start + 4 * i;
      out.push(new Table(this.dv, e + this.dv.getUint32(e, true)));
    }
    return out;
  }
}

function readType(field) {
  const kind = field.u8(2);
  const t = field.table(3);
  switch (kind) {
    case TYPE.Null: case TYPE.Utf8: case TYPE.LargeUtf8: case TYPE.Bool:
      return { kind };
    case TYPE.Int: return { kind, bits: t.i32(0), signed: t.bool(1) };
    case TYPE.FloatingPoint: {
      const precision = t.i16(0);
      if (precision === 0) throw new Error("half floats are not supported");
      return { kind, bits: precision === 1 ? 32 : 64 };
    }
    case TYPE.Date: return { kind, unit: t ? t.i16(0, 1) : 1 };
    case TYPE.Timestamp: return { kind, unit: t.i16(0), tz: t.string(1) };
    default: throw new Error(`Arrow type ${kind} is not supported by the data browser`);
  }
}

function readSchema(header) {
  return header.tables(1).map((f) => {
    if (f.field(4)) throw new Error("dictionary-encoded columns are not supported");
    return { name: f.string(0) ?? "", nullable: f.bool(1), type: readType(f) };
  });
}

function pad(n, width) { return String(n).padStart(width, "0"); }

function formatTimestamp(value, unit, tz) { // exact for any unit: 2026-01-01T10:00:00.123456Z
  const per = UNIT_PER_SECOND[unit];
  let seconds = value / per;
  let frac = value % per;
  if (frac < 0n) { frac += per; seconds -= 1n; }
  const iso = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const fraction = frac === 0n ? "" : "." + pad(frac, UNIT_DIGITS[unit]);
  return iso + fraction + (tz ? "Z" : "");
}

function int64(dv, p, signed) {
  const v = signed ? dv.getBigInt64(p, true) : dv.getBigUint64(p, true);
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

function readColumn(dv, body, type, node, buffers) {
  const n = node.length;
  const take = () => buffers.shift();
  const validity = type.kind === TYPE.Null ? null : take();
  const valid = (i) => !validity || validity.length === 0 || node.nullCount === 0 ||
    ((dv.getUint8(body + validity.offset + (i >> 3)) >> (i & 7)) & 1) === 1;
  const out = new Array(n);
  if (type.kind === TYPE.Null) { out.fill(null); return out; }
  if (type.kind === TYPE.Utf8 || type.kind === TYPE.LargeUtf8) {
    const offsets = take();
    const data = take();
    const wide = type.kind === TYPE.LargeUtf8;
    const at = (i) => wide ? Number(dv.getBigInt64(body + offsets.offset + 8 * i, true))
      : dv.getInt32(body + offsets.offset + 4 * i, true);
    for (let i = 0; i < n; i++) {
      if (!valid(i)) { out[i] = null; continue; }
      const a = at(i), b = at(i + 1);
      out[i] = utf8.decode(new Uint8Array(dv.buffer, dv.byteOffset + body + data.offset + a, b - a));
    }
    return out;
  }
  const data = take();
  const base = body + data.offset;
  for (let i = 0; i < n; i++) {
    if (!valid(i)) { out[i] = null; continue; }
    switch (type.kind) {
      case TYPE.Bool: out[i] = ((dv.getUint8(base + (i >> 3)) >> (i & 7)) & 1) === 1; break;
      case TYPE.Int: {
        const w = type.bits / 8, p = base + w * i;
        if (w === 1) out[i] = type.signed ? dv.getInt8(p) : dv.getUint8(p);
        else if (w === 2) out[i] = type.signed ? dv.getInt16(p, true) : dv.getUint16(p, true);
        else if (w === 4) out[i] = type.signed ? dv.getInt32(p, true) : dv.getUint32(p, true);
        else out[i] = int64(dv, p, type.signed);
        break;
      }
      case TYPE.FloatingPoint:
        out[i] = type.bits === 32 ? dv.getFloat32(base + 4 * i, true) : dv.getFloat64(base + 8 * i, true);
        break;
      case TYPE.Date:
        out[i] = type.unit === 0
          ? new Date(dv.getInt32(base + 4 * i, true) * 86400000).toISOString().slice(0, 10)
          : formatTimestamp(dv.getBigInt64(base + 8 * i, true), 1, null);
        break;
      case TYPE.Timestamp: out[i] = formatTimestamp(dv.getBigInt64(base + 8 * i, true), type.unit, type.tz); break;
      default: throw new Error(`Arrow type ${type.kind} is not supported`);
    }
  }
  return out;
}

function readBatch(dv, header, body, fields) {
  if (header.field(3)) throw new Error("compressed Arrow batches are not supported");
  const numRows = header.i64(0);
  const nodesVec = header.vector(1), bufVec = header.vector(2);
  const nodes = [], buffers = [];
  for (let i = 0; i < nodesVec.length; i++) {
    const p = nodesVec.start + 16 * i;
    nodes.push({ length: Number(dv.getBigInt64(p, true)), nullCount: Number(dv.getBigInt64(p + 8, true)) });
  }
  for (let i = 0; i < bufVec.length; i++) {
    const p = bufVec.start + 16 * i;
    buffers.push({ offset: Number(dv.getBigInt64(p, true)), length: Number(dv.getBigInt64(p + 8, true)) });
  }
  const columns = fields.map((f, j) => readColumn(dv, body, f.type, nodes[j], buffers));
  return { numRows, columns };
}

// Decode an Arrow IPC stream: {fields: [{name, nullable, type}], numRows, columns: [[value, ...]]}.
// Ints beyond 2^53 stay BigInt; timestamps and dates come as ISO strings (UTC, "Z" when zoned).
export function decodeArrowIPC(buffer) {
  const dv = asView(buffer);
  let pos = 0, fields = null;
  const columns = [];
  let numRows = 0;
  while (pos + 4 <= dv.byteLength) {
    let metaLen = dv.getInt32(pos, true);
    pos += 4;
    if (metaLen === -1) { metaLen = dv.getInt32(pos, true); pos += 4; }
    if (metaLen === 0) break;
    const message = new Table(dv, pos + dv.getUint32(pos, true));
    const headerType = message.u8(1);
    const header = message.table(2);
    const bodyLength = message.i64(3);
    const body = pos + metaLen;
    if (headerType === HEADER_SCHEMA) {
      fields = readSchema(header);
      fields.forEach(() => columns.push([]));
    } else if (headerType === HEADER_RECORD_BATCH) {
      if (!fields) throw new Error("Arrow stream: a record batch before the schema");
      const batch = readBatch(dv, header, body, fields);
      batch.columns.forEach((c, j) => { for (const v of c) columns[j].push(v); });
      numRows += batch.numRows;
    } else {
      throw new Error(`Arrow stream: message type ${headerType} is not supported`);
    }
    pos = body + bodyLength;
  }
  if (!fields) throw new Error("Arrow stream without a schema");
  return { fields, numRows, columns };
}

// ---- the widget -------------------------------------------------------------------------------
const ROW_HEIGHT = 24;
const VIEW_ROWS = 16;
const MAX_SCROLL_PX = 8000000; // browsers cap element heights near 33M px: scale beyond this
const CACHE_ROWS = 5000;
const OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "contains", "is null", "not null"];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function formatCell(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12)));
  return String(v);
}

function parseValue(text, dtype) {
  const t = text.trim();
  if (dtype === "int" || dtype === "float") {
    const n = Number(t);
    if (t === "" || Number.isNaN(n)) throw new Error(`"${text}" is not a number`);
    return n;
  }
  if (dtype === "bool") {
    if (["true", "1", "yes"].includes(t.toLowerCase())) return true;
    if (["false", "0", "no"].includes(t.toLowerCase())) return false;
    throw new Error(`"${text}" is not true or false`);
  }
  return text;
}

function histogramSvg(hist) {
  const w = 160, hgt = 32, counts = hist.counts || [];
  const max = Math.max(1, ...counts);
  const bw = w / Math.max(1, counts.length);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", hgt); svg.setAttribute("class", "wb-hist");
  counts.forEach((c, i) => {
    const r = document.createElementNS(ns, "rect");
    const bh = Math.max(c > 0 ? 1 : 0, (c / max) * hgt);
    r.setAttribute("x", i * bw); r.setAttribute("y", hgt - bh);
    r.setAttribute("width", Math.max(1, bw - 1)); r.setAttribute("height", bh);
    const title = document.createElementNS(ns, "title");
    title.textContent = `[${hist.edges[i]}, ${hist.edges[i + 1]}): ${c}`;
    r.append(title);
    svg.append(r);
  });
  return svg;
}

function render({ model, el }) {
  const state = {
    sort: null, filters: [], gen: 0, seq: 0, inflight: null, total: model.get("total_rows"),
    cache: new Map(), pageError: "", first: 0, tab: "profile", lastPage: null,
  };
  const root = h("div", { class: "wb-data-browser" });
  el.append(root);
  // Typing in the widget's inputs must not reach JupyterLab's notebook shortcuts (Enter, a, b, d d...).
  root.addEventListener("keydown", (e) => { if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) e.stopPropagation(); });

  // Picker
  const dsSelect = h("select", { class: "wb-ds", title: "registered dataset" });
  const verSelect = h("select", { class: "wb-ver", title: "version" });
  const pathInput = h("input", { class: "wb-path", type: "text", placeholder: "or a file/folder under the project" });
  const send = (content, buffers) => model.send(content, undefined, buffers);
  const openDataset = () => {
    if (!dsSelect.value) return;
    send({ type: "open", dataset: dsSelect.value, version: verSelect.value || null });
  };
  const openPath = () => send({ type: "open", path: pathInput.value });
  const picker = h("div", { class: "wb-picker" }, dsSelect, verSelect,
    h("button", { class: "wb-open", onclick: openDataset }, "Open"), pathInput,
    h("button", { class: "wb-open-path", onclick: openPath }, "Open path"),
    h("button", { class: "wb-refresh", title: "re-read the catalog", onclick: () => send({ type: "refresh" }) }, "↻"));
  pathInput.addEventListener("keydown", (e) => { if (e.key === "Enter") openPath(); });
  dsSelect.addEventListener("change", () => fillVersions());

  const title = h("div", { class: "wb-title" });
  const statusLine = h("div", { class: "wb-status" });
  const errorLine = h("div", { class: "wb-error", role: "alert" });

  // Filters
  const colSelect = h("select", { class: "wb-filter-col" });
  const opSelect = h("select", { class: "wb-filter-op" }, OPS.map((o) => h("option", { value: o }, o)));
  const valInput = h("input", { class: "wb-filter-value", type: "text", placeholder: "value (a, b, c for in)" });
  const chips = h("span", { class: "wb-chips" });
  const addFilter = () => {
    const column = colSelect.value;
    const dtype = (model.get("columns").find((c) => c.name === column) || {}).dtype;
    let op = opSelect.value, value;
    try {
      if (op === "is null" || op === "not null") { value = null; op = op === "is null" ? "==" : "!="; }
      else if (op === "in") value = valInput.value.split(",").map((s) => parseValue(s, dtype));
      else if (op === "contains") value = valInput.value;
      else value = parseValue(valInput.value, dtype);
    } catch (err) { showPageError(err.message); return; }
    state.filters = [...state.filters, { column, op, value }];
    valInput.value = "";
    query();
  };
  valInput.addEventListener("keydown", (e) => { if (e.key === "Enter") addFilter(); });
  const filterBar = h("div", { class: "wb-filters" }, "Filter ", colSelect, opSelect, valInput,
    h("button", { class: "wb-add-filter", onclick: addFilter }, "Add"), chips);

  // Grid
  const headRow = h("tr");
  const body = h("tbody");
  const table = h("table", { class: "wb-grid" }, h("thead", {}, headRow), body);
  const rowsBox = h("div", { class: "wb-rows" }, table);
  const spacer = h("div", { class: "wb-spacer" });
  const scroller = h("div", { class: "wb-scroll", tabindex: "0" }, rowsBox, spacer);
  scroller.style.height = `${(VIEW_ROWS + 1) * ROW_HEIGHT + 2}px`;
  rowsBox.style.height = `${(VIEW_ROWS + 1) * ROW_HEIGHT}px`;
  const rowInput = h("input", { class: "wb-row-input", type: "number", min: "1", title: "go to row" });
  const rangeText = h("span", { class: "wb-range" });
  const timing = h("span", { class: "wb-timing" });
  const pager = h("div", { class: "wb-pager" },
    h("button", { class: "wb-first", onclick: () => goTo(0) }, "«"),
    h("button", { class: "wb-prev", onclick: () => goTo(state.first - VIEW_ROWS) }, "‹"),
    h("button", { class: "wb-next", onclick: () => goTo(state.first + VIEW_ROWS) }, "›"),
    h("button", { class: "wb-last", onclick: () => goTo(state.total) }, "»"),
    " row ", rowInput, rangeText, timing);
  rowInput.addEventListener("change", () => goTo(Number(rowInput.value) - 1));
  rowInput.addEventListener("keydown", (e) => { if (e.key === "Enter") goTo(Number(rowInput.value) - 1); });

  // Side panel
  const tabs = h("div", { class: "wb-tabs" });
  const panel = h("div", { class: "wb-panel" });
  const side = h("div", { class: "wb-side" }, tabs, panel);
  const main = h("div", { class: "wb-main" }, filterBar, scroller, pager);
  root.append(picker, title, statusLine, errorLine, h("div", { class: "wb-body" }, main, side));

  function fillVersions() {
    const entry = model.get("datasets").find((d) => d.name === dsSelect.value);
    const current = model.get("source");
    verSelect.replaceChildren(...(entry ? [...entry.versions].reverse() : []).map((v) =>
      h("option", { value: v, selected: current.name === entry.name && current.version === v }, v)));
  }
  function fillDatasets() {
    const current = model.get("source");
    dsSelect.replaceChildren(h("option", { value: "" }, "— dataset —"),
      ...model.get("datasets").map((d) => h("option", { value: d.name, selected: d.name === current.name }, d.name)));
    fillVersions();
  }
  function showErrors() {
    const message = model.get("error") || state.pageError;
    errorLine.replaceChildren(...(message ? [message, h("button", {
      class: "wb-dismiss", onclick: () => { state.pageError = ""; if (model.get("error")) { model.set("error", ""); model.save_changes(); } showErrors(); },
    }, "×")] : []));
    errorLine.style.display = message ? "" : "none";
  }
  function showPageError(message) { state.pageError = message; showErrors(); }

  function showHeader() {
    const cols = model.get("columns");
    headRow.replaceChildren(h("th", { class: "wb-rownum" }, "#"), ...cols.map((c) => {
      const mark = state.sort && state.sort.column === c.name ? (state.sort.desc ? " ▼" : " ▲") : "";
      return h("th", { "data-column": c.name, title: `${c.type} — click to sort`, onclick: () => cycleSort(c.name) },
        c.name + mark, h("div", { class: "wb-type" }, c.dtype));
    }));
    colSelect.replaceChildren(...cols.map((c) => h("option", { value: c.name }, c.name)));
    chips.replaceChildren(...state.filters.map((f, i) => h("span", { class: "wb-chip" },
      `${f.column} ${f.value === null ? (f.op === "==" ? "is null" : "not null") : `${f.op} ${JSON.stringify(f.value)}`}`,
      h("button", { class: "wb-chip-x", onclick: () => { state.filters = state.filters.filter((_, j) => j !== i); query(); } }, "×"))));
  }
  function cycleSort(column) {
    if (!state.sort || state.sort.column !== column) state.sort = { column, desc: false };
    else if (!state.sort.desc) state.sort = { column, desc: true };
    else state.sort = null;
    query();
  }

  // Scrolling: the spacer gives the scrollbar the dataset's height (scaled past MAX_SCROLL_PX).
  function geometry() {
    const total = Math.max(0, state.total);
    const full = total * ROW_HEIGHT;
    const view = VIEW_ROWS * ROW_HEIGHT;
    const height = Math.min(full, MAX_SCROLL_PX);
    return { total, scaled: full > MAX_SCROLL_PX, height, view, maxFirst: Math.max(0, total - VIEW_ROWS) };
  }
  function sizeSpacer() {
    const g = geometry();
    spacer.style.height = `${Math.max(0, g.height - g.view)}px`;
  }
  function firstFromScroll() {
    const g = geometry();
    if (!g.scaled) return Math.min(g.maxFirst, Math.floor(scroller.scrollTop / ROW_HEIGHT));
    const range = Math.max(1, g.height - g.view);
    return Math.min(g.maxFirst, Math.round((scroller.scrollTop / range) * g.maxFirst));
  }
  function goTo(row) {
    const g = geometry();
    const first = Math.max(0, Math.min(g.maxFirst, Math.floor(row)));
    state.first = first;
    scroller.scrollTop = g.scaled ? (first / Math.max(1, g.maxFirst)) * (g.height - g.view) : first * ROW_HEIGHT;
    // Past MAX_SCROLL_PX one pixel is several rows: the scroll event this causes must keep the row asked for.
    state.jumped = { first, top: scroller.scrollTop };
    draw();
  }
  scroller.addEventListener("scroll", () => {
    const jumped = state.jumped;
    state.jumped = null;
    state.first = jumped && Math.abs(scroller.scrollTop - jumped.top) < 1 ? jumped.first : firstFromScroll();
    draw();
  });

  function draw() {
    const cols = model.get("columns");
    const g = geometry();
    const last = Math.min(g.total, state.first + VIEW_ROWS);
    const rows = [];
    let missing = -1;
    for (let r = state.first; r < last; r++) {
      const row = state.cache.get(r);
      if (!row && missing < 0) missing = r;
      rows.push(h("tr", { "data-row": r, class: row ? "" : "wb-loading" }, h("td", { class: "wb-rownum" }, r + 1),
        ...cols.map((_, j) => {
          const v = row ? row[j] : undefined;
          return h("td", { class: row && v === null ? "wb-null" : "" }, row ? formatCell(v) : "…");
        })));
    }
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: cols.length + 1, class: "wb-empty" },
      model.get("source").key ? (state.inflight ? "loading…" : "no rows") : "no dataset open")));
    body.replaceChildren(...rows);
    rangeText.textContent = g.total ? ` ${(state.first + 1).toLocaleString()}–${last.toLocaleString()} of ${g.total.toLocaleString()}` : "";
    rowInput.value = String(state.first + 1);
    if (missing >= 0) need(missing);
  }

  function need(row) {
    if (state.inflight) { state.wanted = row; return; }
    state.wanted = null;
    const id = ++state.seq;
    state.inflight = { id, gen: state.gen, sent: performance.now() };
    statusLine.textContent = "loading rows…";
    send({ type: "page", id, offset: row, limit: model.get("page_size"),
      sort: state.sort ? [state.sort] : [], filters: state.filters });
  }

  function query() { // the sort or the filters changed: new row order, nothing cached is valid
    state.gen += 1;
    state.cache.clear();
    state.pageError = "";
    state.inflight = null;
    state.wanted = null;
    showHeader();
    showErrors();
    state.total = state.filters.length ? state.total : model.get("total_rows");
    sizeSpacer();
    state.first = 0;
    scroller.scrollTop = 0;
    need(0);
    draw();
  }

  model.on("msg:custom", (msg, buffers) => {
    const mine = state.inflight && msg.id === state.inflight.id;
    if (!mine) return; // an answer to a request made before the query changed
    const { sent, gen } = state.inflight;
    state.inflight = null;
    statusLine.textContent = model.get("status");
    if (msg.type === "error") {
      showPageError(msg.message);
    } else if (msg.type === "page" && gen === state.gen) {
      try {
        const decoded = decodeArrowIPC(buffers[0]);
        for (let i = 0; i < decoded.numRows; i++) state.cache.set(msg.offset + i, decoded.columns.map((c) => c[i]));
        while (state.cache.size > CACHE_ROWS) state.cache.delete(state.cache.keys().next().value);
        if (msg.total_rows !== state.total) { state.total = msg.total_rows; sizeSpacer(); }
        state.lastPage = { ms: performance.now() - sent, kernel_s: msg.seconds, bytes: msg.bytes, rows: decoded.numRows };
        timing.textContent = ` · ${decoded.numRows} rows, ${(msg.bytes / 1024).toFixed(1)} KB, ${Math.round(state.lastPage.ms)} ms`;
        root.dataset.pages = String(Number(root.dataset.pages || 0) + 1);
        root.dataset.lastPageMs = String(state.lastPage.ms.toFixed(1));
        if (state.pageError) { state.pageError = ""; showErrors(); }
      } catch (err) {
        showPageError(`could not read the page: ${err.message}`);
      }
    }
    if (state.wanted !== null && state.wanted !== undefined) { const w = state.wanted; state.wanted = null; if (!state.cache.has(w)) need(w); }
    draw();
  });

  // Side panels
  function showTabs() {
    tabs.replaceChildren(...[["profile", "Profile"], ["validation", "Validation"], ["history", "History"]].map(([k, label]) =>
      h("button", { class: `wb-tab wb-tab-${k}${state.tab === k ? " wb-active" : ""}`, onclick: () => { state.tab = k; showTabs(); showPanel(); } }, label)));
  }
  function showPanel() {
    const open = Boolean(model.get("source").key);
    if (state.tab === "profile") {
      const profile = model.get("profile");
      if (!profile.columns) {
        panel.replaceChildren(open ? h("button", { class: "wb-run-profile", onclick: () => send({ type: "profile" }) }, "Profile columns") : "");
        return;
      }
      panel.replaceChildren(...profile.columns.map((c) => h("div", { class: "wb-profile-col", "data-column": c.name },
        h("div", { class: "wb-profile-name" }, h("b", {}, c.name), ` ${c.dtype} (${c.duckdb_type})`),
        h("div", {}, `nulls ${c.nulls.toLocaleString()} (${(100 * c.null_fraction).toFixed(2)} %) · distinct ≈ ${c.distinct_approx.toLocaleString()}`),
        c.min !== null && c.min !== undefined ? h("div", {}, `min ${formatCell(c.min)} · max ${formatCell(c.max)}${c.mean !== null && c.mean !== undefined ? ` · mean ${formatCell(c.mean)}` : ""}`) : null,
        c.histogram ? histogramSvg(c.histogram) : null,
        !c.histogram && c.top_values && c.top_values.length ? h("div", { class: "wb-top" },
          c.top_values.slice(0, 5).map(([v, n]) => `${formatCell(v)}: ${n.toLocaleString()}`).join(" · ")) : null)));
    } else if (state.tab === "validation") {
      const report = model.get("validation");
      if (!report.schema) {
        panel.replaceChildren(open ? h("button", { class: "wb-run-validate", onclick: () => send({ type: "validate" }) }, "Validate") : "");
        return;
      }
      const specs = Object.fromEntries(report.schema.columns.map((c) => [c.name, c]));
      const grid = (issue) => {
        const spec = specs[issue.column] || {};
        if (issue.rule === "nulls") return [{ column: issue.column, op: "==", value: null }];
        if (issue.rule === "below_min") return [{ column: issue.column, op: "<", value: spec.min }];
        if (issue.rule === "above_max") return [{ column: issue.column, op: ">", value: spec.max }];
        return null;
      };
      panel.replaceChildren(
        h("div", { class: report.ok ? "wb-ok" : "wb-bad" }, report.ok ? "✓ " : "✗ ", report.summary.split("\n")[0]),
        report.declared ? null : h("div", { class: "wb-note" }, "no declared schema: only the column types are checked"),
        ...report.issues.map((issue) => h("div", { class: "wb-issue" },
          h("div", {}, issue.message),
          issue.examples.length ? h("table", { class: "wb-examples" },
            h("tr", {}, h("th", {}, "file"), h("th", {}, "row"), h("th", {}, "value")),
            issue.examples.map((e) => h("tr", {}, h("td", {}, formatCell(e.file)), h("td", {}, formatCell(e.row)), h("td", {}, formatCell(e.value))))) : null,
          grid(issue) ? h("button", { class: "wb-show-failing", onclick: () => { state.filters = grid(issue); query(); } }, "show failing rows") : null)),
        h("button", { class: "wb-run-validate", onclick: () => send({ type: "validate" }) }, "Validate again"));
    } else {
      const history = model.get("history");
      panel.replaceChildren(history.length ? h("table", { class: "wb-history" },
        h("tr", {}, h("th", {}, "version"), h("th", {}, "created"), h("th", {}, "rows"), h("th", {}, "valid"), h("th", {})),
        history.map((v) => h("tr", { class: v.current ? "wb-current" : "" }, h("td", {}, v.version), h("td", {}, v.created_at.slice(0, 19)),
          h("td", {}, v.n_rows.toLocaleString()), h("td", {}, v.valid === null ? "–" : v.valid ? "✓" : "✗"),
          h("td", {}, v.current ? "open" : h("button", { class: "wb-open-version", onclick: () => send({ type: "open", dataset: v.name, version: v.version }) }, "open")))))
        : h("div", { class: "wb-note" }, "not a registered dataset: no version history"));
    }
  }

  function onSource() {
    const src = model.get("source");
    title.textContent = src.label ? `${src.label} · ${model.get("total_rows").toLocaleString()} rows · ${model.get("columns").length} columns` : "no dataset open";
    state.sort = null;
    state.filters = [];
    state.total = model.get("total_rows");
    fillDatasets();
    showTabs();
    showPanel();
    if (src.key) query(); else { showHeader(); draw(); }
  }
  const onStatus = () => { statusLine.textContent = model.get("status") || (state.inflight ? "loading rows…" : ""); };
  model.on("change:source", onSource);
  model.on("change:datasets", fillDatasets);
  model.on("change:error", showErrors);
  model.on("change:status", onStatus);
  model.on("change:profile", showPanel);
  model.on("change:validation", showPanel);
  model.on("change:history", showPanel);
  onSource();
  showErrors();
  return () => { root.remove(); };
}

export default { render };
