// Pivot: everything about one IP address, user, host or domain (/api/pivot/), kept live:
// a security event or alert that mentions the value reloads the page's data (at most once
// every 2 s).
import * as api from "../api.js";
import { blockForm } from "../block_form.js";
import { clear, coalesce, el, label, pageConfig, pivotLink, severityBadge, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const { type, value } = config.pivot || {};
const summary = document.getElementById("pivot-summary");

function list(id, items, render, empty = "None.") {
  const node = clear(document.getElementById(id));
  for (const item of items) node.append(render(item));
  if (!items.length) node.append(el("li", { class: "muted", text: empty }));
}

function histogram(buckets) {
  const node = clear(document.getElementById("histogram"));
  const max = Math.max(1, ...buckets.map((bucket) => bucket.count));
  for (const bucket of buckets) {
    node.append(
      el(
        "div",
        { class: "bar", title: `${bucket.count} from ${new Date(bucket.start).toLocaleString()}` },
        el("span", { style: `height: ${Math.round((bucket.count / max) * 100)}%` }),
      ),
    );
  }
}

const eventItem = (event) =>
  el(
    "li",
    {},
    severityBadge(Number(event.severity)),
    " ",
    el("span", { text: event.message }),
    " ",
    el("span", { class: "muted small" }, timeEl(event.timestamp, { short: true }), " ", pivotLink("user", event.user)),
  );

async function load() {
  let data;
  try {
    data = await api.get("/api/pivot/", { type, value });
  } catch (error) {
    summary.textContent = error.message;
    return;
  }
  const kinds = { ip: "IP", user: "User", host: "Host", domain: "Domain" };
  document.getElementById("pivot-title").textContent = `${kinds[type] || label(type)} ${value}`;
  document.title = `${value} · ThreatLens`;
  summary.replaceChildren(
    ...(data.first_seen
      ? ["First seen ", timeEl(data.first_seen), " · last seen ", timeEl(data.last_seen)]
      : ["Never seen in the stored events and alerts."]),
  );
  const names = { events: "Security events", alerts: "Alerts", incidents: "Incidents", dns_queries: "DNS queries" };
  clear(document.getElementById("pivot-counts")).append(
    ...Object.entries(data.counts).map(([key, count]) =>
      el("li", { dataset: { count: key } }, el("strong", { text: String(count) }), " ", names[key] || label(key)),
    ),
  );
  histogram(data.histogram || []);
  list("pivot-alerts", data.alerts, (alert) =>
    el(
      "li",
      {},
      severityBadge(alert.severity),
      " ",
      el("a", { href: `/alerts/?view=open&alert=${alert.id}`, text: `#${alert.id} ${alert.title}` }),
      " ",
      el("span", { class: "muted small" }, label(alert.status), " · ", timeEl(alert.received_at, { short: true })),
    ),
  );
  list("pivot-incidents", data.incidents, (incident) =>
    el(
      "li",
      {},
      el("a", { href: `/incidents/${incident.id}/`, text: `${incident.reference} ${incident.title}` }),
      " ",
      el("span", { class: "muted small", text: label(incident.status) }),
    ),
  );
  list("pivot-events", data.events, eventItem);
  list("pivot-dns", data.dns_queries, eventItem);
}

const reload = coalesce(load, 2000);

function mentions(data) {
  const wanted = String(value).toLowerCase();
  return [data?.src_ip, data?.source_ip, data?.destination_ip, data?.user, data?.affected_user, data?.affected_host]
    .concat(type === "domain" || type === "host" ? [data?.message, data?.title] : [])
    .some((field) => typeof field === "string" && (field.toLowerCase() === wanted || (type !== "ip" && field.toLowerCase().includes(wanted))));
}

if (type === "domain" && value && config.perms.add_rpz_rules && config.perms.change_incidents) {
  document.getElementById("pivot-block").replaceChildren(blockForm({ domain: value }));
}

if (type && value) {
  load();
  connectLive({
    page: "pivot",
    eventTypes: config.perms.receive_security ? ["security_event", "new_alert", "alert_updated"] : [],
    onEvent: (event) => {
      if (mentions(event.data)) reload();
    },
    onResync: load,
    onError: (frame) => notify(frame.message || "The server reported an error.", "error"),
  });
} else {
  summary.textContent = "Nothing to pivot on: open this page from a link on an IP, user, host or domain.";
}
