// Forwarders with their health, live: each probe round of the DNS monitors publishes a
// `health_update` (component "forwarder") per forwarder and `forwarder_status_change`
// when one changes state; `config_change` (object "forwarder") reloads the list.
import * as api from "../api.js";
import { clear, el, pageConfig, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const tbody = document.getElementById("forwarders");
const forwarders = new Map(); // id -> {forwarder, tr}

function row(forwarder) {
  const status = forwarder.is_active ? forwarder.health_status || "unknown" : "unknown";
  const text = forwarder.is_active ? status : "disabled";
  return [
    el("td", { class: "title", "data-label": "Forwarder" }, el("span", { class: "t", text: forwarder.name })),
    el("td", { "data-label": "Address", text: `${forwarder.address}:${forwarder.port}` }),
    el(
      "td",
      { "data-label": "Health" },
      el("span", { class: `health health-${status}`, title: forwarder.last_error || text, text: forwarder.last_error ? `${text}: ${forwarder.last_error}` : text }),
    ),
    el("td", { "data-label": "Response", text: forwarder.response_time_ms === null || forwarder.response_time_ms === undefined ? "—" : `${Math.round(forwarder.response_time_ms)} ms` }),
    el("td", { "data-label": "Checked" }, forwarder.last_check ? timeEl(forwarder.last_check, { short: true }) : "never"),
    el("td", { "data-label": "Domains", text: (forwarder.domains || []).join(", ") || "all" }),
  ];
}

function summary() {
  const list = [...forwarders.values()].map(({ forwarder }) => forwarder).filter((f) => f.is_active);
  const healthy = list.filter((f) => f.health_status === "healthy").length;
  document.getElementById("forwarder-summary").textContent = forwarders.size ? `${healthy} of ${list.length} active healthy` : "";
  document.getElementById("forwarders-empty").hidden = forwarders.size > 0;
}

function update(id, changes) {
  const existing = forwarders.get(id);
  if (!existing) return;
  existing.forwarder = { ...existing.forwarder, ...changes };
  existing.tr.replaceChildren(...row(existing.forwarder));
  existing.tr.classList.remove("row-fresh");
  void existing.tr.offsetWidth;
  existing.tr.classList.add("row-fresh");
  summary();
}

async function load() {
  let list;
  try {
    list = await api.getAll("/api/dns/forwarders/", { ordering: "name", page_size: 500 }, 2000);
  } catch (error) {
    notify(`Could not load the forwarders: ${error.message}`, "error");
    return;
  }
  forwarders.clear();
  clear(tbody);
  for (const forwarder of list.sort((a, b) => a.name.localeCompare(b.name))) {
    const tr = el("tr", { dataset: { forwarderId: String(forwarder.id) } }, row(forwarder));
    forwarders.set(forwarder.id, { forwarder, tr });
    tbody.append(tr);
  }
  summary();
}

function onEvent(event) {
  const data = event.data || {};
  const type = event.eventType;
  if (type === "health_update" && data.component === "forwarder" && data.forwarder_id) {
    update(Number(data.forwarder_id), {
      health_status: data.status,
      response_time_ms: data.metrics?.response_time ?? null,
      last_check: data.timestamp || event.timestamp,
      last_error: data.error || "",
    });
  } else if (type === "forwarder_status_change") {
    update(Number(data.forwarder_id), {
      health_status: data.new_status,
      response_time_ms: data.response_time ?? null,
      last_check: data.timestamp || event.timestamp,
      last_error: data.error || "",
    });
  } else if (type === "config_change" && data.object_type === "forwarder") {
    load();
  }
}

load();
connectLive({
  page: "dns_forwarders",
  eventTypes: config.perms.receive_system ? ["health_update", "forwarder_status_change", "config_change"] : [],
  onEvent,
  onResync: load,
});
