// Attention, on every page: the number of new alerts since the queue was last opened (in
// the tab title and on the navigation's Alerts link), and for users who turned it on
// (/api/preferences/, kept on the server) a desktop notification and a sound for each
// critical alert. Live counts come from the page's own socket (socket.js re-dispatches
// every event as `threatlens:event`).
import * as api from "./api.js";
import { pageConfig } from "./dom.js";

const SEEN_KEY = "threatlens.alerts_seen_at";
const config = pageConfig();
const perms = config.perms || {};
let unread = 0;
let preferences = { notify_critical: false, sound_critical: false };

function seenAt() {
  try {
    return localStorage.getItem(SEEN_KEY);
  } catch {
    return null;
  }
}

function markSeen() {
  try {
    localStorage.setItem(SEEN_KEY, new Date().toISOString());
  } catch {
    // No storage: the count starts again on each page.
  }
}

function showUnread() {
  document.title = (unread ? `(${unread}) ` : "") + document.title.replace(/^\(\d+\) /, "");
  const link = document.querySelector('#site-nav a[href="/alerts/"]');
  if (!link) return;
  let badge = link.querySelector(".nav-badge");
  if (!unread) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement("span");
    badge.className = "nav-badge";
    link.append(" ", badge);
  }
  badge.textContent = String(unread);
  badge.setAttribute("aria-label", `${unread} new alert${unread === 1 ? "" : "s"}`);
}

async function loadUnread() {
  if (config.page === "alerts") {
    markSeen();
    return;
  }
  const since = seenAt();
  if (!since) {
    markSeen();
    return;
  }
  try {
    const page = await api.get("/api/alerts/", { status: "new", received_after: since, page_size: 1 });
    unread = page.count;
    showUnread();
  } catch {
    // Not important enough to report.
  }
}

let audio = null;

function beep() {
  try {
    audio ??= new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  } catch {
    // No audio here (or not allowed before a user gesture).
  }
}

function notifyCritical(alert) {
  if (preferences.notify_critical && "Notification" in window && Notification.permission === "granted") {
    const notification = new Notification(`Critical alert #${alert.id}`, {
      body: alert.title || "",
      tag: `alert-${alert.id}`,
    });
    notification.onclick = () => {
      window.focus();
      location.assign(`/alerts/?view=open&alert=${alert.id}`);
    };
  }
  if (preferences.sound_critical) beep();
}

window.addEventListener("threatlens:event", (event) => {
  const { eventType, data, replayed } = event.detail;
  if (eventType !== "new_alert" || !data) return;
  if (config.page === "alerts") markSeen();
  else {
    unread += 1;
    showUnread();
  }
  if (!replayed && data.severity === "critical") notifyCritical(data);
});

/** The current preferences (loaded once per page). */
export function currentPreferences() {
  return preferences;
}

/** Change preferences on the server; turning notifications on asks the browser first. */
export async function savePreferences(changes) {
  if (changes.notify_critical && "Notification" in window && Notification.permission !== "granted") {
    const answer = await Notification.requestPermission();
    if (answer !== "granted") throw new Error("The browser did not allow notifications.");
  }
  preferences = await api.patch("/api/preferences/", changes);
  return preferences;
}

export const ready = perms.view_alerts
  ? Promise.all([
      loadUnread(),
      api
        .get("/api/preferences/")
        .then((loaded) => {
          preferences = loaded;
        })
        .catch(() => {}),
    ])
  : Promise.resolve();
