// Alerts: table rows, taking ownership, status changes and the detail dialog. Shared by
// the alert queue and the incident page. Writes go through the REST API (the same services
// the /ws/incidents socket calls), so conflicts come back as HTTP 409 naming the owner.
import * as api from "./api.js";
import { blockForm } from "./block_form.js";
import { clear, el, fill, label, parseTime, pivotLink, severityBadge, timeEl } from "./dom.js";
import { notify } from "./shell.js";

export const OPEN_STATUSES = ["new", "in_progress", "escalated"];

/** Is `incoming` at least as recent as `current` (events may arrive after a REST load)? */
export function isNewer(incoming, current) {
  if (!current) return true;
  const a = parseTime(incoming.updated_at);
  const b = parseTime(current.updated_at);
  return !a || !b || a.getTime() >= b.getTime();
}

export function ownerName(alert) {
  const owner = alert.assigned_analyst;
  return owner ? owner.full_name || owner.username : null;
}

/**
 * Renders and updates alert rows. `ctx`: {config, onChange(alert), columns?}
 */
export class AlertRows {
  constructor(tbody, ctx) {
    this.tbody = tbody;
    this.ctx = ctx;
    this.rows = new Map(); // id -> {alert, tr, note}
    // Bulk selection (ctx.selectable): ids, kept across live updates of their rows.
    this.selected = new Set();
  }

  /** Select or unselect a row; tells ctx.onSelect. */
  select(id, on) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    const box = this.rows.get(id)?.tr.querySelector("input.select-alert");
    if (box) box.checked = on;
    this.ctx.onSelect?.(this.selected);
  }

  selectAll(on) {
    for (const id of this.rows.keys()) {
      if (on) this.selected.add(id);
      else this.selected.delete(id);
      const box = this.rows.get(id).tr.querySelector("input.select-alert");
      if (box) box.checked = on;
    }
    this.ctx.onSelect?.(this.selected);
  }

  get me() {
    return this.ctx.config.user.id;
  }

  has(id) {
    return this.rows.has(id);
  }

  get(id) {
    return this.rows.get(id)?.alert;
  }

  /** Empty the table. With keepSelection the selected ids stay selected for the rows that
   * come back (a reload after the socket lost its place); `pruneSelection()` then drops
   * the others. */
  clear({ keepSelection = false } = {}) {
    this.rows.clear();
    clear(this.tbody);
    if (!keepSelection && this.selected.size) {
      this.selected.clear();
      this.ctx.onSelect?.(this.selected);
    }
  }

  /** Unselect the ids that have no row (left the list on a reload); tells ctx.onSelect. */
  pruneSelection() {
    for (const id of this.selected) if (!this.rows.has(id)) this.selected.delete(id);
    this.ctx.onSelect?.(this.selected);
  }

  /** Insert (at the top, or at the end with append) or update a row. */
  upsert(alert, { append = false, fresh = false, taken = false } = {}) {
    const row = this.rows.get(alert.id);
    if (row) {
      if (!isNewer(alert, row.alert)) return row;
      row.alert = alert;
      this.fill(row, { taken });
      return row;
    }
    const tr = el("tr", { dataset: { alertId: String(alert.id) } });
    const created = { alert, tr, note: null };
    this.rows.set(alert.id, created);
    this.fill(created, { taken });
    if (fresh) tr.classList.add("row-fresh");
    if (append) this.tbody.append(tr);
    else this.tbody.prepend(tr);
    return created;
  }

  remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    row.tr.remove();
    this.rows.delete(id);
    if (this.selected.delete(id)) this.ctx.onSelect?.(this.selected);
  }

  fill(row, { taken = false } = {}) {
    const { alert, tr } = row;
    const perms = this.ctx.config.perms;
    const ownerId = alert.assigned_analyst?.id ?? null;
    const mine = ownerId === this.me;
    const noteText = row.note?.textContent || "";
    const noteClass = row.note?.className || "row-note";
    row.note = el("span", { class: noteClass, role: "status", text: noteText });
    const actions = el("div", { class: "row-actions" });
    if (perms.take_alerts && OPEN_STATUSES.includes(alert.status)) {
      if (ownerId === null) {
        actions.append(
          el("button", {
            type: "button",
            class: "btn btn-primary btn-small",
            text: "Take",
            "aria-label": `Take alert ${alert.id}: ${alert.title}`,
            onclick: (event) => this.take(alert.id, event.currentTarget),
          }),
        );
      } else if (!mine && perms.reassign_alerts) {
        actions.append(
          el("button", {
            type: "button",
            class: "btn btn-small",
            text: "Take over",
            "aria-label": `Take over alert ${alert.id} from ${ownerName(alert)}`,
            onclick: (event) => this.take(alert.id, event.currentTarget),
          }),
        );
      }
    }
    if (mine || (ownerId !== null && perms.change_others_alerts)) {
      actions.append(this.statusControl(alert));
    }
    actions.append(
      el("button", {
        type: "button",
        class: "btn btn-quiet btn-small",
        text: "Details",
        "aria-label": `Details of alert ${alert.id}`,
        onclick: () => openAlertDialog(alert.id, this),
      }),
    );
    const owner = ownerId === null
      ? el("span", { class: "muted", text: "—" })
      : mine
        ? el("span", { class: "owner-you", text: "You" })
        : el("span", { text: ownerName(alert) });
    // The sub line: category, then the address and host as pivot links.
    const subParts = [
      alert.category,
      pivotLink("ip", alert.source_ip),
      pivotLink("host", alert.affected_host),
      pivotLink("user", alert.affected_user),
    ].filter(Boolean);
    const sub = subParts.flatMap((part, index) => (index ? [" · ", part] : [part]));
    tr.className = [
      tr.classList.contains("row-fresh") ? "row-fresh" : "",
      tr.classList.contains("row-cursor") ? "row-cursor" : "",
      taken ? "row-taken" : "",
    ]
      .filter(Boolean)
      .join(" ");
    const selectCell = this.ctx.selectable
      ? el(
          "td",
          { class: "select", "data-label": "" },
          el("input", {
            type: "checkbox",
            class: "select-alert",
            "aria-label": `Select alert ${alert.id}`,
            checked: this.selected.has(alert.id),
            onchange: (event) => this.select(alert.id, event.currentTarget.checked),
          }),
        )
      : null;
    tr.replaceChildren(
      ...(selectCell ? [selectCell] : []),
      el("td", { "data-label": "Severity" }, severityBadge(alert.severity)),
      el(
        "td",
        { class: "title", "data-label": "Alert" },
        el(
          "div",
          {},
          el("span", { class: "t", title: alert.title, text: `#${alert.id} ${alert.title}` }),
          el("span", { class: "sub" }, sub, alert.occurrence_count > 1 ? ` · seen ${alert.occurrence_count}×` : ""),
        ),
      ),
      el("td", { "data-label": "Source", text: alert.source || "—" }),
      el("td", { "data-label": "Received" }, timeEl(alert.received_at, { short: true })),
      el("td", { "data-label": "Status" }, el("span", { class: `status status-${alert.status}`, text: label(alert.status) })),
      el("td", { "data-label": "Owner" }, owner),
      el("td", { class: "actions", "data-label": "" }, el("div", {}, actions, row.note)),
    );
  }

  statusControl(alert) {
    const allowed = this.ctx.config.alert_transitions?.[alert.status] || [];
    if (!allowed.length) return el("span");
    const names = this.ctx.config.alert_statuses || {};
    const id = `status-${alert.id}`;
    // Lifecycle order, and nothing chosen until the analyst chooses: a preselected first
    // option ("Escalated") was one click away from escalating by accident.
    const order = Object.keys(names);
    const sorted = [...allowed].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    const select = el(
      "select",
      { id, "aria-label": `New status for alert ${alert.id}` },
      el("option", { value: "", text: "Status…", disabled: true, selected: true }),
      sorted.map((status) => el("option", { value: status, text: names[status] || label(status) })),
    );
    const button = el("button", {
      type: "button",
      class: "btn btn-small",
      text: "Set",
      disabled: true,
      onclick: (event) => this.setStatus(alert.id, select.value, event.currentTarget),
    });
    select.addEventListener("change", () => {
      button.disabled = !select.value;
    });
    return el("span", { class: "inline-select" }, select, button);
  }

  note(id, text, kind = "") {
    const row = this.rows.get(id);
    if (!row) return;
    row.note.className = `row-note ${kind}`.trim();
    row.note.textContent = text;
  }

  async take(id, button) {
    if (button) {
      button.disabled = true;
      button.textContent = "Taking…";
    }
    try {
      const reply = await api.post(`/api/alerts/${id}/take-ownership/`);
      const incident = reply.incident || null;
      this.upsert(reply.alert);
      this.note(
        id,
        incident ? `Yours · new incident ${incident.reference}` : `Yours · ${reply.alert.incident_reference || "incident"}`,
      );
      notify(`Alert #${id} is yours.`, "success");
      this.ctx.onChange?.(reply.alert);
    } catch (error) {
      if (error.status === 409) {
        const owner = error.body?.owner;
        const current = this.get(id);
        if (owner && current) {
          // Show the owner now (same updated_at as the row: anything newer wins)...
          this.upsert(
            { ...current, assigned_analyst: { id: owner.id, username: owner.username } },
            { taken: true },
          );
        }
        const who = owner ? owner.username : null;
        this.note(id, who ? `Already taken by ${who}` : error.message, "error");
        notify(who ? `Alert #${id} was already taken by ${who}.` : error.message, "error");
        // ...then the whole row as it is now (status, owner's name): the socket may be
        // slow or offline, and a row saying "New" for an alert in progress misleads.
        this.refresh(id, { taken: true });
      } else {
        this.note(id, error.message, "error");
        notify(error.message, "error");
      }
      if (button?.isConnected) {
        button.disabled = false;
        button.textContent = "Take";
      }
    }
  }

  /** Reload one row from the API (after a conflict: the row was stale). */
  async refresh(id, { taken = false } = {}) {
    try {
      const alert = await api.get(`/api/alerts/${id}/`);
      if (this.has(id)) this.upsert(alert, { taken });
    } catch {
      // The socket's alert_updated still brings it.
    }
  }

  async setStatus(id, status, button) {
    if (button) button.disabled = true;
    try {
      const reply = await api.post(`/api/alerts/${id}/status/`, { status });
      this.upsert(reply.alert);
      this.note(id, `Status: ${label(reply.status)}`);
      this.ctx.onChange?.(reply.alert);
    } catch (error) {
      this.note(id, error.message, "error");
      notify(error.message, "error");
      if (button?.isConnected) button.disabled = false;
    }
  }
}

function item(term, value) {
  if (value === undefined || value === null || value === "") return [];
  return [el("dt", { text: term }), el("dd", {}, value)];
}

/** "title by author" linking to the rule's reference, as the Detection Rule License asks. */
function sigmaAttribution(sigma) {
  if (!sigma || !sigma.title) return null;
  const title = sigma.link
    ? el("a", { href: sigma.link, rel: "noopener noreferrer", target: "_blank", text: sigma.title })
    : sigma.title;
  return el("span", {}, title, sigma.author ? ` by ${sigma.author}` : "", el("span", { class: "muted small", text: ` (${sigma.id})` }));
}

function attackText(attack) {
  if (!attack) return null;
  const parts = [...(attack.techniques || []), ...(attack.tactics || []).map((tactic) => tactic.name)];
  return parts.length ? parts.join(", ") : null;
}

/** Open the detail dialog of an alert (fresh from the API). */
export async function openAlertDialog(id, rows) {
  const dialog = document.getElementById("alert-dialog");
  const body = document.getElementById("alert-dialog-body");
  const title = document.getElementById("alert-dialog-title");
  if (!dialog.dataset.bound) {
    dialog.dataset.bound = "1";
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  }
  title.textContent = `Alert #${id}`;
  clear(body).append(el("p", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  let alert;
  try {
    alert = await api.get(`/api/alerts/${id}/`);
  } catch (error) {
    clear(body).append(el("p", { class: "notice notice-error", text: error.message }));
    return;
  }
  if (rows?.has(alert.id)) rows.upsert(alert);
  title.textContent = `Alert #${alert.id}: ${alert.title}`;
  const details = alert.details && Object.keys(alert.details).length ? alert.details : null;
  const analysis = details?.analysis;
  const recommendations = Array.isArray(details?.recommendations) ? details.recommendations : [];
  fill(
    body,
    el(
      "dl",
      {},
      item("Severity", severityBadge(alert.severity)),
      item("Status", label(alert.status)),
      item("Owner", ownerName(alert) || "nobody"),
      item(
        "Incident",
        alert.incident
          ? el("a", { href: `/incidents/${alert.incident}/`, text: alert.incident_reference || `#${alert.incident}` })
          : null,
      ),
      item("Category", alert.category),
      item("Source", [alert.source, alert.source_system].filter(Boolean).join(" / ")),
      item("Rule", [alert.rule_id, alert.rule_name].filter(Boolean).join(" — ")),
      item("Sigma rule", sigmaAttribution(details?.sigma)),
      item("ATT&CK", attackText(details?.attack)),
      item("Source IP", alert.source_ip && [pivotLink("ip", alert.source_ip), alert.source_port ? `:${alert.source_port}` : ""]),
      item("Destination", alert.destination_ip && [pivotLink("ip", alert.destination_ip), alert.destination_port ? `:${alert.destination_port}` : ""]),
      item("Host", pivotLink("host", alert.affected_host)),
      item("User", pivotLink("user", alert.affected_user)),
      item("Risk score", alert.risk_score),
      item("Confidence", alert.confidence),
      item("Seen", `${alert.occurrence_count}×`),
      item("Detected", timeEl(alert.detected_at)),
      item("Received", timeEl(alert.received_at)),
      item("Last seen", timeEl(alert.last_seen_at)),
      item("Updated", timeEl(alert.updated_at)),
    ),
    alert.description ? [el("h3", { text: "Description" }), el("p", { class: "comment-body", text: alert.description })] : null,
    analysis ? [el("h3", { text: "Analysis" }), el("pre", { text: JSON.stringify(analysis, null, 2) })] : null,
    recommendations.length
      ? [
          el("h3", { text: "Recommendations" }),
          el("ul", { class: "keep-lines" }, recommendations.map((r) => el("li", { text: String(r) }))),
        ]
      : null,
    details ? el("details", {}, el("summary", { text: "All details" }), el("pre", { text: JSON.stringify(details, null, 2) })) : null,
    rows?.ctx.config.perms.change_incidents ? moveForm(alert, rows) : null,
    alert.incident && typeof details?.domain === "string" && rows?.ctx.config.perms.add_rpz_rules
      ? blockForm({ domain: details.domain, incidentId: alert.incident })
      : null,
  );
}

/** "Move to incident": the alert joins another open incident (both timelines record it). */
function moveForm(alert, rows) {
  const select = el("select", { id: "move-incident", name: "incident" }, el("option", { value: "", text: "Loading…" }));
  const note = el("span", { class: "small", role: "status" });
  const form = el(
    "form",
    { class: "move-form", novalidate: true },
    el("h3", { text: alert.incident ? "Move to another incident" : "Add to an incident" }),
    el("div", { class: "field" }, el("label", { for: "move-incident", text: "Incident" }), select),
    el("button", { type: "submit", class: "btn", text: alert.incident ? "Move" : "Add" }),
    note,
  );
  api
    .get("/api/incidents/", { status: ["new", "investigating", "contained"], ordering: "-updated_at", page_size: 100 })
    .then((page) => {
      const others = page.results.filter((incident) => incident.id !== alert.incident);
      select.replaceChildren(
        el("option", { value: "", text: others.length ? "Choose…" : "No other open incident" }),
        ...others.map((incident) => el("option", { value: incident.id, text: `${incident.reference} ${incident.title}` })),
      );
    })
    .catch((error) => select.replaceChildren(el("option", { value: "", text: error.message })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) {
      note.textContent = "Choose an incident.";
      return;
    }
    try {
      const moved = await api.post(`/api/alerts/${alert.id}/move/`, { incident: Number(select.value) });
      note.textContent = `Moved to ${moved.incident_reference}.`;
      if (rows.has(moved.id)) rows.upsert(moved);
      rows.ctx.onChange?.(moved);
    } catch (error) {
      note.textContent = error.message;
    }
  });
  return form;
}
