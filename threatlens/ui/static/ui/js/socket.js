// The page's live connection to the hub socket (/ws), shared by every page.
//
// - One socket per page, authenticated by the session cookie.
// - Each page of each tab has its own client id (sessionStorage), so the server remembers
//   where this page left off: a reconnect to /ws/<client_id> replays what was missed,
//   with the page's subscriptions and filter. If the server has no memory of the client
//   (it was restarted, or the replay window passed) the client reconnects once more with
//   ?since=<last message_id>. `replay_complete` with complete=false, or a gap that neither
//   can cover, calls the page's `onResync` so that it reloads its state over REST.
// - Reconnects with exponential backoff (jittered, capped) and shows the state in the
//   header indicator: connecting, live, reconnecting, offline.
// - A silent connection is probed with a ping and replaced when the probe goes unanswered.
import { formatTime } from "./dom.js";

const STATE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
const OFFLINE_AFTER_FAILURES = 5;
const PROBE_AFTER_MS = 30000;
const PROBE_TIMEOUT_MS = 10000;
const REPLAY_WAIT_MS = 3000;
const SEEN_IDS = 2000;
// The unified envelope carries a priority label; pages compare numbers.
const LABEL_PRIORITY = { critical: 10, high: 8, normal: 5, low: 2 };
const CLIENT_ID = /^[A-Za-z0-9_.-]{1,64}$/;
// Errors that come before the server closes the socket: the indicator shows them.
const CONNECTION_ERRORS = new Set(["INTERNAL_ERROR", "CONNECTION_LIMIT", "PERMISSION_DENIED"]);

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: every load is a new client
  }
}

function newClientId(page) {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `ui.${page}.${hex}`.slice(0, 64);
}

/**
 * A live connection. Options:
 *   page        page name (client id, storage keys)
 *   eventTypes  the event types the page shows (subscribed, and the filter's event_types)
 *   filter      {min_priority, max_priority, categories, sources} in force from the start
 *   onEvent     ({eventType, data, id, timestamp, priority, replayed}) => void
 *   onResync    () => void: reload the page's state over REST
 *   onError     (errorFrame) => void: errors not handled here
 *   onState     (state) => void
 */
export class LiveConnection {
  constructor(options) {
    this.page = options.page;
    this.eventTypes = [...new Set(options.eventTypes || [])];
    this.filter = options.filter || {};
    this.onEvent = options.onEvent || (() => {});
    this.onResync = options.onResync || (() => {});
    this.onError = options.onError || (() => {});
    this.onStateChange = options.onState || (() => {});
    this.path = options.path || "/ws";
    this.store = storage();
    this.clientKey = `threatlens.ws.${this.page}.client`;
    this.clientId = this.store?.getItem(this.clientKey);
    if (!this.clientId || !CLIENT_ID.test(this.clientId)) {
      this.clientId = newClientId(this.page);
      this.store?.setItem(this.clientKey, this.clientId);
    }
    this.state = null;
    this.ws = null;
    this.failures = 0;
    this.everConnected = false;
    this.lastId = 0;
    this.seen = new Set();
    this.seenOrder = [];
    this.pending = new Map();
    this.requestSeq = 0;
    this.useSince = false;
    this.retryTimer = null;
    this.probeTimer = null;
    this.replayTimer = null;
    this.lastFrameAt = Date.now();
    this.stopped = false;
  }

  start() {
    this.setState("connecting");
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => {
      if (this.state !== "live") this.setState("offline");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
    window.addEventListener("pagehide", () => this.stop());
    // Logging out closes this session's sockets at once: the logout's own redirect to
    // the login page must not be overtaken by a "log in again" one.
    document.addEventListener("submit", (event) => {
      if (event.target.closest?.("form.logout")) this.stop();
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && this.stopped) {
        // Restored from the back/forward cache: resume where this page left off.
        this.stopped = false;
        this.connect();
      }
    });
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.probeTimer);
    clearTimeout(this.replayTimer);
    if (this.ws) this.ws.close(1000);
  }

  /** Reconnect at once (the indicator's "retry now", the browser coming back online). */
  retryNow() {
    if (this.stopped || this.state === "live" || this.state === "connecting") return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  url() {
    const params = new URLSearchParams();
    if (this.eventTypes.length) params.set("event_types", this.eventTypes.join(","));
    const f = this.filter;
    if (f.min_priority) params.set("min_priority", String(f.min_priority));
    if (f.max_priority) params.set("max_priority", String(f.max_priority));
    if (f.categories?.length) params.set("categories", f.categories.join(","));
    if (f.sources?.length) params.set("sources", f.sources.join(","));
    if (this.useSince && this.lastId) params.set("since", String(this.lastId));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = params.toString();
    return `${scheme}//${location.host}${this.path}/${this.clientId}${query ? `?${query}` : ""}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const reconnecting = this.everConnected;
    const usedSince = this.useSince && this.lastId > 0;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.closeReason = null;
    // After connection_established on a reconnect, the next frame says whether the
    // server replayed the gap (replay_complete) or did not know where we were.
    this.awaitingReplay = false;
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
    };
    ws.onmessage = (message) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      this.armProbe();
      if (message.data === "pong") return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.handleFrame(frame, { reconnecting, usedSince });
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      clearTimeout(this.probeTimer);
      clearTimeout(this.replayTimer);
      this.ws = null;
      for (const { reject } of this.pending.values()) reject(new Error("connection closed"));
      this.pending.clear();
      if (this.stopped) return;
      if (this.closeReason === "AUTH_FAILED") {
        // The session ended (logged out elsewhere, expired): log in again, then come back.
        const next = encodeURIComponent(location.pathname + location.search);
        location.assign(`/login/?next=${next}`);
        return;
      }
      if (event.code === 1003) {
        // The server refused the client id; start as a new client.
        this.clientId = newClientId(this.page);
        this.store?.setItem(this.clientKey, this.clientId);
      }
      this.scheduleRetry();
    };
  }

  handleFrame(frame, { reconnecting, usedSince }) {
    const type = frame.type;
    if (this.awaitingReplay && type !== "replay_complete" && type !== "error") {
      this.replayMissing();
    }
    switch (type) {
      case "connection_established":
        this.established(frame, { reconnecting, usedSince });
        return;
      case "replay_complete":
        this.awaitingReplay = false;
        clearTimeout(this.replayTimer);
        if (frame.data && frame.data.complete === false) this.onResync("replay-incomplete");
        return;
      case "ping":
        this.send({ type: "pong" });
        return;
      case "pong":
        return;
      case "batch":
        for (const event of frame.events || []) this.handleEvent(event);
        return;
      case "event":
        this.handleEvent(frame);
        return;
      case "error":
        this.handleError(frame);
        return;
      default:
        if (frame.message_id !== undefined) {
          this.handleEvent(frame);
        } else if (frame.id !== undefined && this.pending.has(frame.id)) {
          this.pending.get(frame.id).resolve(frame);
          this.pending.delete(frame.id);
        }
    }
  }

  established(frame, { reconnecting, usedSince }) {
    this.failures = 0;
    this.everConnected = true;
    this.useSince = false;
    this.setState("live");
    this.armProbe();
    const subscribed = new Set(frame.data?.subscriptions || []);
    const missing = this.eventTypes.filter((name) => !subscribed.has(name));
    if (missing.length) {
      this.send({ type: "subscribe", data: { event_types: missing } });
    }
    if (reconnecting) {
      this.awaitingReplay = true;
      // replay_complete follows connection_established at once when the server replays;
      // the timer covers a connection that stays silent after it.
      clearTimeout(this.replayTimer);
      this.replayTimer = setTimeout(() => {
        if (this.awaitingReplay) this.replayMissing();
      }, REPLAY_WAIT_MS);
      this.usedSinceNow = usedSince;
    }
  }

  /** The server did not replay the gap: try once with ?since=, else reload over REST. */
  replayMissing() {
    this.awaitingReplay = false;
    clearTimeout(this.replayTimer);
    if (!this.usedSinceNow && this.lastId > 0) {
      this.useSince = true;
      const ws = this.ws;
      this.ws = null;
      if (ws) {
        ws.onclose = null;
        ws.close(1000);
      }
      this.connect();
      return;
    }
    this.onResync("no-replay");
  }

  handleEvent(frame) {
    const unified = frame.type === "event";
    const eventType = unified ? frame.event_type : frame.type;
    const id = Number(unified ? frame.id : frame.message_id);
    if (Number.isFinite(id) && id > 0) {
      if (this.seen.has(id)) return; // a replay overlapping what already arrived
      this.seen.add(id);
      this.seenOrder.push(id);
      if (this.seenOrder.length > SEEN_IDS) this.seen.delete(this.seenOrder.shift());
      if (id > this.lastId) this.lastId = id;
    }
    const priority =
      typeof frame.priority === "number" ? frame.priority : LABEL_PRIORITY[frame.priority] || 5;
    const event = {
      eventType,
      data: frame.data || {},
      id,
      timestamp: frame.timestamp,
      priority,
      replayed: Boolean(frame.replayed),
    };
    try {
      this.onEvent(event);
    } catch (error) {
      console.error("event handler failed", error);
    }
    // The shell's listeners (unread count, notifications: attention.js) hear every event too.
    window.dispatchEvent(new CustomEvent("threatlens:event", { detail: event }));
  }

  handleError(frame) {
    const code = frame.error_code || frame.data?.error_code;
    if (code === "AUTH_FAILED") {
      this.closeReason = "AUTH_FAILED";
      return;
    }
    if (frame.id !== undefined && this.pending.has(frame.id)) {
      this.pending.get(frame.id).reject(Object.assign(new Error(frame.message), { frame }));
      this.pending.delete(frame.id);
      return;
    }
    if (code === "SUBSCRIPTION_FAILED" || code === "PERMISSION_DENIED") {
      // Event types this role may not receive: the page simply gets none of them.
      if (frame.details?.event_types) return;
    }
    if (CONNECTION_ERRORS.has(code)) {
      console.warn("live connection:", code, frame.message);
      return;
    }
    this.onError(frame);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /** Send a request and wait for the reply that carries its id. */
  request(type, data) {
    const id = `r${++this.requestSeq}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ type, data, id })) {
        reject(new Error("not connected"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      setTimeout(() => {
        if (this.pending.has(id)) {
          this.pending.delete(id);
          reject(new Error("no reply"));
        }
      }, 10000);
    });
  }

  /** Change the filter: sent as set_filter now, and used for every reconnect. */
  async setFilter(filter) {
    this.filter = { ...filter };
    const data = { event_types: this.eventTypes };
    for (const key of ["min_priority", "max_priority"]) {
      if (filter[key]) data[key] = filter[key];
    }
    for (const key of ["categories", "sources"]) {
      if (filter[key]?.length) data[key] = filter[key];
    }
    if (this.state !== "live") return null; // applied from the query at the reconnect
    const reply = await this.request("set_filter", data);
    return reply.data?.filter ?? null;
  }

  armProbe() {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      // Nothing heard for a while: ask, and give up on this socket if no answer comes.
      this.send({ type: "ping" });
      this.probeTimer = setTimeout(() => {
        if (Date.now() - this.lastFrameAt >= PROBE_TIMEOUT_MS && this.ws) {
          const ws = this.ws;
          ws.close(4000);
          ws.onclose?.({ code: 4000 });
        }
      }, PROBE_TIMEOUT_MS);
    }, PROBE_AFTER_MS);
  }

  scheduleRetry() {
    this.failures += 1;
    const offline = navigator.onLine === false || this.failures >= OFFLINE_AFTER_FAILURES;
    this.setState(offline ? "offline" : "reconnecting");
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.failures - 1));
    const delay = Math.round(ceiling * (0.75 + Math.random() * 0.5));
    this.nextRetryAt = Date.now() + delay;
    // A reconnect must resume where this page is, and know it is a reconnect.
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange(state);
  }
}

/** Show a connection's state in the header indicator (#conn). */
export function bindIndicator(connection) {
  const root = document.getElementById("conn");
  if (!root) return;
  const label = root.querySelector(".conn-label");
  const retry = root.querySelector(".conn-retry");
  root.hidden = false;
  retry?.addEventListener("click", () => connection.retryNow());
  const previous = connection.onStateChange;
  const show = (state) => {
    root.dataset.state = state;
    label.textContent = STATE_LABELS[state] || state;
    if (retry) retry.hidden = !(state === "offline" || state === "reconnecting");
    previous(state);
  };
  connection.onStateChange = (state) => {
    show(state);
    showStale(state);
  };
  if (connection.state) show(connection.state);
}

// --- the stale-data banner: once a page was live, losing the socket says since when -------

let wasLive = false;
let staleSince = null;

function showStale(state) {
  if (state === "live") {
    wasLive = true;
    staleSince = null;
    document.getElementById("stale-banner")?.remove();
    return;
  }
  if (!wasLive) return; // still connecting for the first time: nothing shown is stale yet
  staleSince ??= new Date();
  let banner = document.getElementById("stale-banner");
  if (!banner) {
    banner = document.createElement("p");
    banner.id = "stale-banner";
    banner.className = "stale-banner";
    banner.setAttribute("role", "status");
    document.getElementById("main")?.prepend(banner);
  }
  const time = document.createElement("time");
  time.dateTime = staleSince.toISOString();
  time.textContent = formatTime(staleSince);
  banner.replaceChildren(
    state === "offline" ? "Offline since " : "Connection lost since ",
    time,
    ": what you see may be out of date. ",
    state === "offline" ? "Use “Retry now” in the header." : "Reconnecting…",
  );
}

/** Start the page's connection with the indicator bound. A page with nothing this user
 * may receive live does not connect, and shows no indicator. */
export function connectLive(options) {
  if (!options.eventTypes?.length) {
    const indicator = document.getElementById("conn");
    if (indicator) indicator.hidden = true;
    return null;
  }
  const connection = new LiveConnection(options);
  bindIndicator(connection);
  return connection.start();
}
