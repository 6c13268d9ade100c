// Threat feeds with the state of their last download, live over threat_feed_updated
// (imports, configuration changes, and `fetch_failed` when a download fails).
import * as api from "../api.js";
import { clear, el, pageConfig, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const tbody = document.getElementById("feeds");
const feeds = new Map(); // id -> {feed, tr}

/** The state of a feed's last download, from what the feed API stores. */
export function downloadState(feed) {
  if (!feed.is_active) return { status: "unknown", text: "disabled" };
  if (feed.last_error) return { status: "failed", text: `failed: ${feed.last_error}` };
  if (!feed.last_fetch) return { status: "unknown", text: "not downloaded yet" };
  return { status: "ok", text: "ok" };
}

function every(seconds) {
  if (!seconds) return "—";
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function row(feed) {
  const state = downloadState(feed);
  return [
    el("td", { class: "title", "data-label": "Feed" }, el("span", { class: "t", title: feed.url || feed.file_path, text: feed.name })),
    el("td", { "data-label": "Last download" }, el("span", { class: `health health-${state.status}`, title: state.text, text: state.text })),
    el("td", { "data-label": "Rules", text: String(feed.entries_count ?? 0) }),
    el("td", { "data-label": "Fetched" }, feed.last_fetch ? timeEl(feed.last_fetch, { short: true }) : "never"),
    el("td", { "data-label": "Changed" }, feed.last_update ? timeEl(feed.last_update, { short: true }) : "never"),
    el("td", { "data-label": "Every", text: every(feed.update_interval) }),
  ];
}

function summary() {
  const failing = [...feeds.values()].filter(({ feed }) => downloadState(feed).status === "failed").length;
  document.getElementById("feed-summary").textContent = feeds.size
    ? `${feeds.size} feed${feeds.size === 1 ? "" : "s"}, ${failing} failing`
    : "";
  document.getElementById("feeds-empty").hidden = feeds.size > 0;
}

function upsert(feed) {
  const existing = feeds.get(feed.id);
  if (existing) {
    existing.feed = feed;
    existing.tr.replaceChildren(...row(feed));
    existing.tr.classList.remove("row-fresh");
    void existing.tr.offsetWidth;
    existing.tr.classList.add("row-fresh");
  } else {
    const tr = el("tr", { class: "row-fresh", dataset: { feedId: String(feed.id) } }, row(feed));
    feeds.set(feed.id, { feed, tr });
    tbody.append(tr);
  }
  summary();
}

async function load() {
  let list;
  try {
    list = await api.getAll("/api/dns/feeds/", { ordering: "name", page_size: 500 }, 2000);
  } catch (error) {
    notify(`Could not load the feeds: ${error.message}`, "error");
    return;
  }
  feeds.clear();
  clear(tbody);
  for (const feed of list) {
    const tr = el("tr", { dataset: { feedId: String(feed.id) } }, row(feed));
    feeds.set(feed.id, { feed, tr });
    tbody.append(tr);
  }
  summary();
}

function onEvent(event) {
  if (event.eventType !== "threat_feed_updated") return;
  const data = event.data || {};
  const id = Number(data.feed_id);
  if (data.action === "deleted") {
    feeds.get(id)?.tr.remove();
    feeds.delete(id);
    summary();
  } else if (data.feed) {
    upsert(data.feed);
  }
}

load();
connectLive({
  page: "dns_feeds",
  eventTypes: config.perms.receive_security ? ["threat_feed_updated"] : [],
  onEvent,
  onResync: load,
});
