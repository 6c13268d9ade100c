// Search results: /api/search/ groups (alerts, incidents, events, zones, records), each
// restricted by the server to what this user may read; values that look like an IP address
// or a domain offer their pivot page.
import * as api from "../api.js";
import { el, label, pivotLink, severityBadge, timeEl } from "../dom.js";

const q = new URLSearchParams(location.search).get("q")?.trim() || "";
const summary = document.getElementById("search-summary");
const results = document.getElementById("search-results");
const offers = document.getElementById("search-pivots");

const IPV4 = /^(\d{1,3})(\.\d{1,3}){3}$/;
const IPV6 = /^[0-9a-f:]+:[0-9a-f:.]*$/i;
const DOMAIN = /^([a-z0-9-]+\.)+[a-z]{2,}\.?$/i;

function pivotOffers() {
  const kinds = IPV4.test(q) || IPV6.test(q) ? ["ip"] : DOMAIN.test(q) ? ["domain", "host"] : ["user", "host"];
  offers.replaceChildren(
    "Pivot: ",
    ...kinds.flatMap((kind, index) => [index ? " · " : "", pivotLink(kind, q, `everything about ${kind} ${q}`)]),
  );
}

function group(title, items, render) {
  if (!items) return null;
  return el(
    "section",
    { class: "panel search-group" },
    el("h2", {}, title, " ", el("span", { class: "muted small", text: `(${items.length}${items.length === 10 ? "+" : ""})` })),
    items.length ? el("ul", { class: "pivot-list" }, items.map(render)) : el("p", { class: "muted", text: "Nothing." }),
  );
}

const alertItem = (alert) =>
  el(
    "li",
    {},
    severityBadge(alert.severity),
    " ",
    el("a", { href: `/alerts/?view=open&alert=${alert.id}`, text: `#${alert.id} ${alert.title}` }),
    " ",
    el("span", { class: "muted small" }, label(alert.status), " · ", timeEl(alert.received_at, { short: true })),
  );

const incidentItem = (incident) =>
  el(
    "li",
    {},
    severityBadge(incident.severity),
    " ",
    el("a", { href: `/incidents/${incident.id}/`, text: `${incident.reference} ${incident.title}` }),
    " ",
    el("span", { class: "muted small", text: label(incident.status) }),
  );

const eventItem = (event) =>
  el(
    "li",
    {},
    severityBadge(Number(event.severity)),
    " ",
    el("span", { text: event.message }),
    " ",
    el("span", { class: "muted small" }, timeEl(event.timestamp, { short: true }), " ", pivotLink("ip", event.src_ip)),
  );

const zoneItem = (zone) => el("li", {}, el("a", { href: `/dns/?zone=${zone.id}`, text: zone.name }));

const recordItem = (record) =>
  el(
    "li",
    {},
    el("a", { href: `/dns/?zone=${record.zone}`, text: `${record.name}.${record.zone_name}` }),
    ` ${record.record_type} ${record.value}`,
  );

async function run() {
  if (!q) return;
  pivotOffers();
  let body;
  try {
    body = await api.get("/api/search/", { q });
  } catch (error) {
    summary.textContent = error.message;
    return;
  }
  const total = Object.values(body).reduce((sum, items) => sum + items.length, 0);
  summary.textContent = `${total} result${total === 1 ? "" : "s"} for “${q}”.`;
  results.replaceChildren(
    ...[
      group("Alerts", body.alerts, alertItem),
      group("Incidents", body.incidents, incidentItem),
      group("Security events", body.events, eventItem),
      group("DNS zones", body.zones, zoneItem),
      group("DNS records", body.records, recordItem),
    ].filter(Boolean),
  );
}

run();
