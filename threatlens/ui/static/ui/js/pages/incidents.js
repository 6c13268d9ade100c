// Incidents: mine or all that the user may see, live (incident_created / incident_updated
// reach owners, watchers and users who may see all incidents).
import { isNewer } from "../alerts.js";
import * as api from "../api.js";
import { el, label, pageConfig, severityBadge, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { mountSavedViews } from "../saved_views.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const me = config.user.id;
const params = new URLSearchParams(location.search);
// `?view=mine|all`, as on the alert queue (`?scope=` is the old name, still read). Without
// one: "mine" for someone who owns an open incident, else "all" (config.default_view).
const VIEWS = config.perms.take_alerts ? ["mine", "all"] : ["all"];
const asked = params.get("view") || params.get("scope");
let scope = VIEWS.includes(asked) ? asked : VIEWS.includes(config.default_view) ? config.default_view : "all";
let status = params.has("status") ? params.get("status") : "active";
const ACTIVE = ["new", "investigating", "contained", "resolved"];

const tbody = document.getElementById("incidents");
const empty = document.getElementById("incidents-empty");
const countLine = document.getElementById("incident-count");
const statusSelect = document.getElementById("status-filter");
const rows = new Map();
let loading = null;

function statuses() {
  if (status === "active") return ACTIVE;
  return status ? [status] : undefined;
}

function belongs(incident) {
  if (scope === "mine" && incident.owner?.id !== me) return false;
  const wanted = statuses();
  return !wanted || wanted.includes(incident.status);
}

function render(incident) {
  const owner = incident.owner
    ? incident.owner.id === me
      ? el("span", { class: "owner-you", text: "You" })
      : el("span", { text: incident.owner.full_name || incident.owner.username })
    : el("span", { class: "muted", text: "—" });
  return [
    el(
      "td",
      { class: "title", "data-label": "Incident" },
      el(
        "div",
        {},
        el("a", { class: "t", href: `/incidents/${incident.id}/`, text: `${incident.reference} ${incident.title}` }),
      ),
    ),
    el("td", { "data-label": "Severity" }, severityBadge(incident.severity)),
    el("td", { "data-label": "Priority", text: `P${incident.priority}` }),
    el("td", { "data-label": "Status" }, el("span", { class: `status status-${incident.status}`, text: label(incident.status) })),
    el("td", { "data-label": "Owner" }, owner),
    el("td", { "data-label": "Alerts", text: String(incident.alert_count ?? "") }),
    el("td", { "data-label": "Updated" }, timeEl(incident.updated_at, { short: true })),
  ];
}

function upsert(incident, { append = false, fresh = false } = {}) {
  const row = rows.get(incident.id);
  if (row) {
    if (!isNewer(incident, row.incident)) return;
    row.incident = incident;
    row.tr.replaceChildren(...render(incident));
    row.tr.classList.toggle("row-taken", !belongs(incident));
    return;
  }
  const tr = el("tr", { class: fresh ? "row-fresh" : "" }, render(incident));
  rows.set(incident.id, { incident, tr });
  if (append) tbody.append(tr);
  else tbody.prepend(tr);
}

function updateCount(total) {
  empty.hidden = rows.size > 0;
  const shown = [...rows.values()].filter((row) => belongs(row.incident)).length;
  countLine.textContent = `${shown} incident${shown === 1 ? "" : "s"}` + (total > rows.size ? ` (newest ${rows.size} of ${total})` : "");
}

async function load() {
  const request = api.get("/api/incidents/", {
    owner: scope === "mine" ? "me" : undefined,
    status: statuses(),
    ordering: "-updated_at",
    page_size: 100,
  });
  loading = request;
  try {
    const page = await request;
    if (loading !== request) return;
    rows.clear();
    tbody.replaceChildren();
    for (const incident of page.results) upsert(incident, { append: true });
    updateCount(page.count);
  } catch (error) {
    notify(`Could not load incidents: ${error.message}`, "error");
  }
}

function setScope(next) {
  scope = next;
  for (const button of document.querySelectorAll("#scopes [data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === scope));
  }
  const url = new URL(location.href);
  url.searchParams.delete("scope");
  url.searchParams.set("view", scope);
  url.searchParams.set("status", status);
  history.replaceState(null, "", url);
  load();
}

for (const button of document.querySelectorAll("#scopes [data-view]")) {
  button.addEventListener("click", () => setScope(button.dataset.view));
}
statusSelect.value = status;
statusSelect.addEventListener("change", () => {
  status = statusSelect.value;
  setScope(scope);
});

function onEvent(event) {
  if (event.eventType !== "incident_created" && event.eventType !== "incident_updated") return;
  const incident = event.data;
  if (!incident?.id) return;
  if (rows.has(incident.id) || belongs(incident)) {
    upsert(incident, { fresh: !rows.has(incident.id) && !event.replayed });
    updateCount(0);
  }
}

setScope(scope);
connectLive({
  page: "incidents",
  eventTypes: config.perms.receive_security ? ["incident_created", "incident_updated"] : [],
  onEvent,
  onResync: load,
});

mountSavedViews("incidents", document.getElementById("saved-views"));
