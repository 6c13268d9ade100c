// Small DOM and formatting helpers. Text always goes in as text (never as HTML): titles,
// messages and names come from logs and other users.

/** el("td", {class: "x", dataset: {id: 1}, onclick: fn}, child, "text", ...) */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Replace a node's children; like el(), skips null/false and flattens arrays. */
export function fill(node, ...children) {
  clear(node);
  append(node, children);
  return node;
}

export function pageConfig() {
  const node = document.getElementById("page-config");
  return node ? JSON.parse(node.textContent) : {};
}

// --- time: the browser's zone or UTC, its locale's clock or 24-hour (a per-browser choice) ---

const TIME_PREFERENCE_KEY = "threatlens.times";
// Short labels: the choice sits in the header (its label says "Times").
export const TIME_PREFERENCES = {
  local: "Local",
  local24: "24 h",
  utc: "UTC",
};

/** "local" (the locale's clock), "local24" or "utc" (both 24-hour), kept in localStorage. */
export function timePreference() {
  try {
    const value = localStorage.getItem(TIME_PREFERENCE_KEY);
    return value in TIME_PREFERENCES ? value : "local";
  } catch {
    return "local";
  }
}

export function setTimePreference(value) {
  try {
    localStorage.setItem(TIME_PREFERENCE_KEY, value in TIME_PREFERENCES ? value : "local");
  } catch {
    // Private mode without storage: the choice lasts until the page reloads.
  }
}

function timeOptions() {
  const preference = timePreference();
  const options = {};
  if (preference !== "local") options.hourCycle = "h23";
  if (preference === "utc") options.timeZone = "UTC";
  return options;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  ...timeOptions(),
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  ...timeOptions(),
});
const dayKey = new Intl.DateTimeFormat("en-CA", { dateStyle: "short", ...timeOptions() });
const zone = timePreference() === "utc" ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone;

export function parseTime(value) {
  if (!value) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatTime(value, { short = false } = {}) {
  const date = parseTime(value);
  if (!date) return "—";
  const sameDay = dayKey.format(date) === dayKey.format(new Date());
  return short && sameDay ? timeOnly.format(date) : dateTime.format(date);
}

/** A <time> element in the chosen zone, with the full time (and zone) as its title. */
export function timeEl(value, options) {
  const date = parseTime(value);
  if (!date) return el("span", { class: "muted", text: "—" });
  return el("time", {
    datetime: date.toISOString(),
    title: `${dateTime.format(date)} (${zone})`,
    text: formatTime(date, options),
  });
}

/** Localise server-rendered <time data-local> elements. */
export function localiseTimes(root = document) {
  for (const node of root.querySelectorAll("time[data-local]")) {
    const date = parseTime(node.getAttribute("datetime"));
    if (!date) continue;
    node.textContent = formatTime(date);
    node.title = `${dateTime.format(date)} (${zone})`;
  }
}

// --- severity ---------------------------------------------------------------------------

export const SEVERITIES = ["critical", "high", "medium", "low"];

/** A 1-10 severity or priority as its band (the unified labels, with "medium"). */
export function band(value) {
  if (typeof value === "string") return SEVERITIES.includes(value) ? value : "medium";
  if (value >= 9) return "critical";
  if (value >= 7) return "high";
  if (value >= 4) return "medium";
  return "low";
}

export function severityBadge(value) {
  const name = band(value);
  const text = typeof value === "number" ? `${name} ${value}` : name;
  return el("span", { class: `sev sev-${name}`, text });
}

export function label(text) {
  return String(text ?? "").replaceAll("_", " ");
}

/** Coalesce calls: `fn` runs `wait` ms after the first call of a burst, once, so a stream
 * of events causes at most one reload per `wait` ms (and never starves). */
export function coalesce(fn, wait) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, wait);
  };
}

// --- pivots: every IP, user, host and domain links to everything about it -------------------

export function pivotUrl(kind, value) {
  return `/pivot/?type=${encodeURIComponent(kind)}&value=${encodeURIComponent(value)}`;
}

/** A link to the pivot page of `value` (nothing for an empty value). */
export function pivotLink(kind, value, text) {
  if (value === undefined || value === null || value === "") return null;
  return el("a", {
    class: "pivot",
    href: pivotUrl(kind, value),
    title: `Everything about ${kind} ${value}`,
    text: text ?? String(value),
  });
}
