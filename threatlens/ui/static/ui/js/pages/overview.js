// Overview: open alerts by severity, my incidents, events in the last hour, component
// health, and live charts of the event rate by severity and of cpu and memory.
import * as api from "../api.js";
import { TimeChart } from "../charts.js";
import { SEVERITIES, band, clear, coalesce, el, label, pageConfig, parseTime, timeEl } from "../dom.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const perms = config.perms;
const OPEN_ALERTS = ["new", "in_progress", "escalated"];
const OPEN_INCIDENTS = ["new", "investigating", "contained"];
const HOUR_MS = 3600 * 1000;

// --- counts over REST -------------------------------------------------------------------

async function loadAlertCounts() {
  if (!perms.view_alerts) return;
  const [unowned, ...counts] = await Promise.all([
    api.get("/api/alerts/", { status: OPEN_ALERTS, owner: "none", page_size: 1 }),
    ...SEVERITIES.map((severity) =>
      api.get("/api/alerts/", { status: OPEN_ALERTS, severity, page_size: 1 }),
    ),
  ]);
  SEVERITIES.forEach((severity, index) => {
    document.querySelector(`[data-count="${severity}"]`).textContent = counts[index].count;
  });
  document.getElementById("unowned-line").textContent =
    `${unowned.count} open alert${unowned.count === 1 ? "" : "s"} waiting for an owner.`;
}

const MY_INCIDENTS_SHOWN = 8;

async function loadMyIncidents() {
  if (!perms.view_incidents) return;
  const page = await api.get("/api/incidents/", {
    owner: "me",
    status: OPEN_INCIDENTS,
    ordering: "-updated_at",
    page_size: MY_INCIDENTS_SHOWN,
  });
  document.getElementById("my-incidents-count").textContent = page.count;
  const list = clear(document.getElementById("my-incidents"));
  for (const incident of page.results) {
    list.append(
      el(
        "li",
        {},
        el("a", { href: `/incidents/${incident.id}/` }, `${incident.reference} `, incident.title),
        el("span", { class: `sev sev-${band(incident.severity)}`, text: incident.severity }),
        el("span", { class: "muted small", text: label(incident.status) }),
      ),
    );
  }
  if (!page.results.length) list.append(el("li", { class: "muted", text: "None open." }));
  const more = document.getElementById("my-incidents-all");
  more.hidden = page.count === 0;
  more.textContent =
    page.count > page.results.length ? `All ${page.count} of my open incidents →` : "My incidents →";
}

let eventsLastHour = null;

async function loadEventCount() {
  if (!perms.receive_security) return;
  const note = document.getElementById("events-hour-note");
  try {
    const since = new Date(Date.now() - HOUR_MS).toISOString();
    const page = await api.get("/api/events/", { since, page_size: 1 });
    eventsLastHour = page.count;
    note.textContent = "Stored events, counted by the server; new ones are added live.";
  } catch (error) {
    // Without the events API (or its permission) the count starts at this page's load.
    eventsLastHour ??= 0;
    note.textContent = `Counted since this page opened (${error.message})`;
  }
  document.getElementById("events-hour").textContent = eventsLastHour;
}

// --- component health -------------------------------------------------------------------

const components = new Map();

function showComponent(name, status, detail) {
  components.set(name, { status, detail });
  const list = clear(document.getElementById("components"));
  for (const [component, info] of [...components.entries()].sort()) {
    list.append(
      el(
        "li",
        { class: `health health-${info.status}` },
        el("span", { class: "health-dot", "aria-hidden": "true" }),
        el("span", { class: "health-name", text: label(component) }),
        el("span", { class: "health-status", text: info.status }),
        info.detail ? el("span", { class: "muted small health-detail", text: info.detail }) : null,
      ),
    );
  }
}

async function loadHealth() {
  let report;
  try {
    const response = await fetch("/realtime/status", { headers: { Accept: "application/json" } });
    report = await response.json(); // 503 still carries the report
  } catch {
    showComponent("server", "unknown", "status not reachable");
    return;
  }
  for (const [name, info] of Object.entries(report.components || {})) {
    const detail = info.message || (info.response_time !== undefined ? `${info.response_time} ms` : "");
    showComponent(name, info.status, detail);
  }
  const realtime = report.realtime;
  if (realtime) {
    showComponent(
      "realtime hub",
      realtime.this_process?.layer_healthy === false ? "critical" : "healthy",
      `${realtime.connections} connection${realtime.connections === 1 ? "" : "s"}`,
    );
  }
  const checked = document.getElementById("health-checked");
  checked.replaceChildren(timeEl(report.timestamp || new Date(), { short: true }));
}

// --- charts -----------------------------------------------------------------------------

const rateChart = perms.receive_security
  ? new TimeChart(document.getElementById("chart-rate"), {
      mode: "count",
      bucketMs: 30000,
      series: [
        { key: "critical", label: "Critical", color: "var(--sev-critical)" },
        { key: "high", label: "High", color: "var(--sev-high)", dash: "6 3" },
        { key: "medium", label: "Medium", color: "var(--sev-medium)", dash: "2 3" },
        { key: "low", label: "Low", color: "var(--sev-low)", dash: "8 3 2 3" },
      ],
      describe: ({ totals }) =>
        `Security events in the last 10 minutes: ${SEVERITIES.map((s) => `${s} ${totals[s]}`).join(", ")}.`,
    })
  : null;

const systemChart = perms.receive_system
  ? new TimeChart(document.getElementById("chart-system"), {
      mode: "value",
      bucketMs: 5000,
      yMax: 100,
      unit: "%",
      series: [
        { key: "cpu", label: "CPU", color: "var(--chart-cpu)" },
        { key: "memory", label: "Memory", color: "var(--chart-memory)", dash: "6 3" },
      ],
      describe: ({ latest }) =>
        latest.cpu === null
          ? "CPU and memory: waiting for the first system_metrics event."
          : `CPU ${Math.round(latest.cpu)}%, memory ${Math.round(latest.memory)}%.`,
    })
  : null;

// --- live -------------------------------------------------------------------------------

const refreshAlerts = coalesce(() => loadAlertCounts().catch(report), 1000);
const refreshIncidents = coalesce(() => loadMyIncidents().catch(report), 1000);

function eventTime(event) {
  const at = parseTime(event.data.timestamp) || parseTime(event.timestamp);
  return at ? at.getTime() : Date.now();
}

function onEvent(event) {
  switch (event.eventType) {
    case "security_event": {
      const at = eventTime(event);
      // The chart counts by arrival (the envelope's time, when the server published it),
      // as its history does: a log replayed from last week shows now, when it came in.
      const arrived = parseTime(event.timestamp)?.getTime() ?? Date.now();
      rateChart?.count(band(Number(event.data.severity) || event.priority), arrived);
      if (!event.replayed && eventsLastHour !== null && at > Date.now() - HOUR_MS) {
        eventsLastHour += 1;
        document.getElementById("events-hour").textContent = eventsLastHour;
      }
      break;
    }
    case "system_metrics": {
      const metrics = event.data.metrics || {};
      const at = eventTime(event);
      const cpu = Number(metrics.cpu?.usage_percent);
      const memory = Number(metrics.memory?.usage_percent);
      systemChart?.value("cpu", cpu, at);
      systemChart?.value("memory", memory, at);
      if (Number.isFinite(cpu)) document.getElementById("cpu-now").textContent = `${Math.round(cpu)}%`;
      if (Number.isFinite(memory)) {
        document.getElementById("memory-now").textContent = `${Math.round(memory)}%`;
      }
      break;
    }
    case "health_update":
    case "health_alert":
      if (event.data.component) {
        showComponent(event.data.component, event.data.status || "unknown", event.data.message || "");
      }
      break;
    case "new_alert":
    case "alert_updated":
      refreshAlerts();
      break;
    case "incident_created":
    case "incident_updated":
      refreshIncidents();
      break;
    default:
  }
}

function report(error) {
  console.error(error);
}

/** The charts' last 10 minutes from the server's stored events (not only what arrived
 * since this page opened). */
async function loadChartHistory() {
  if (!rateChart && !systemChart) return;
  const history = await api.get("/api/console/charts/");
  for (const bucket of history.security_events || []) {
    for (const severity of SEVERITIES) {
      if (bucket[severity]) rateChart?.count(severity, bucket.start * 1000, bucket[severity]);
    }
  }
  for (const point of history.system || []) {
    const at = parseTime(point.at)?.getTime();
    if (!at) continue;
    systemChart?.value("cpu", Number(point.cpu), at);
    systemChart?.value("memory", Number(point.memory), at);
  }
}

function loadAll() {
  return Promise.all([loadAlertCounts(), loadMyIncidents(), loadEventCount(), loadHealth()]).catch(
    report,
  );
}

loadChartHistory().catch(report);

const eventTypes = ["health_update", "health_alert"];
if (perms.receive_system) eventTypes.push("system_metrics");
if (perms.receive_security) {
  eventTypes.push("security_event", "new_alert", "alert_updated", "incident_created", "incident_updated");
}

loadAll();
setInterval(loadEventCount, 60000);
setInterval(loadHealth, 30000);
connectLive({ page: "overview", eventTypes, onEvent, onResync: loadAll });
