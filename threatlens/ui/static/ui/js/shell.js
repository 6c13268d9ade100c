// Page shell: the navigation toggle at phone widths, local times, notices.
import "./attention.js";
import { el, localiseTimes, setTimePreference, TIME_PREFERENCES, timePreference } from "./dom.js";

const toggle = document.querySelector(".nav-toggle");
const nav = document.getElementById("site-nav");
if (toggle && nav) {
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && nav.classList.contains("open")) {
      nav.classList.remove("open");
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
}

localiseTimes();

// "/" focuses the header's search box, unless the user is typing somewhere.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && (target.isContentEditable || target.closest("input, textarea, select"))) return;
  const box = document.getElementById("header-search");
  if (!box) return;
  event.preventDefault();
  box.focus();
  box.select();
});

// Times: the browser's zone, or 24-hour, or UTC. The page reloads to redraw every time.
const timeSelect = document.getElementById("time-preference");
if (timeSelect) {
  for (const [value, text] of Object.entries(TIME_PREFERENCES)) {
    timeSelect.append(el("option", { value, text }));
  }
  timeSelect.value = timePreference();
  timeSelect.addEventListener("change", () => {
    setTimePreference(timeSelect.value);
    location.reload();
  });
}

const MAX_TOASTS = 4;

/** A short notice in the corner (announced politely to screen readers). */
export function notify(message, kind = "info", timeout = 6000) {
  const region = document.getElementById("toasts");
  if (!region) return;
  const item = el(
    "div",
    { class: `toast toast-${kind}` },
    el("span", { text: message }),
    el("button", {
      type: "button",
      class: "toast-close",
      "aria-label": "Dismiss",
      text: "×",
      onclick: () => item.remove(),
    }),
  );
  region.append(item);
  while (region.children.length > MAX_TOASTS) region.firstChild.remove();
  if (timeout) setTimeout(() => item.remove(), timeout);
}
