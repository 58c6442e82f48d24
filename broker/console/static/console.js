// The logstore console: plain JavaScript over the broker's /api/ endpoints (docs/console.md).
// Every value from the broker is untrusted: it reaches the page only as text nodes (textContent),
// never as HTML.
"use strict";

const CSRF = { "X-Logstore-Console": "1" };
const REFRESH_MS = 5000;
let timer = null;
let session = { may: {} };

// --- small helpers ------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(problem) {
  const box = document.getElementById("error");
  if (!problem) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = `${problem.error}: ${problem.message}`;
  box.hidden = false;
}

async function api(path, options) {
  const init = Object.assign({ headers: {} }, options || {});
  if (init.method && init.method !== "GET") {
    init.headers = Object.assign({ "Content-Type": "application/json" }, CSRF, init.headers);
    if (init.body !== undefined) init.body = JSON.stringify(init.body);
  }
  const answer = await fetch("/api" + path, init);
  const data = await answer.json().catch(() => ({ error: "BAD_ANSWER", message: `HTTP ${answer.status}` }));
  if (!answer.ok) { showError(data); throw data; }
  return data;
}

const enc = encodeURIComponent;
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
}
function card(label, value) { return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value)); }
function table(headers, rows, numeric) {
  const nums = new Set(numeric || []);
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", nums.has(i) ? { class: "num" } : {}, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", nums.has(i) ? { class: "num" } : {}, cell))))));
}

// --- charts: SVG drawn by hand ------------------------------------------------------------------------

const COLORS = ["#2f6fde", "#e07b00", "#2a9d5c", "#b3261e", "#7b4fd6", "#0097a7"];
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// series: [{name, points: [[t_seconds, value], ...]}]
function chart(title, series, format) {
  const W = 420, H = 150, L = 54, B = 20, T = 8;
  const box = el("div", { class: "chart" }, el("div", { class: "title" }, title));
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  const all = series.flatMap((s) => s.points);
  const now = Date.now() / 1000;
  // The last 15 minutes, or less while the broker has not been sampling that long.
  const first = Math.min(now - 60, ...all.map((p) => p[0]));
  const t0 = Math.max(now - 15 * 60, first);
  const max = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => L + ((t - t0) / (now - t0)) * (W - L - 4);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  for (const frac of [0, 0.5, 1]) {
    root.append(svg("line", { x1: L, x2: W - 4, y1: y(max * frac), y2: y(max * frac), stroke: "#dde1ea" }));
    const label = svg("text", { x: L - 4, y: y(max * frac) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7385" });
    label.textContent = format(max * frac);
    root.append(label);
  }
  const ago = (s) => (s >= 120 ? `-${Math.round(s / 60)}m` : `-${Math.round(s)}s`);
  for (const frac of [0, 1 / 3, 2 / 3, 1]) {
    const t = t0 + frac * (now - t0);
    const label = svg("text", { x: x(t), y: H - 6, "text-anchor": frac === 1 ? "end" : frac ? "middle" : "start", "font-size": 10, fill: "#6b7385" });
    label.textContent = frac === 1 ? "now" : ago(now - t);
    root.append(label);
  }
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[0] >= t0);
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.8 }));
    for (const p of pts) root.append(svg("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2, fill: COLORS[i % COLORS.length] }));
  });
  if (!all.length) {
    const wait = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "font-size": 12, fill: "#6b7385" });
    wait.textContent = "collecting samples…";
    root.append(wait);
  }
  box.append(root, el("div", { class: "legend" }, series.map((s, i) => el("span", { class: `c${i % COLORS.length}` }, "■ " + s.name))));
  return box;
}
const perSecond = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + "/s";
const bytesPerSecond = (v) => bytes(v) + "/s";

// --- views --------------------------------------------------------------------------------------------

async function overview(view) {
  const [o, r] = await Promise.all([api("/overview"), api("/rates")]);
  const series = (key) => r.rates.map((p) => [p.t, p[key]]);
  view.replaceChildren(
    el("h1", {}, "Overview"),
    el("div", { class: "cards" },
      card("Version", o.version), card("Uptime", duration(o.uptime_s)), card("Topics", o.topics),
      card("Partitions", o.partitions), card("Groups", o.groups), card("Data directory", bytes(o.data_dir_bytes)),
      card("Free disk", `${bytes(o.disk_free_bytes)} of ${bytes(o.disk_total_bytes)}`)),
    el("h2", {}, "Listeners"),
    table(["listener", "address"], o.listeners.map((l) => [l.name, l.address])),
    el("p", { class: "muted" }, "Data directory: ", o.data_dir),
    el("h2", {}, "Throughput, last 15 minutes"),
    el("div", { class: "charts", id: "rate-charts" },
      chart("Records per second", [{ name: "in", points: series("records_in") }, { name: "out", points: series("records_out") }], perSecond),
      chart("Bytes per second", [{ name: "in", points: series("bytes_in") }, { name: "out", points: series("bytes_out") }], bytesPerSecond)));
  return true;
}

async function topics(view) {
  const data = await api("/topics");
  const form = el("form", { class: "inline", id: "create-topic" },
    el("label", {}, "name", el("input", { name: "name", required: "", placeholder: "orders" })),
    el("label", {}, "partitions", el("input", { name: "partitions", type: "number", min: "1", value: "1" })),
    el("label", {}, "retention.ms", el("input", { name: "retention", placeholder: "(default)" })),
    el("button", { type: "submit" }, "Create topic"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = new FormData(form);
    const config = f.get("retention") ? { "retention.ms": f.get("retention") } : {};
    await api("/topics", { method: "POST", body: { name: f.get("name"), partitions: Number(f.get("partitions")), config } });
    showError(null);
    route();
  });
  view.replaceChildren(
    el("h1", {}, "Topics"),
    session.may.create_topic ? form : el("p", { class: "muted" }, "Actions are allowed only from 127.0.0.1 while authentication is off."),
    table(["topic", "partitions", "size", "records", "retention.ms", "retention.bytes", "cleanup.policy"],
      data.topics.map((t) => [el("a", { href: `#/topic/${enc(t.name)}` }, t.name), t.partitions, bytes(t.size_bytes), t.records,
        t["retention.ms"], t["retention.bytes"], t["cleanup.policy"]]), [1, 2, 3]));
  return true;
}

async function topic(view, name) {
  const t = await api(`/topics/${enc(name)}`);
  const series = t.partitions.map((p) => ({ name: `partition ${p.partition}`, points: t.write_rates.filter((r) => String(p.partition) in r.partitions).map((r) => [r.t, r.partitions[p.partition]]) }));
  const actions = [];
  if (session.may.alter_config) {
    const form = el("form", { class: "inline", id: "alter-config" },
      el("label", {}, "config", el("select", { name: "key" }, t.configs.map((c) => el("option", {}, c.name)))),
      el("label", {}, "value", el("input", { name: "value" })), el("button", { type: "submit" }, "Set config"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      await api(`/topics/${enc(name)}/config`, { method: "POST", body: { set: { [f.get("key")]: f.get("value") } } });
      showError(null); route();
    });
    actions.push(form);
  }
  if (session.may.produce) {
    const form = el("form", { class: "inline", id: "produce" },
      el("label", {}, "partition", el("input", { name: "partition", type: "number", min: "0", value: "0" })),
      el("label", {}, "key", el("input", { name: "key" })), el("label", {}, "value", el("input", { name: "value", size: "40" })),
      el("button", { type: "submit" }, "Produce test message"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      const done = await api(`/topics/${enc(name)}/records`, { method: "POST", body: { partition: Number(f.get("partition")), key: f.get("key") || null, value: f.get("value") } });
      showError(null);
      const old = document.getElementById("produced");
      if (old) old.remove();
      form.after(el("div", { class: "notice", id: "produced" }, `Produced at offset ${done.offset} of partition ${done.partition}`));
    });
    actions.push(form);
  }
  if (session.may.delete_topic) {
    actions.push(el("button", { class: "danger", id: "delete-topic", onclick: async () => {
      if (!window.confirm(`Delete topic ${name} and all its records?`)) return;
      await api(`/topics/${enc(name)}`, { method: "DELETE" });
      location.hash = "#/topics";
    } }, "Delete topic"));
  }
  view.replaceChildren(
    el("h1", {}, "Topic ", t.name),
    el("h2", {}, "Partitions"),
    table(["partition", "log start", "log end", "size", "segments", ""],
      t.partitions.map((p) => [p.partition, p.log_start_offset, p.log_end_offset, bytes(p.size_bytes), p.segments,
        el("a", { href: `#/browse/${enc(name)}/${p.partition}` }, "browse")]), [0, 1, 2, 3, 4]),
    el("div", { class: "charts" }, chart("Records written per second", series, perSecond)),
    el("h2", {}, "Configuration"),
    table(["name", "value", "source"], t.configs.map((c) => [c.name, c.value, c.source])),
    el("h2", {}, "Actions"), ...(actions.length ? actions : [el("p", { class: "muted" }, "No actions allowed from here.")]));
  return true;
}

function shown(rendered) {
  if (rendered.kind === "null") return el("span", { class: "muted" }, "null");
  return el("div", {}, el("span", { class: "kind" }, rendered.kind), el("pre", {}, rendered.text + (rendered.truncated ? " …" : "")));
}

const browser = { tail: false };
async function browse(view, topicName, partition, params) {
  const list = await api("/topics");
  const names = list.topics.map((t) => t.name);
  topicName = topicName || names[0] || "";
  partition = Number(partition || 0);
  const form = el("form", { class: "inline", id: "browse-form" },
    el("label", {}, "topic", el("select", { name: "topic" }, names.map((n) => el("option", n === topicName ? { selected: "" } : {}, n)))),
    el("label", {}, "partition", el("input", { name: "partition", type: "number", min: "0", value: String(partition) })),
    el("label", {}, "offset", el("input", { name: "offset", value: params.get("offset") || "" , placeholder: "start" })),
    el("label", {}, "or time (ISO)", el("input", { name: "time", placeholder: "2026-12-04T03:00" })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const f = new FormData(form);
    const q = new URLSearchParams();
    if (f.get("time")) q.set("timestamp_ms", String(Date.parse(f.get("time"))));
    else if (f.get("offset")) q.set("offset", f.get("offset"));
    location.hash = `#/browse/${enc(f.get("topic"))}/${Number(f.get("partition"))}?${q}`;
  });
  view.replaceChildren(el("h1", {}, "Messages"), form);
  if (!topicName) { view.append(el("p", {}, "No topics yet.")); return false; }
  const q = new URLSearchParams(params);
  q.set("limit", "50");
  if (browser.tail) { q.delete("offset"); q.delete("timestamp_ms"); q.set("tail", "1"); }
  const page = await api(`/topics/${enc(topicName)}/partitions/${partition}/records?${q}`);
  const go = (offset) => { browser.tail = false; location.hash = `#/browse/${enc(topicName)}/${partition}?offset=${offset}`; };
  const tail = el("label", {}, el("input", Object.assign({ type: "checkbox", id: "tail" }, browser.tail ? { checked: "" } : {})), " live tail");
  // Live tail: the last 50 records, fetched again every few seconds; paging ends it.
  tail.firstChild.addEventListener("change", (event) => { browser.tail = event.target.checked; route(); });
  view.append(
    el("p", {}, `Partition ${partition} holds offsets ${page.log_start_offset} to ${page.log_end_offset - 1}; showing ${page.records.length} from ${page.offset}. `,
      el("button", { class: "secondary", id: "prev", onclick: () => go(Math.max(page.log_start_offset, page.offset - 50)) }, "◀ back"), " ",
      el("button", { class: "secondary", id: "next", onclick: () => go(page.next_offset) }, "forward ▶"), " ", tail),
    table(["offset", "timestamp", "key", "headers", "value"], page.records.map((r) => [
      r.offset, new Date(r.timestamp_ms).toISOString(), shown(r.key),
      el("div", {}, r.headers.map((h) => el("div", {}, h.key, ": ", shown(h.value)))), shown(r.value)]), [0]));
  view.querySelector("table").id = "records";
  return browser.tail;
}

async function groups(view) {
  const data = await api("/groups");
  view.replaceChildren(el("h1", {}, "Groups"),
    data.groups.length ? table(["group", "type", "state", "members"], data.groups.map((g) => [
      el("a", { href: g.type === "share" ? `#/share/${enc(g.group_id)}` : `#/group/${enc(g.group_id)}` }, g.group_id), g.type, g.state, g.members]), [3])
      : el("p", {}, "No groups yet."));
  return true;
}

async function group(view, id) {
  const g = await api(`/groups/${enc(id)}`);
  const reset = el("form", { class: "inline", id: "reset-offsets" },
    el("label", {}, "reset to", el("select", { name: "mode" }, ["earliest", "latest", "offset", "shift"].map((m) => el("option", {}, m)))),
    el("label", {}, "offset / shift", el("input", { name: "number", type: "number", value: "0" })),
    el("label", {}, "topic (all if empty)", el("input", { name: "topic" })),
    el("button", { type: "submit", class: "secondary" }, "Preview (dry run)"));
  const preview = el("div", { id: "reset-preview" });
  reset.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = new FormData(reset);
    const n = Number(f.get("number"));
    const body = { mode: f.get("mode"), offset: n, shift: n, topic: f.get("topic") || null, dry_run: true };
    const plan = await api(`/groups/${enc(id)}/reset-offsets`, { method: "POST", body });
    showError(null);
    preview.replaceChildren(
      table(["topic", "partition", "now", "after reset"], plan.results.map((r) => [r.topic, r.partition, r.previous_offset, r.new_offset]), [1, 2, 3]),
      el("button", { class: "danger", id: "apply-reset", onclick: async () => {
        await api(`/groups/${enc(id)}/reset-offsets`, { method: "POST", body: Object.assign({}, body, { dry_run: false }) });
        route();
      } }, "Apply this reset"));
  });
  view.replaceChildren(
    el("h1", {}, "Consumer group ", g.group_id),
    el("div", { class: "cards" }, card("State", g.state), card("Members", g.members.length), card("Epoch", g.group_epoch),
      card("Total lag", g.partitions.reduce((sum, p) => sum + Math.max(0, p.lag), 0))),
    el("h2", {}, "Partitions"),
    table(["topic", "partition", "committed", "end offset", "lag", "member"], g.partitions.map((p) => [p.topic, p.partition, p.committed_offset, p.log_end_offset, p.lag, p.member_id]), [1, 2, 3, 4]),
    el("div", { class: "charts" }, chart("Lag (records), last 15 minutes", [{ name: "total lag", points: g.lag_history.map((p) => [p.t, p.lag]) }], (v) => v.toFixed(0))),
    el("h2", {}, "Members"),
    table(["member", "client", "host", "epoch", "assigned"], g.members.map((m) => [m.member_id, m.client_id, m.client_host, m.member_epoch, m.assigned.join(", ")])),
    el("h2", {}, "Reset offsets"), ...(session.may.reset_offsets ? [reset, preview] : [el("p", { class: "muted" }, "Not allowed from here.")]));
  view.querySelectorAll("table")[0].id = "lag";
  return true;
}

async function share(view, id) {
  const g = await api(`/share-groups/${enc(id)}`);
  view.replaceChildren(
    el("h1", {}, "Share group ", g.group_id),
    el("div", { class: "cards" }, card("State", g.state), card("Members", g.members.length), card("Dead-letter topic", g.dead_letter_topic || "none")),
    el("h2", {}, "Partitions"),
    table(["topic", "partition", "start", "end", "log end", "in flight", "acquired", "archived", "lag", "in flight by times delivered"],
      g.partitions.map((p) => [p.topic, p.partition, p.start_offset, p.end_offset, p.log_end_offset, p.in_flight, p.acquired, p.archived, p.lag,
        Object.entries(p.delivery_counts).map(([times, n]) => `${times}\u00d7: ${n}`).join(", ") || "none"]), [1, 2, 3, 4, 5, 6, 7, 8]),
    el("h2", {}, "Members"),
    table(["member", "client", "host", "topics", "acquired"], g.members.map((m) => [m.member_id, m.client_id, m.client_host, m.topics.join(", "), m.acquired_records])),
    el("h2", {}, "Configuration (delivery count limit, lock duration, DLQ)"),
    table(["name", "value", "set on the group"], g.configs.map((c) => [c.name, c.value, c.group_value ? "yes" : "no"])));
  return true;
}

// --- routing ------------------------------------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  const [path, query] = (location.hash.slice(1) || "/overview").split("?");
  const parts = path.split("/").slice(1).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const view = document.getElementById("view");
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.id === `nav-${{ topic: "topics", group: "groups", share: "groups" }[parts[0]] || parts[0]}`);
  const views = { overview, topics, topic, browse, groups, group, share };
  const show = views[parts[0]] || overview;
  let again = false;
  try {
    again = await show(view, parts[1], parts[2], params);
    document.body.dataset.ready = location.hash;
  } catch (problem) {
    if (!problem || !problem.error) showError({ error: "PAGE", message: String(problem) });
    document.body.dataset.ready = "error";
  }
  // Refresh live views, but not while someone is typing in a form.
  if (again) timer = setTimeout(() => { if (!view.contains(document.activeElement) || document.activeElement === document.body) route(); else timer = setTimeout(route, REFRESH_MS); }, REFRESH_MS);
}

window.addEventListener("hashchange", () => { showError(null); route(); });
window.addEventListener("DOMContentLoaded", async () => {
  session = await api("/session").catch(() => ({ may: {} }));
  document.getElementById("who").textContent = `${session.principal || ""} from ${session.address || "?"}`;
  route();
});
