// Alert queue: unowned / mine / all open alerts, live. New alerts appear at the top; an
// alert taken by a colleague stays in place, dimmed, showing its owner (no row moves under
// the analyst's pointer), and taking it then answers with who has it.
import { AlertRows, OPEN_STATUSES, openAlertDialog } from "../alerts.js";
import * as api from "../api.js";
import { currentPreferences, ready as attentionReady, savePreferences } from "../attention.js";
import { el, label, pageConfig } from "../dom.js";
import { notify } from "../shell.js";
import { mountSavedViews } from "../saved_views.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const me = config.user.id;
const params = new URLSearchParams(location.search);
// A user who may not take alerts has no "Mine" (nothing can be theirs).
const VIEWS = config.perms.take_alerts ? ["unowned", "mine", "open"] : ["unowned", "open"];
let view = VIEWS.includes(params.get("view")) ? params.get("view") : "unowned";
let severity = params.get("severity") || "";
// ?technique=T1110: alerts of rules tagged with an ATT&CK technique (links from the Rules page).
const TECHNIQUE = /^T\d{4}(\.\d{3})?$/;
let technique = (params.get("technique") || "").trim().toUpperCase();
if (!TECHNIQUE.test(technique)) technique = "";
// Sorts the API offers; new alerts arriving live are placed by the same order.
const SORTS = {
  received: { ordering: "-received_at", key: (a) => [Date.parse(a.received_at) || 0] },
  severity: {
    ordering: "-severity,-received_at",
    key: (a) => [SEVERITY_RANK[a.severity] ?? 0, Date.parse(a.received_at) || 0],
  },
  risk: { ordering: "-risk_score,-received_at", key: (a) => [a.risk_score ?? -1, Date.parse(a.received_at) || 0] },
  last_seen: { ordering: "-last_seen_at", key: (a) => [Date.parse(a.last_seen_at) || 0] },
};
const SEVERITY_RANK = { low: 1, medium: 2, high: 3, critical: 4 };
let sort = params.get("sort") in SORTS ? params.get("sort") : "received";

const tbody = document.getElementById("alerts");
const empty = document.getElementById("alerts-empty");
const countLine = document.getElementById("queue-count");
const severitySelect = document.getElementById("severity");
const rows = new AlertRows(tbody, {
  config,
  onChange: () => updateCount(),
  selectable: Boolean(config.perms.take_alerts),
  onSelect: (selected) => showBulk(selected),
});
let total = 0;
let loading = null;

function query() {
  const q = { status: OPEN_STATUSES, page_size: 100, ordering: SORTS[sort].ordering };
  if (view === "unowned") q.owner = "none";
  if (view === "mine") q.owner = "me";
  if (severity) q.severity = severity;
  if (technique) q.technique = technique;
  return q;
}

/** Does this alert belong in the current view? */
function belongs(alert) {
  if (!OPEN_STATUSES.includes(alert.status)) return false;
  if (severity && alert.severity !== severity) return false;
  if (technique && !(alert.details?.attack?.techniques || []).some((t) => t === technique || t.startsWith(`${technique}.`))) {
    return false;
  }
  const owner = alert.assigned_analyst?.id ?? null;
  if (view === "unowned") return owner === null;
  if (view === "mine") return owner === me;
  return true;
}

function updateCount() {
  const shown = rows.rows.size;
  empty.hidden = shown > 0;
  const waiting = [...rows.rows.values()].filter((row) => belongs(row.alert)).length;
  const plural = waiting === 1 ? "" : "s";
  const names = { unowned: `unowned alert${plural}`, mine: `alert${plural} of yours`, open: `open alert${plural}` };
  countLine.textContent =
    `${waiting} ${names[view]}` +
    (technique ? ` for ATT&CK ${technique}` : "") +
    (total > shown ? ` (newest ${shown} of ${total} listed)` : "");
}

/** (Re)load the list. keepSelection: a reload of the same view (the socket lost its
 * place) keeps the analyst's selection of the alerts still listed. */
async function load({ keepSelection = false } = {}) {
  const request = api.get("/api/alerts/", query());
  loading = request;
  let page;
  try {
    page = await request;
  } catch (error) {
    notify(`Could not load alerts: ${error.message}`, "error");
    return;
  }
  if (loading !== request) return; // a newer load started
  rows.clear({ keepSelection });
  total = page.count;
  for (const alert of page.results) rows.upsert(alert, { append: true });
  if (keepSelection) rows.pruneSelection();
  updateCount();
}

function setView(next) {
  view = next;
  if (rows.selected.size) rows.selectAll(false); // another view, sort or filter: a fresh selection
  for (const button of document.querySelectorAll("#views [data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  const url = new URL(location.href);
  url.searchParams.set("view", view);
  if (severity) url.searchParams.set("severity", severity);
  else url.searchParams.delete("severity");
  if (technique) url.searchParams.set("technique", technique);
  else url.searchParams.delete("technique");
  if (sort !== "received") url.searchParams.set("sort", sort);
  else url.searchParams.delete("sort");
  history.replaceState(null, "", url);
  load();
}

for (const button of document.querySelectorAll("#views [data-view]")) {
  button.addEventListener("click", () => setView(button.dataset.view));
}
const sortSelect = document.getElementById("sort");
sortSelect.value = sort;
sortSelect.addEventListener("change", () => {
  sort = sortSelect.value in SORTS ? sortSelect.value : "received";
  setView(view);
});

/** Move a row to its place in the current order (rows arriving live). */
function place(alert) {
  const row = rows.rows.get(alert.id);
  if (!row) return;
  const key = SORTS[sort].key;
  const mine = key(alert);
  const before = (a, b) => {
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] > b[i];
    return alert.id > b.id;
  };
  for (const tr of tbody.children) {
    if (tr === row.tr) continue;
    const other = rows.get(Number(tr.dataset.alertId));
    if (other && before(mine, key(other))) {
      tbody.insertBefore(row.tr, tr);
      return;
    }
  }
  tbody.append(row.tr);
}

const techniqueForm = document.getElementById("technique-form");
const techniqueInput = document.getElementById("technique");
techniqueInput.value = technique;
techniqueForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = techniqueInput.value.trim().toUpperCase();
  if (value && !TECHNIQUE.test(value)) {
    techniqueInput.setAttribute("aria-invalid", "true");
    countLine.textContent = "An ATT&CK technique is an id such as T1110 or T1110.001.";
    return;
  }
  techniqueInput.removeAttribute("aria-invalid");
  technique = value;
  setView(view);
});
severitySelect.value = severity;
severitySelect.addEventListener("change", () => {
  severity = severitySelect.value;
  setView(view);
});

function onEvent(event) {
  if (event.eventType !== "new_alert" && event.eventType !== "alert_updated") return;
  const alert = event.data;
  if (!alert || alert.id === undefined) return;
  if (rows.has(alert.id)) {
    // Stays where it is; dimmed when it left this view (taken by a colleague, closed).
    rows.upsert(alert, { taken: !belongs(alert) });
  } else if (belongs(alert)) {
    rows.upsert(alert, { fresh: !event.replayed });
    if (sort !== "received") place(alert);
    if (event.eventType === "new_alert") total += 1;
  }
  updateCount();
}

setView(view);
connectLive({
  page: "alerts",
  eventTypes: config.perms.receive_security ? ["new_alert", "alert_updated"] : [],
  onEvent,
  onResync: () => load({ keepSelection: true }),
  onError: (frame) => notify(frame.message || "The server reported an error.", "error"),
});

const wanted = Number(params.get("alert"));
if (wanted) openAlertDialog(wanted, rows);

// --- bulk triage: one request for every selected alert, all or nothing -----------------------

const bulkBar = document.getElementById("bulk-bar");
const bulkNote = document.getElementById("bulk-note");
const selectAll = document.getElementById("select-all");
let bulkOptionsLoaded = false;

function showBulk(selected) {
  if (!bulkBar) return;
  bulkBar.hidden = selected.size === 0;
  document.getElementById("bulk-count").textContent = `${selected.size} selected`;
  if (selectAll) selectAll.checked = selected.size > 0 && selected.size === rows.rows.size;
  if (selected.size && !bulkOptionsLoaded) {
    bulkOptionsLoaded = true;
    loadBulkOptions();
  }
}

async function loadBulkOptions() {
  const incidents = document.getElementById("bulk-incident");
  try {
    const page = await api.get("/api/incidents/", {
      status: ["new", "investigating", "contained"],
      ordering: "-updated_at",
      page_size: 100,
    });
    for (const incident of page.results) {
      incidents.append(el("option", { value: incident.id, text: `${incident.reference} ${incident.title}` }));
    }
  } catch (error) {
    notify(`Could not list incidents: ${error.message}`, "error");
  }
  const assignees = document.getElementById("bulk-assignee");
  if (assignees) {
    try {
      for (const user of await api.get("/api/incidents/assignees/")) {
        assignees.append(el("option", { value: user.id, text: user.full_name || user.username }));
      }
    } catch (error) {
      notify(`Could not list analysts: ${error.message}`, "error");
    }
  }
}

selectAll?.addEventListener("change", () => rows.selectAll(selectAll.checked));
document.getElementById("bulk-clear")?.addEventListener("click", () => rows.selectAll(false));

async function bulk(action, button) {
  const body = { action, alert_ids: [...rows.selected] };
  if (action === "status") body.status = document.getElementById("bulk-status").value;
  if (action === "assign") body.assignee = Number(document.getElementById("bulk-assignee").value);
  if (action === "add_to_incident") body.incident = Number(document.getElementById("bulk-incident").value);
  const missing = { status: body.status, assign: body.assignee, add_to_incident: body.incident };
  if (action in missing && !missing[action]) {
    bulkNote.className = "small field-error";
    bulkNote.textContent = "Choose a value first.";
    return;
  }
  button.disabled = true;
  bulkNote.className = "small";
  bulkNote.textContent = "Working…";
  try {
    const reply = await api.post("/api/alerts/bulk-triage/", body);
    for (const alert of reply.alerts) {
      if (rows.has(alert.id)) rows.upsert(alert, { taken: !belongs(alert) });
    }
    const done = { take: "taken", status: `set to ${label(body.status)}`, assign: "assigned", add_to_incident: "added" };
    bulkNote.textContent = `${reply.alerts.length} alerts ${done[action]}.`;
    notify(`${reply.alerts.length} alerts ${done[action]}.`, "success");
    rows.selectAll(false);
    updateCount();
  } catch (error) {
    const refused = Object.keys(error.body?.errors || {});
    bulkNote.className = "small field-error";
    bulkNote.textContent = refused.length
      ? `Nothing changed: ${refused.length} refused (${refused.map((id) => `#${id}`).join(", ")}). ${error.message}`
      : error.message;
    for (const id of refused) rows.note(Number(id), error.body.errors[id].detail, "error");
  } finally {
    button.disabled = false;
  }
}

for (const button of bulkBar?.querySelectorAll("[data-bulk]") || []) {
  button.addEventListener("click", () => bulk(button.dataset.bulk, button));
}

// --- keyboard: j/k move, t takes, x selects, Enter opens, ? lists them -----------------------

const shortcuts = document.getElementById("shortcuts");
shortcuts.querySelector("[data-close]").addEventListener("click", () => shortcuts.close());
document.getElementById("shortcuts-open").addEventListener("click", () => shortcuts.showModal());
let cursor = null; // the alert id of the current row

function moveCursor(step) {
  const trs = [...tbody.children];
  if (!trs.length) return;
  const at = trs.findIndex((tr) => Number(tr.dataset.alertId) === cursor);
  const next = trs[Math.max(0, Math.min(trs.length - 1, at === -1 ? 0 : at + step))];
  for (const tr of tbody.querySelectorAll(".row-cursor")) tr.classList.remove("row-cursor");
  next.classList.add("row-cursor");
  cursor = Number(next.dataset.alertId);
  next.scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && (target.isContentEditable || target.closest("input, textarea, select, dialog"))) {
    return;
  }
  if (event.key === "?") {
    event.preventDefault();
    shortcuts.showModal();
  } else if (event.key === "j" || event.key === "k") {
    moveCursor(event.key === "j" ? 1 : -1);
  } else if (cursor !== null && rows.has(cursor)) {
    const row = rows.rows.get(cursor);
    if (event.key === "t" && config.perms.take_alerts) {
      const button = row.tr.querySelector("button.btn-primary, button[aria-label^='Take over']");
      if (button) rows.take(cursor, button);
    } else if (event.key === "x" && config.perms.take_alerts) {
      rows.select(cursor, !rows.selected.has(cursor));
    } else if (event.key === "Enter" && !(target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement)) {
      openAlertDialog(cursor, rows);
    }
  }
});

mountSavedViews("alerts", document.getElementById("saved-views"));

// --- attention: desktop notification and sound for critical alerts (kept on the server) -----

for (const [id, key] of [
  ["notify-critical", "notify_critical"],
  ["sound-critical", "sound_critical"],
]) {
  const box = document.getElementById(id);
  attentionReady.then(() => {
    box.checked = Boolean(currentPreferences()[key]);
  });
  box.addEventListener("change", async () => {
    try {
      await savePreferences({ [key]: box.checked });
      notify(box.checked ? "Turned on." : "Turned off.", "success");
    } catch (error) {
      box.checked = !box.checked;
      notify(error.message, "error");
    }
  });
}
