// One incident: its alerts, timeline and comments, status changes and watching, live
// while open (incident_updated reloads the incident, its timeline and comments).
import { AlertRows } from "../alerts.js";
import * as api from "../api.js";
import { clear, coalesce, el, label, pageConfig, pivotLink, severityBadge, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const id = config.incident_id;
const base = `/api/incidents/${id}`;
const note = document.getElementById("action-note");
const alertRows = new AlertRows(document.getElementById("incident-alerts"), {
  config,
  onChange: (alert) => {
    // Moved to another incident: no longer one of this incident's alerts.
    if (alert && alert.incident !== id) alertRows.remove(alert.id);
    refreshIncident();
  },
});
let incident = null;
let watching = Boolean(config.watching);

function person(user) {
  return user ? user.full_name || user.username : "nobody";
}

/** Markdown the server rendered and sanitised (incidents/markup.py: an allow-list of
 * tags, no attributes but a link's href and title); the plain text if there is none. */
function showMarkdown(node, html, text) {
  if (typeof html === "string") node.innerHTML = html;
  else node.textContent = text || "";
  return node;
}

function showIncident(data) {
  incident = data;
  document.title = `${data.reference} ${data.title} · ThreatLens`;
  document.getElementById("incident-title").textContent = `${data.reference} ${data.title}`;
  document.getElementById("incident-severity").replaceChildren(severityBadge(data.severity));
  document
    .getElementById("incident-status")
    .replaceChildren(el("span", { class: `status status-${data.status}`, text: label(data.status) }));
  const meta = (term, value) => el("span", {}, `${term} `, el("strong", {}, value));
  document.getElementById("incident-meta").replaceChildren(
    meta("Priority", `P${data.priority}`),
    meta("Owner", data.owner?.id === config.user.id ? "You" : person(data.owner)),
    meta("Created", timeEl(data.created_at)),
    meta("Updated", timeEl(data.updated_at)),
    ...(data.first_response_at ? [meta("First response", timeEl(data.first_response_at))] : []),
    ...(data.resolved_at ? [meta("Resolved", timeEl(data.resolved_at))] : []),
  );
  showMarkdown(document.getElementById("incident-description"), data.description_html, data.description);
  const merged = document.getElementById("merged-note");
  merged.hidden = !data.merged_into;
  if (data.merged_into) {
    merged.replaceChildren(
      "Merged into ",
      el("a", { href: `/incidents/${data.merged_into}/`, text: `incident #${data.merged_into}` }),
      "; its alerts, comments and watchers are there now.",
    );
  }
  const select = document.getElementById("new-status");
  if (select) {
    const names = config.incident_statuses || {};
    // In lifecycle order (the order of the statuses), not alphabetical.
    const order = Object.keys(names);
    const allowed = [...(config.incident_transitions?.[data.status] || [])].sort(
      (a, b) => order.indexOf(a) - order.indexOf(b),
    );
    // Nothing preselected: the first allowed status is not a default.
    select.replaceChildren(
      el("option", { value: "", text: "Choose…", disabled: true, selected: true }),
      ...allowed.map((s) => el("option", { value: s, text: names[s] || label(s) })),
    );
    select.disabled = !allowed.length;
    document.getElementById("set-status").disabled = true;
  }
}

async function loadIncident() {
  try {
    showIncident(await api.get(`${base}/`));
  } catch (error) {
    document.getElementById("incident-title").textContent =
      error.status === 404 ? "Incident not found" : "Incident";
    note.textContent = error.message;
  }
}

async function loadAlerts() {
  const page = await api.get("/api/alerts/", { incident: id, page_size: 200, ordering: "-received_at" });
  alertRows.clear();
  for (const alert of page.results) alertRows.upsert(alert, { append: true });
  document.getElementById("alerts-empty").hidden = page.results.length > 0;
}

async function loadTimeline() {
  const entries = await api.getAll(`${base}/timeline/`, { page_size: 200 }, 500);
  entries.sort((a, b) => new Date(b.created_at) - new Date(a.created_at) || b.id - a.id);
  const list = clear(document.getElementById("timeline"));
  for (const entry of entries) {
    list.append(
      el(
        "li",
        { class: entry.kind === "threat_detected" ? "timeline-threat" : "", dataset: { kind: entry.kind } },
        timeEl(entry.created_at, { short: true }),
        el(
          "div",
          {},
          el("span", { class: "who", text: entry.actor ? person(entry.actor) : "System" }),
          " ",
          el("span", { text: entry.message || label(entry.kind) }),
        ),
      ),
    );
  }
  if (!entries.length) list.append(el("li", { class: "muted", text: "Nothing yet." }));
}

async function loadComments() {
  const comments = await api.getAll(`${base}/comments/`, { page_size: 200 }, 500);
  const list = clear(document.getElementById("comments"));
  for (const comment of comments) {
    list.append(
      el(
        "li",
        {},
        el("div", { class: "comment-head" }, person(comment.author), " · ", timeEl(comment.created_at)),
        showMarkdown(el("div", { class: "comment-body markdown" }), comment.body_html, comment.body),
      ),
    );
  }
  if (!comments.length) list.append(el("li", { class: "muted", text: "No comments yet." }));
  list.scrollTop = list.scrollHeight;
}

async function loadObservables() {
  const items = await api.get(`${base}/observables/`);
  const list = clear(document.getElementById("observables"));
  for (const item of items) {
    const others = item.other_incidents;
    list.append(
      el(
        "li",
        {},
        el("span", { class: "muted small", text: item.type }),
        " ",
        pivotLink(item.type, item.value),
        " ",
        el("span", {
          class: others ? "seen-elsewhere" : "muted small",
          text: others ? `seen in ${others} other incident${others === 1 ? "" : "s"}` : "only here",
        }),
      ),
    );
  }
  if (!items.length) list.append(el("li", { class: "muted", text: "None in its alerts." }));
}

async function loadBlocks() {
  const rules = await api.get(`${base}/blocks/`);
  const list = clear(document.getElementById("blocks"));
  for (const rule of rules) {
    list.append(
      el(
        "li",
        {},
        pivotLink("domain", rule.domain),
        ` ${rule.action.toUpperCase()} · rule #${rule.id} · `,
        timeEl(rule.created_at, { short: true }),
        " ",
        config.perms.change_incidents
          ? el("button", {
              type: "button",
              class: "btn btn-quiet btn-small",
              text: "Undo",
              "aria-label": `Undo the block of ${rule.domain}`,
              onclick: async (event) => {
                event.currentTarget.disabled = true;
                try {
                  await api.del(`${base}/blocks/${rule.id}/`);
                  notify(`${rule.domain} is no longer blocked.`, "success");
                  await Promise.all([loadBlocks(), loadTimeline()]);
                } catch (error) {
                  notify(error.message, "error");
                }
              },
            })
          : null,
      ),
    );
  }
  if (!rules.length) list.append(el("li", { class: "muted", text: "None." }));
}

const refreshIncident = coalesce(
  () =>
    Promise.all([loadIncident(), loadTimeline(), loadComments(), loadObservables(), loadBlocks()]).catch(
      report,
    ),
  300,
);

function report(error) {
  notify(error.message || String(error), "error");
}

function loadAll() {
  return Promise.all([
    loadIncident(),
    loadAlerts(),
    loadTimeline(),
    loadComments(),
    loadObservables(),
    loadBlocks(),
  ]).catch(report);
}

// --- actions ------------------------------------------------------------------------------

document.getElementById("new-status")?.addEventListener("change", (event) => {
  document.getElementById("set-status").disabled = !event.currentTarget.value;
});
document.getElementById("set-status")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const status = document.getElementById("new-status").value;
  button.disabled = true;
  try {
    showIncident(await api.post(`${base}/status/`, { status }));
    note.textContent = `Status changed to ${label(status)}.`;
    refreshIncident();
  } catch (error) {
    note.textContent = error.message;
    notify(error.message, "error");
    button.disabled = false;
  }
});

const watchButton = document.getElementById("watch");
function showWatching() {
  watchButton.setAttribute("aria-pressed", String(watching));
  watchButton.textContent = watching ? "Watching" : "Watch";
  watchButton.title = watching
    ? "You receive this incident's updates. Press to stop."
    : "Receive this incident's updates even if you do not own it.";
}
watchButton.addEventListener("click", async () => {
  watchButton.disabled = true;
  try {
    const reply = watching ? await api.del(`${base}/watch/`) : await api.post(`${base}/watch/`);
    watching = reply.watching;
    showWatching();
    note.textContent = watching ? "You are watching this incident." : "You stopped watching.";
  } catch (error) {
    notify(error.message, "error");
  } finally {
    watchButton.disabled = false;
  }
});
showWatching();

const form = document.getElementById("comment-form");
form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = form.elements.body;
  const error = document.getElementById("comment-error");
  error.textContent = "";
  field.removeAttribute("aria-invalid");
  if (!field.value.trim()) {
    error.textContent = "Write something first.";
    field.setAttribute("aria-invalid", "true");
    field.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api.post(`${base}/comments/`, { body: field.value });
    field.value = "";
    refreshIncident();
  } catch (failure) {
    error.textContent = failure.fieldErrors.body?.[0] || failure.message;
    field.setAttribute("aria-invalid", "true");
  } finally {
    button.disabled = false;
  }
});

// --- case work: edit, merge, add alerts ------------------------------------------------------

function toggleForm(formId, buttonId, open) {
  const form = document.getElementById(formId);
  const button = document.getElementById(buttonId);
  form.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) form.querySelector("input, select, textarea")?.focus();
}

function showFieldErrors(form, prefix, error) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  let placed = false;
  for (const [name, messages] of Object.entries(error.fieldErrors)) {
    const target = document.getElementById(`${prefix}-${name}-error`);
    if (!target) continue;
    target.textContent = messages.join(" ");
    document.getElementById(`${prefix}-${name}`)?.setAttribute("aria-invalid", "true");
    placed = true;
  }
  return placed;
}

let assignees = null;

async function fillOwners(select) {
  const canReassign = config.perms.reassign_alerts;
  if (canReassign && assignees === null) {
    try {
      assignees = await api.get("/api/incidents/assignees/");
    } catch (error) {
      notify(`Could not list analysts: ${error.message}`, "error");
      assignees = [];
    }
  }
  const owner = incident.owner;
  const people = new Map();
  if (owner) people.set(owner.id, owner);
  if (canReassign) for (const user of assignees) people.set(user.id, user);
  else if (!owner) people.set(config.user.id, { id: config.user.id, username: config.user.username });
  select.replaceChildren(
    el("option", { value: "", text: "Nobody" }),
    ...[...people.values()].map((user) =>
      el("option", { value: user.id, text: user.id === config.user.id ? `${person(user)} (you)` : person(user) }),
    ),
  );
  select.value = owner ? String(owner.id) : "";
  // Without the reassign permission only an unowned incident's owner may change (to you).
  select.disabled = !canReassign && Boolean(owner);
}

const editForm = document.getElementById("edit-form");
document.getElementById("edit-open")?.addEventListener("click", async () => {
  if (!incident) return;
  const open = editForm.hidden;
  if (open) {
    editForm.elements.title.value = incident.title;
    editForm.elements.description.value = incident.description || "";
    editForm.elements.severity.value = incident.severity;
    editForm.elements.priority.value = String(incident.priority);
    await fillOwners(editForm.elements.owner);
    document.getElementById("edit-note").textContent = "";
  }
  toggleForm("edit-form", "edit-open", open);
});
document.getElementById("edit-cancel")?.addEventListener("click", () => toggleForm("edit-form", "edit-open", false));
editForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = editForm.elements;
  const changes = {};
  if (f.title.value.trim() !== incident.title) changes.title = f.title.value.trim();
  if (f.description.value !== (incident.description || "")) changes.description = f.description.value;
  if (f.severity.value !== incident.severity) changes.severity = f.severity.value;
  if (Number(f.priority.value) !== incident.priority) changes.priority = Number(f.priority.value);
  const owner = f.owner.value ? Number(f.owner.value) : null;
  if (!f.owner.disabled && owner !== (incident.owner?.id ?? null)) changes.owner = owner;
  const note = document.getElementById("edit-note");
  if (!Object.keys(changes).length) {
    note.textContent = "Nothing changed.";
    return;
  }
  const button = editForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    showIncident(await api.patch(`${base}/`, changes));
    toggleForm("edit-form", "edit-open", false);
    note.textContent = "";
    notify("Incident saved.", "success");
    refreshIncident();
  } catch (error) {
    if (!showFieldErrors(editForm, "e", error)) note.textContent = error.message;
    else note.textContent = "";
  } finally {
    button.disabled = false;
  }
});

const mergeForm = document.getElementById("merge-form");
document.getElementById("merge-open")?.addEventListener("click", async () => {
  const open = mergeForm.hidden;
  if (open) {
    const select = mergeForm.elements.source;
    select.replaceChildren(el("option", { value: "", text: "Loading…" }));
    try {
      const page = await api.get("/api/incidents/", {
        status: ["new", "investigating", "contained", "resolved"],
        ordering: "-updated_at",
        page_size: 200,
      });
      const others = page.results.filter((other) => other.id !== id);
      select.replaceChildren(
        el("option", { value: "", text: others.length ? "Choose an incident…" : "No other incident to merge" }),
        ...others.map((other) => el("option", { value: other.id, text: `${other.reference} ${other.title}` })),
      );
    } catch (error) {
      select.replaceChildren(el("option", { value: "", text: error.message }));
    }
    document.getElementById("merge-note").textContent = "";
  }
  toggleForm("merge-form", "merge-open", open);
});
document.getElementById("merge-cancel")?.addEventListener("click", () => toggleForm("merge-form", "merge-open", false));
mergeForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const note = document.getElementById("merge-note");
  const source = Number(mergeForm.elements.source.value);
  if (!source) {
    note.textContent = "Choose the incident to merge in.";
    return;
  }
  const button = mergeForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    showIncident(await api.post(`${base}/merge/`, { incident_ids: [source] }));
    toggleForm("merge-form", "merge-open", false);
    notify("Merged.", "success");
    await Promise.all([loadAlerts(), loadTimeline(), loadComments()]);
  } catch (error) {
    note.textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

const addForm = document.getElementById("add-alerts-form");
addForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = addForm.elements.alert_ids;
  const error = document.getElementById("add-alerts-error");
  const ids = field.value.split(/[\s,]+/).filter(Boolean).map(Number);
  error.textContent = "";
  field.removeAttribute("aria-invalid");
  if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 1)) {
    error.textContent = "Give alert ids: whole numbers separated by commas.";
    field.setAttribute("aria-invalid", "true");
    return;
  }
  try {
    const reply = await api.post(`${base}/alerts/`, { alert_ids: ids });
    showIncident(reply.incident);
    field.value = "";
    notify(`${reply.moved.length} alert(s) added.`, "success");
    await Promise.all([loadAlerts(), loadTimeline()]);
  } catch (failure) {
    error.textContent = failure.message;
    field.setAttribute("aria-invalid", "true");
  }
});

const blockForm = document.getElementById("block-form");
blockForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = blockForm.elements;
  const note = document.getElementById("block-note");
  note.textContent = "";
  for (const node of blockForm.querySelectorAll(".field-error")) node.textContent = "";
  const button = blockForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const rule = await api.post(`${base}/blocks/`, {
      domain: f.domain.value,
      action: f.action.value,
      reason: f.reason.value,
    });
    f.domain.value = "";
    f.reason.value = "";
    notify(`${rule.domain} is blocked (RPZ rule #${rule.id}).`, "success");
    await Promise.all([loadBlocks(), loadTimeline()]);
  } catch (error) {
    if (!showFieldErrors(blockForm, "b", error)) note.textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

// --- live ---------------------------------------------------------------------------------

function onEvent(event) {
  const data = event.data || {};
  if (event.eventType === "incident_updated" || event.eventType === "incident_created") {
    if (data.id === id) refreshIncident();
  } else if (event.eventType === "threat_detected") {
    // A DNS query hit a block this incident made (its timeline entry arrives with the
    // incident_updated that follows; this says so at once).
    if (data.incident_id === id && !event.replayed) {
      notify(`${data.client_ip || "A client"} queried ${data.domain}, blocked by this incident.`, "error");
      refreshIncident();
    }
  } else if (event.eventType === "new_alert" || event.eventType === "alert_updated") {
    if (alertRows.has(data.id) && data.incident !== id) {
      alertRows.remove(data.id); // moved to another incident
    } else if (data.incident === id || alertRows.has(data.id)) {
      alertRows.upsert(data, { fresh: !alertRows.has(data.id) && !event.replayed });
      document.getElementById("alerts-empty").hidden = true;
    }
  }
}

loadAll();
connectLive({
  page: `incident.${id}`,
  eventTypes: config.perms.receive_security
    ? ["incident_created", "incident_updated", "new_alert", "alert_updated", "threat_detected"]
    : [],
  onEvent,
  onResync: loadAll,
});
