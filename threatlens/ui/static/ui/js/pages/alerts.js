// Alert queue: unowned / mine / all open alerts, live. New alerts appear at the top; an
// alert taken by a colleague stays in place, dimmed, showing its owner (no row moves under
// the analyst's pointer), and taking it then answers with who has it.
import { AlertRows, OPEN_STATUSES, openAlertDialog } from "../alerts.js";
import * as api from "../api.js";
import { pageConfig } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const me = config.user.id;
const params = new URLSearchParams(location.search);
// A user who may not take alerts has no "Mine" (nothing can be theirs).
const VIEWS = config.perms.take_alerts ? ["unowned", "mine", "open"] : ["unowned", "open"];
let view = VIEWS.includes(params.get("view")) ? params.get("view") : "unowned";
let severity = params.get("severity") || "";

const tbody = document.getElementById("alerts");
const empty = document.getElementById("alerts-empty");
const countLine = document.getElementById("queue-count");
const severitySelect = document.getElementById("severity");
const rows = new AlertRows(tbody, { config, onChange: () => updateCount() });
let total = 0;
let loading = null;

function query() {
  const q = { status: OPEN_STATUSES, page_size: 100, ordering: "-received_at" };
  if (view === "unowned") q.owner = "none";
  if (view === "mine") q.owner = "me";
  if (severity) q.severity = severity;
  return q;
}

/** Does this alert belong in the current view? */
function belongs(alert) {
  if (!OPEN_STATUSES.includes(alert.status)) return false;
  if (severity && alert.severity !== severity) return false;
  const owner = alert.assigned_analyst?.id ?? null;
  if (view === "unowned") return owner === null;
  if (view === "mine") return owner === me;
  return true;
}

function updateCount() {
  const shown = rows.rows.size;
  empty.hidden = shown > 0;
  const waiting = [...rows.rows.values()].filter((row) => belongs(row.alert)).length;
  const names = { unowned: "unowned", mine: "yours", open: "open" };
  countLine.textContent =
    `${waiting} ${names[view]} alert${waiting === 1 ? "" : "s"}` +
    (total > shown ? ` (newest ${shown} of ${total} listed)` : "");
}

async function load() {
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
  rows.clear();
  total = page.count;
  for (const alert of page.results) rows.upsert(alert, { append: true });
  updateCount();
}

function setView(next) {
  view = next;
  for (const button of document.querySelectorAll("#views [data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  const url = new URL(location.href);
  url.searchParams.set("view", view);
  if (severity) url.searchParams.set("severity", severity);
  else url.searchParams.delete("severity");
  history.replaceState(null, "", url);
  load();
}

for (const button of document.querySelectorAll("#views [data-view]")) {
  button.addEventListener("click", () => setView(button.dataset.view));
}
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
    if (event.eventType === "new_alert") total += 1;
  }
  updateCount();
}

setView(view);
connectLive({
  page: "alerts",
  eventTypes: config.perms.receive_security ? ["new_alert", "alert_updated"] : [],
  onEvent,
  onResync: load,
  onError: (frame) => notify(frame.message || "The server reported an error.", "error"),
});

const wanted = Number(params.get("alert"));
if (wanted) openAlertDialog(wanted, rows);
