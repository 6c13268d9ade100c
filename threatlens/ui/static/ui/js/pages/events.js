// Security events: a bounded live feed (newest first), a filter that is the socket's
// set_filter, pause/resume, and a detail panel with the analysis and recommendations.
import * as api from "../api.js";
import { el, fill, label, parseTime, pivotLink, severityBadge, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { mountSavedViews } from "../saved_views.js";
import { connectLive } from "../socket.js";

const MAX_ROWS = 200;
const MAX_PAUSED = 500;
const FILTER_KEY = "threatlens.events.filter";

function splitList(value) {
  return [...new Set(value.split(",").map((item) => item.trim()).filter(Boolean))];
}
const DEFAULT_FILTER = {
  min_priority: 1,
  max_priority: 10,
  categories: [],
  sources: [],
  // Checked here and by the REST history (the socket's set_filter has no such fields):
  range: "", // "", "15m", "1h", "24h" or "custom" (from/until, ISO)
  from: "",
  until: "",
  ip: "",
  user: "",
  search: "",
  technique: "", // an ATT&CK technique id: T1110 also finds its sub-techniques (T1110.001)
};
const RANGES_MS = { "15m": 15 * 60e3, "1h": 60 * 60e3, "24h": 24 * 60 * 60e3 };
const URL_KEYS = [
  "min_priority", "max_priority", "categories", "sources", "range", "from", "until", "ip", "user", "search", "technique",
];
const TECHNIQUE = /^T\d{4}(\.\d{3})?$/;

/** The ATT&CK techniques of an event (from the Sigma rule that raised it). */
function techniquesOf(event) {
  const techniques = event.analysis?.attack?.techniques;
  return Array.isArray(techniques) ? techniques.map(String) : [];
}

function hasTechnique(event, technique) {
  return techniquesOf(event).some((t) => t === technique || t.startsWith(`${technique}.`));
}

const feed = document.getElementById("feed");
const empty = document.getElementById("feed-empty");
const count = document.getElementById("feed-count");
const detail = document.getElementById("detail");
const pauseButton = document.getElementById("pause");
const pausedBanner = document.getElementById("paused-banner");
const form = document.getElementById("filter-form");
const filterState = document.getElementById("filter-state");

const rows = []; // {key, event, node}, newest first
const byKey = new Map();
const knownCategories = new Set();
const knownSources = new Set();
let paused = false;
let pausedEvents = [];
let selectedKey = null;

// --- filter -------------------------------------------------------------------------------

/** The filter in the URL (a saved view, a shared link), else this tab's last one. */
function loadFilter() {
  const query = new URLSearchParams(location.search);
  if (URL_KEYS.some((key) => query.has(key))) {
    const fromUrl = { ...DEFAULT_FILTER };
    for (const key of URL_KEYS) {
      if (!query.has(key)) continue;
      const value = query.get(key);
      if (key === "min_priority" || key === "max_priority") fromUrl[key] = Number(value) || DEFAULT_FILTER[key];
      else if (key === "categories" || key === "sources") fromUrl[key] = splitList(value);
      else fromUrl[key] = value;
    }
    return fromUrl;
  }
  try {
    return { ...DEFAULT_FILTER, ...JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}") };
  } catch {
    return { ...DEFAULT_FILTER };
  }
}

function filterToUrl() {
  const url = new URL(location.href);
  url.search = "";
  for (const key of URL_KEYS) {
    const value = filter[key];
    const text = Array.isArray(value) ? value.join(",") : String(value ?? "");
    if (text && String(DEFAULT_FILTER[key]) !== text) url.searchParams.set(key, text);
  }
  history.replaceState(null, "", url);
}

/** The time window of the filter: [since, until] as Dates (either may be null). */
function timeWindow() {
  if (filter.range in RANGES_MS) return [new Date(Date.now() - RANGES_MS[filter.range]), null];
  if (filter.range === "custom") return [parseTime(filter.from), parseTime(filter.until)];
  return [null, null];
}

// datetime-local holds local time without a zone.
function toLocalInput(iso) {
  const date = parseTime(iso);
  if (!date) return "";
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

let filter = loadFilter();


function showFilterInForm() {
  form.elements.min_priority.value = String(filter.min_priority);
  form.elements.max_priority.value = String(filter.max_priority);
  form.elements.categories.value = filter.categories.join(", ");
  form.elements.sources.value = filter.sources.join(", ");
  form.elements.range.value = filter.range || "";
  form.elements.from.value = toLocalInput(filter.from);
  form.elements.until.value = toLocalInput(filter.until);
  form.elements.ip.value = filter.ip || "";
  form.elements.user.value = filter.user || "";
  form.elements.search.value = filter.search || "";
  form.elements.technique.value = filter.technique || "";
  showCustomRange();
}

function showCustomRange() {
  for (const node of form.querySelectorAll("[data-custom-range]")) node.hidden = form.elements.range.value !== "custom";
}
form.elements.range.addEventListener("change", showCustomRange);

function describeFilter(f, where) {
  const parts = [`severity ${f.min_priority}–${f.max_priority}`];
  parts.push(f.categories?.length ? `categories: ${f.categories.join(", ")}` : "any category");
  parts.push(f.sources?.length ? `sources: ${f.sources.join(", ")}` : "any source");
  const local = [];
  if (filter.range) local.push(filter.range === "custom" ? "custom time range" : `last ${filter.range}`);
  if (filter.ip) local.push(`IP ${filter.ip}`);
  if (filter.user) local.push(`user ${filter.user}`);
  if (filter.search) local.push(`“${filter.search}”`);
  if (filter.technique) local.push(`ATT&CK ${filter.technique}`);
  return `${where}: ${parts.join("; ")}.` + (local.length ? ` Also: ${local.join("; ")}.` : "");
}

function matches(event) {
  const severity = Number(event.severity);
  const [since, until] = timeWindow();
  const at = parseTime(event.timestamp);
  const search = (filter.search || "").toLowerCase();
  return (
    (!Number.isFinite(severity) ||
      (severity >= filter.min_priority && severity <= filter.max_priority)) &&
    (!filter.categories.length || filter.categories.includes(event.category)) &&
    (!filter.sources.length || filter.sources.includes(event.source)) &&
    (!filter.ip || event.src_ip === filter.ip) &&
    (!filter.user || (event.user || "").toLowerCase() === filter.user.toLowerCase()) &&
    (!filter.technique || hasTechnique(event, filter.technique)) &&
    (!search ||
      [event.message, event.rule_id, event.user, event.correlation_key].some((field) =>
        String(field || "").toLowerCase().includes(search),
      )) &&
    (!at || ((!since || at >= since) && (!until || at <= until)))
  );
}

async function applyFilter(next) {
  if (next.min_priority > next.max_priority) {
    filterState.textContent = "The minimum severity must not exceed the maximum.";
    form.elements.min_priority.setAttribute("aria-invalid", "true");
    form.elements.min_priority.focus();
    return;
  }
  form.elements.min_priority.removeAttribute("aria-invalid");
  if (next.technique && !TECHNIQUE.test(next.technique)) {
    filterState.textContent = "An ATT&CK technique is an id such as T1110 or T1110.001.";
    form.elements.technique.setAttribute("aria-invalid", "true");
    form.elements.technique.focus();
    return;
  }
  form.elements.technique.removeAttribute("aria-invalid");
  form.elements.technique.value = next.technique || "";
  filter = next;
  sessionStorage.setItem(FILTER_KEY, JSON.stringify(filter));
  filterToUrl();
  // What no longer matches leaves the feed at once; the server sends only matching events.
  for (const row of [...rows]) if (!matches(row.event)) removeRow(row);
  pausedEvents = pausedEvents.filter(matches);
  updateCounts();
  try {
    const inForce = await connection.setFilter(filter);
    filterState.textContent = inForce
      ? describeFilter(
          { ...inForce, categories: inForce.categories, sources: inForce.sources },
          "In force on the server",
        )
      : describeFilter(filter, "Applied when the connection is back");
  } catch (error) {
    filterState.textContent = `The server refused the filter: ${error.frame?.message || error.message}`;
    return;
  }
  loadHistory();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilter({
    min_priority: Number(form.elements.min_priority.value),
    max_priority: Number(form.elements.max_priority.value),
    categories: splitList(form.elements.categories.value),
    sources: splitList(form.elements.sources.value),
    range: form.elements.range.value,
    from: form.elements.range.value === "custom" ? toIso(form.elements.from.value) : "",
    until: form.elements.range.value === "custom" ? toIso(form.elements.until.value) : "",
    ip: form.elements.ip.value.trim(),
    user: form.elements.user.value.trim(),
    search: form.elements.search.value.trim(),
    technique: form.elements.technique.value.trim().toUpperCase(),
  });
});

function toIso(local) {
  const date = parseTime(local);
  return date ? date.toISOString() : "";
}

document.getElementById("f-clear").addEventListener("click", () => {
  filter = { ...DEFAULT_FILTER };
  showFilterInForm();
  applyFilter({ ...DEFAULT_FILTER });
});

// --- the feed -----------------------------------------------------------------------------

function eventKey(event) {
  return event.event_id ? `e:${event.event_id}` : `m:${event.message_id}`;
}

function eventTime(event) {
  const at = parseTime(event.timestamp);
  return at ? at.getTime() : 0;
}

function rowNode(key, event, fresh) {
  const node = el(
    "li",
    {
      class: `feed-item${event.replayed ? " replayed" : ""}${fresh ? " fresh" : ""}`,
      dataset: { key, severity: String(event.severity ?? "") },
    },
    el(
      "button",
      { type: "button", onclick: () => select(key), onkeydown: moveFocus },
      timeEl(event.timestamp, { short: true }),
      severityBadge(Number(event.severity) || event.severity),
      el("span", { class: "msg", text: event.message || "(no message)" }),
      el("span", {
        class: "meta",
        text: [
          event.category,
          event.source,
          ...techniquesOf(event),
          event.blocked_by_incident ? `blocked by ${event.blocked_by_incident.reference}` : "",
        ].filter(Boolean).join(" · "),
      }),
    ),
  );
  if (key === selectedKey) node.setAttribute("aria-current", "true");
  return node;
}

function addEvent(event, { fresh = false } = {}) {
  const key = eventKey(event);
  if (byKey.has(key) || !matches(event)) return;
  remember(event);
  const at = eventTime(event);
  // Newest first: usually the top; replayed or late events go where their time puts them.
  let index = 0;
  while (index < rows.length && eventTime(rows[index].event) > at) index++;
  if (index >= MAX_ROWS) return;
  const row = { key, event, node: rowNode(key, event, fresh) };
  feed.insertBefore(row.node, rows[index]?.node ?? null);
  rows.splice(index, 0, row);
  byKey.set(key, row);
  while (rows.length > MAX_ROWS) removeRow(rows[rows.length - 1]);
}

function removeRow(row) {
  const index = rows.indexOf(row);
  if (index >= 0) rows.splice(index, 1);
  byKey.delete(row.key);
  row.node.remove();
}

function remember(event) {
  for (const [set, value, list] of [
    [knownCategories, event.category, "known-categories"],
    [knownSources, event.source, "known-sources"],
  ]) {
    if (value && !set.has(value) && set.size < 50) {
      set.add(value);
      document.getElementById(list).append(el("option", { value }));
    }
  }
}

function updateCounts() {
  empty.hidden = rows.length > 0;
  feed.hidden = rows.length === 0;
  count.textContent = `${rows.length} shown (latest ${MAX_ROWS} kept)`;
  if (paused) {
    const waiting = `${pausedEvents.length} new`;
    pauseButton.textContent = `Resume · ${waiting}`;
    pausedBanner.textContent = `Paused, ${waiting} waiting`;
  }
}

function moveFocus(event) {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  event.preventDefault();
  const item = event.currentTarget.parentElement;
  const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
  next?.querySelector("button")?.focus();
}

pauseButton.addEventListener("click", () => {
  paused = !paused;
  pauseButton.setAttribute("aria-pressed", String(paused));
  pauseButton.textContent = paused ? "Resume · 0 new" : "Pause";
  if (!paused) {
    const waiting = pausedEvents;
    pausedEvents = [];
    pausedBanner.textContent = "Resumed";
    for (const event of waiting) addEvent(event, { fresh: true });
  }
  updateCounts();
});

// --- detail -------------------------------------------------------------------------------

function sentence(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

function definition(term, value) {
  if (value === undefined || value === null || value === "") return [];
  return [el("dt", { text: term }), el("dd", {}, value)];
}

/** The incident whose RPZ rule blocked this DNS query's domain, as a link. */
function incidentLink(incident) {
  if (!incident || !Number.isInteger(incident.id)) return null;
  const rule = incident.rpz_rule_id ? ` (RPZ rule #${incident.rpz_rule_id})` : "";
  return el("span", {}, el("a", { href: `/incidents/${incident.id}/`, text: String(incident.reference || `#${incident.id}`) }), rule);
}

/** The event's techniques, each linking to the events of that technique, and its tactics. */
function attackLinks(event) {
  const techniques = techniquesOf(event);
  const tactics = (event.analysis?.attack?.tactics || []).map((tactic) => tactic?.name).filter(Boolean);
  if (!techniques.length && !tactics.length) return null;
  return el(
    "span",
    { class: "attack" },
    techniques.map((t) =>
      el("a", { class: "technique", href: `/events/?technique=${encodeURIComponent(t)}`, title: `Events for ${t}` }, el("code", { text: t }), " "),
    ),
    tactics.length ? el("span", { class: "muted", text: tactics.join(", ") }) : null,
  );
}

async function select(key) {
  const row = byKey.get(key);
  if (!row) return;
  for (const node of feed.querySelectorAll('[aria-current="true"]')) node.removeAttribute("aria-current");
  row.node.setAttribute("aria-current", "true");
  selectedKey = key;
  showDetail(row.event);
  if (window.matchMedia("(max-width: 900px)").matches) {
    // One column: the detail is below the feed, so bring it into view.
    detail.closest("section").scrollIntoView({ block: "start" });
    detail.focus({ preventScroll: true });
  }
  if (row.event.event_id) {
    try {
      const full = await api.get(`/api/events/${encodeURIComponent(row.event.event_id)}/`);
      if (selectedKey === key) showDetail({ ...row.event, ...full });
    } catch {
      // The live payload is shown; the stored extras (raw line, rule details) are optional.
    }
  }
}

function showDetail(event) {
  const analysis = event.analysis && typeof event.analysis === "object" ? event.analysis : {};
  const recommendations = Array.isArray(event.recommendations) ? event.recommendations : [];
  const analysisItems = Object.entries(analysis).map(([key, value]) =>
    definition(sentence(label(key)), typeof value === "object" ? JSON.stringify(value) : String(value)),
  );
  fill(detail,
    el("h3", { text: event.message || "(no message)" }),
    el(
      "dl",
      {},
      definition("Time", timeEl(event.timestamp)),
      definition("Severity", severityBadge(Number(event.severity) || event.severity)),
      definition("Category", event.category),
      definition("Source", event.source),
      definition("Rule", event.rule_id),
      definition("ATT&CK", attackLinks(event)),
      definition("Source IP", pivotLink("ip", event.src_ip)),
      definition("User", pivotLink("user", event.user)),
      definition("Domain", pivotLink("domain", event.details?.domain)),
      definition(
        "Alert",
        event.alert_id ? el("a", { href: `/alerts/?alert=${event.alert_id}`, text: `#${event.alert_id}` }) : null,
      ),
      definition("Blocked by", incidentLink(event.blocked_by_incident)),
      definition("Event id", event.event_id),
    ),
    el("h3", { text: "Analysis" }),
    analysisItems.length ? el("dl", {}, analysisItems) : el("p", { class: "muted", text: "None." }),
    el("h3", { text: "Recommendations" }),
    recommendations.length
      ? el("ul", { class: "keep-lines" }, recommendations.map((text) => el("li", { text: String(text) })))
      : el("p", { class: "muted", text: "None." }),
    event.raw_line ? [el("h3", { text: "Log line" }), el("pre", { text: event.raw_line })] : null,
  );
}

// --- loading and live ---------------------------------------------------------------------

async function loadHistory() {
  try {
    const page = await api.get("/api/events/", {
      ordering: "-timestamp",
      page_size: 100,
      severity_min: filter.min_priority,
      severity_max: filter.max_priority,
      category: filter.categories.join(",") || undefined,
      source: filter.sources.join(",") || undefined,
      since: timeWindow()[0]?.toISOString(),
      until: timeWindow()[1]?.toISOString(),
      src_ip: filter.ip || undefined,
      user: filter.user || undefined,
      search: filter.search || undefined,
      technique: filter.technique || undefined,
    });
    for (const event of page.results) addEvent(event);
  } catch (error) {
    if (error.status !== 404 && error.status !== 403) notify(`Could not load events: ${error.message}`, "error");
  }
  updateCounts();
}

function onEvent(message) {
  if (message.eventType !== "security_event") return;
  const event = { ...message.data, message_id: message.id, replayed: message.replayed };
  event.severity ??= message.priority;
  event.timestamp ??= message.timestamp;
  if (!matches(event)) return;
  if (paused) {
    if (pausedEvents.length < MAX_PAUSED) pausedEvents.push(event);
    updateCounts();
    return;
  }
  addEvent(event, { fresh: !message.replayed });
  updateCounts();
}

showFilterInForm();
filterState.textContent = describeFilter(filter, "Filter");
const connection = connectLive({
  page: "events",
  eventTypes: ["security_event"],
  filter,
  onEvent,
  onResync: loadHistory,
  onError: (frame) => notify(frame.message || "The server reported an error.", "error"),
});
loadHistory();
updateCounts();

mountSavedViews("events", document.getElementById("saved-views"));
