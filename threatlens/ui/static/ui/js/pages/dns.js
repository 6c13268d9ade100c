// DNS: the zones the user may read, their records, recent changes (live), record editing
// with the server's validation errors shown at each field, and bulk import with a progress
// bar driven by bulk_operation_progress.
import * as api from "../api.js";
import { clear, el, label, pageConfig, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const perms = config.perms;
const changeable = new Set(config.changeable_zone_ids || []);
const FIELDS = ["name", "record_type", "value", "ttl", "priority", "weight", "port"];
const NUMBERS = new Set(["ttl", "priority", "weight", "port"]);
const MAX_CHANGES = 50;

const zoneList = document.getElementById("zones");
const tbody = document.getElementById("records");
const form = document.getElementById("record-form");
const addButton = document.getElementById("add-record");
const zones = new Map(); // id -> zone
const records = new Map(); // id -> {record, tr}
let zoneId = null;
let editing = null; // the record being edited, or null when adding
let bulkOperation = null;

function mayChange(zone) {
  return zone && changeable.has(zone.id);
}

// --- zones ----------------------------------------------------------------------------------

function renderZones() {
  clear(zoneList);
  const sorted = [...zones.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const zone of sorted) {
    zoneList.append(
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            "aria-current": zone.id === zoneId ? "true" : "false",
            onclick: () => selectZone(zone.id),
          },
          el("span", { text: zone.name }),
          el("span", {
            class: "count",
            text: `${zone.zone_type}${zone.records_count !== null && zone.records_count !== undefined ? ` · ${zone.records_count}` : ""}`,
          }),
        ),
      ),
    );
  }
  document.getElementById("zones-empty").hidden = zones.size > 0;
}

async function loadZones() {
  const list = await api.getAll("/api/dns/zones/", { page_size: 500 }, 2000);
  zones.clear();
  for (const zone of list) zones.set(zone.id, zone);
  renderZones();
  const wanted = Number(new URLSearchParams(location.search).get("zone"));
  const next = zones.has(zoneId) ? zoneId : zones.has(wanted) ? wanted : list[0]?.id;
  if (next) await selectZone(next, { keepForm: next === zoneId });
}

async function selectZone(id, { keepForm = false } = {}) {
  zoneId = id;
  const zone = zones.get(id);
  renderZones();
  const url = new URL(location.href);
  url.searchParams.set("zone", id);
  history.replaceState(null, "", url);
  document.getElementById("zone-title").textContent = zone.name;
  document.getElementById("zone-access").textContent = mayChange(zone) ? "you may edit" : "read only";
  document.getElementById("zone-meta").textContent =
    `${zone.zone_type} zone · serial ${zone.serial} · SOA ${zone.primary_ns || "—"} ${zone.email || ""}`;
  addButton.hidden = !(mayChange(zone) && perms.add_records && zone.zone_type === "master");
  document.getElementById("bulk-panel").hidden = addButton.hidden;
  if (!keepForm) closeForm();
  await loadRecords();
}

// --- records --------------------------------------------------------------------------------

function recordValue(record) {
  const parts = [];
  if (record.priority !== null && record.priority !== undefined) parts.push(record.priority);
  if (record.weight !== null && record.weight !== undefined) parts.push(record.weight);
  if (record.port !== null && record.port !== undefined) parts.push(record.port);
  parts.push(record.value);
  return parts.join(" ");
}

function renderRecord(record) {
  const zone = zones.get(zoneId);
  const actions = el("div", { class: "row-actions" });
  if (mayChange(zone)) {
    if (perms.change_records) {
      actions.append(
        el("button", {
          type: "button",
          class: "btn btn-small",
          text: "Edit",
          "aria-label": `Edit ${record.name} ${record.record_type}`,
          onclick: () => openForm(records.get(record.id)?.record || record),
        }),
      );
    }
    if (perms.delete_records) {
      actions.append(
        el("button", {
          type: "button",
          class: "btn btn-small btn-danger",
          text: "Delete",
          "aria-label": `Delete ${record.name} ${record.record_type}`,
          onclick: () => deleteRecord(records.get(record.id)?.record || record),
        }),
      );
    }
  }
  return [
    el("td", { "data-label": "Name" }, el("span", { title: record.fqdn, text: record.name })),
    el("td", { "data-label": "Type", text: record.record_type }),
    el("td", { class: "title", "data-label": "Value" }, el("span", { class: "t", title: recordValue(record), text: recordValue(record) })),
    el("td", { "data-label": "TTL", text: record.ttl ?? "default" }),
    el("td", { "data-label": "Updated" }, timeEl(record.updated_at, { short: true })),
    el("td", { class: "actions", "data-label": "" }, actions),
  ];
}

function upsertRecord(record, { fresh = false } = {}) {
  const row = records.get(record.id);
  if (row) {
    if ((record.version ?? 0) < (row.record.version ?? 0)) return;
    row.record = record;
    row.tr.replaceChildren(...renderRecord(record));
    if (fresh) {
      row.tr.classList.remove("row-fresh");
      void row.tr.offsetWidth; // restart the highlight
      row.tr.classList.add("row-fresh");
    }
    return;
  }
  const tr = el("tr", { class: fresh ? "row-fresh" : "", dataset: { recordId: String(record.id) } }, renderRecord(record));
  records.set(record.id, { record, tr });
  // Keep the server's order (name, type) for new rows.
  const after = [...records.values()]
    .filter((r) => r.tr.isConnected)
    .find((r) => `${r.record.name}\u0000${r.record.record_type}` > `${record.name}\u0000${record.record_type}`);
  tbody.insertBefore(tr, after ? after.tr : null);
  document.getElementById("records-empty").hidden = true;
}

function removeRecord(id) {
  const row = records.get(id);
  if (!row) return;
  row.tr.remove();
  records.delete(id);
  document.getElementById("records-empty").hidden = records.size > 0;
}

async function loadRecords() {
  const id = zoneId;
  let list;
  try {
    list = await api.getAll(`/api/dns/zones/${id}/records/`, { page_size: 1000 }, 5000);
  } catch (error) {
    notify(`Could not load records: ${error.message}`, "error");
    return;
  }
  if (id !== zoneId) return;
  records.clear();
  clear(tbody);
  for (const record of list) {
    const tr = el("tr", { dataset: { recordId: String(record.id) } }, renderRecord(record));
    records.set(record.id, { record, tr });
    tbody.append(tr);
  }
  document.getElementById("records-empty").hidden = list.length > 0;
}

// --- the record form ------------------------------------------------------------------------

function showTypeFields() {
  const type = form.elements.record_type.value;
  for (const field of form.querySelectorAll("[data-for]")) {
    field.hidden = !field.dataset.for.split(" ").includes(type);
  }
}

function clearErrors() {
  const box = document.getElementById("record-form-error");
  box.hidden = true;
  box.textContent = "";
  for (const name of FIELDS) {
    document.getElementById(`r-${name}-error`).textContent = "";
    form.elements[name].removeAttribute("aria-invalid");
  }
}

function openForm(record) {
  editing = record || null;
  clearErrors();
  document.getElementById("record-form-title").textContent = record
    ? `Edit ${record.name} ${record.record_type}`
    : "Add record";
  for (const name of FIELDS) {
    const value = record ? record[name] : "";
    form.elements[name].value = value === null || value === undefined ? "" : String(value);
  }
  if (!record) form.elements.record_type.value = "A";
  form.elements.record_type.disabled = Boolean(record);
  showTypeFields();
  form.hidden = false;
  form.elements.name.focus();
}

function closeForm() {
  editing = null;
  form.hidden = true;
}

function formBody() {
  const body = {};
  for (const name of FIELDS) {
    if (form.elements[name].closest("[data-for]")?.hidden) continue;
    if (name === "record_type" && editing) continue;
    const raw = form.elements[name].value.trim();
    if (NUMBERS.has(name)) {
      if (raw === "") {
        if (editing || name !== "ttl") body[name] = null;
        continue;
      }
      body[name] = /^-?\d+$/.test(raw) ? Number(raw) : raw; // the server says what is wrong
    } else {
      body[name] = raw;
    }
  }
  return body;
}

function showErrors(error) {
  const fieldErrors = error.fieldErrors;
  let shown = false;
  const other = [];
  for (const [name, messages] of Object.entries(fieldErrors)) {
    const target = document.getElementById(`r-${name}-error`);
    if (target && !form.elements[name].closest("[data-for]")?.hidden) {
      target.textContent = messages.join(" ");
      form.elements[name].setAttribute("aria-invalid", "true");
      if (!shown) form.elements[name].focus();
      shown = true;
    } else {
      other.push(...messages.map((m) => (name === "non_field_errors" ? m : `${label(name)}: ${m}`)));
    }
  }
  if (other.length || !shown) {
    const box = document.getElementById("record-form-error");
    box.textContent = other.length ? other.join(" ") : error.message;
    box.hidden = false;
  }
}

form.elements.record_type.addEventListener("change", showTypeFields);
document.getElementById("record-cancel").addEventListener("click", closeForm);
addButton.addEventListener("click", () => openForm(null));

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  const base = `/api/dns/zones/${zoneId}/records/`;
  try {
    const saved = editing
      ? await api.patch(`${base}${editing.id}/`, { ...formBody(), version: editing.version })
      : await api.post(base, formBody());
    upsertRecord(saved, { fresh: true });
    notify(`${saved.name} ${saved.record_type} saved.`, "success");
    closeForm();
  } catch (error) {
    if (error.status === 409 && error.body?.current) {
      // Someone changed it meanwhile: show their version, keep the form open.
      upsertRecord(error.body.current);
      openForm(error.body.current);
      const box = document.getElementById("record-form-error");
      box.textContent = "Someone else changed this record meanwhile. The form now shows the current values; save again to overwrite them.";
      box.hidden = false;
    } else {
      showErrors(error);
    }
  } finally {
    button.disabled = false;
  }
});

async function deleteRecord(record) {
  if (!window.confirm(`Delete ${record.fqdn || record.name} ${record.record_type} ${record.value}?`)) return;
  try {
    await api.del(`/api/dns/zones/${zoneId}/records/${record.id}/`, { version: record.version });
    removeRecord(record.id);
    notify(`${record.name} ${record.record_type} deleted.`, "success");
  } catch (error) {
    notify(error.message, "error");
  }
}

// --- bulk import ----------------------------------------------------------------------------

const bulkForm = document.getElementById("bulk-form");
const bulkError = document.getElementById("bulk-error");
const bulkStatus = document.getElementById("bulk-status");
const progress = document.getElementById("bulk-progress");

/** "name TYPE value [ttl]" lines as record bodies; MX and SRV carry their numbers first. */
export function parseLines(text) {
  const items = [];
  const errors = [];
  text.split("\n").forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith(";") || trimmed.startsWith("#")) return;
    const tokens = trimmed.split(/\s+/);
    const [name, rawType, ...rest] = tokens;
    const type = (rawType || "").toUpperCase();
    const numbers = { MX: ["priority"], SRV: ["priority", "weight", "port"] }[type] || [];
    if (!type || rest.length < numbers.length + 1) {
      errors.push(`Line ${index + 1}: expected "name TYPE value [ttl]".`);
      return;
    }
    const item = { name, record_type: type };
    numbers.forEach((field, position) => {
      item[field] = /^\d+$/.test(rest[position]) ? Number(rest[position]) : rest[position];
    });
    const tail = rest.slice(numbers.length);
    if (type === "TXT") {
      item.value = tail.join(" ");
    } else {
      item.value = tail[0];
      if (tail[1] !== undefined) item.ttl = /^\d+$/.test(tail[1]) ? Number(tail[1]) : tail[1];
      if (tail.length > 2) {
        errors.push(`Line ${index + 1}: too many fields.`);
        return;
      }
    }
    item.line = index + 1;
    items.push(item);
  });
  return { items, errors };
}

function setProgress(fraction, text) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  progress.firstElementChild.style.width = `${percent}%`;
  progress.setAttribute("aria-valuenow", String(percent));
  progress.setAttribute("aria-valuetext", `${percent}%`);
  if (text) bulkStatus.textContent = text;
}

let bulkLines = [];

bulkForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  bulkError.textContent = "";
  const { items, errors } = parseLines(bulkForm.elements.lines.value);
  if (errors.length || !items.length) {
    bulkError.textContent = errors.length ? errors.slice(0, 5).join(" ") : "Nothing to import.";
    return;
  }
  bulkLines = items.map((item) => item.line);
  const button = bulkForm.querySelector("button[type=submit]");
  button.disabled = true;
  setProgress(0, `Starting the import of ${items.length} record${items.length === 1 ? "" : "s"}…`);
  try {
    const reply = await api.post(`/api/dns/zones/${zoneId}/records/bulk/`, {
      operation: "create",
      records: items.map(({ line, ...item }) => item),
    });
    bulkOperation = { id: String(reply.operation_id), zone: zoneId, button };
    setProgress(0, `Queued (${reply.total} records)…`);
  } catch (error) {
    bulkError.textContent = Object.values(error.fieldErrors).flat().join(" ") || error.message;
    setProgress(0, "");
    button.disabled = false;
  }
});

function bulkProgress(data) {
  if (!bulkOperation || String(data.operation_id) !== bulkOperation.id) return;
  setProgress(Number(data.progress) || 0, `${label(data.stage)}: ${data.processed} of ${data.total}`);
}

function bulkComplete(data, { fromEvent = true } = {}) {
  if (fromEvent) {
    // Everyone who reads the zone hears of the job (its records are not announced one by one).
    change(
      {
        ...data,
        action: data.status === "succeeded" ? `bulk ${data.operation}` : "bulk failed",
        record_name: `${data.total} record${data.total === 1 ? "" : "s"} in ${data.zone_name}`,
        record_type: "",
      },
      "bulk_operation_complete",
    );
  }
  if (bulkOperation && String(data.operation_id) === bulkOperation.id) {
    const { button } = bulkOperation;
    bulkOperation = null;
    button.disabled = false;
    if (data.status === "succeeded") {
      setProgress(1, `Done: ${data.created.length} created.`);
      bulkForm.elements.lines.value = "";
      notify(`Bulk import into ${data.zone_name} finished.`, "success");
    } else {
      setProgress(0, "Failed: nothing was changed.");
      bulkError.textContent = (data.errors || [])
        .slice(0, 10)
        .map((item) => {
          const where =
            item.index === null || item.index === undefined
              ? ""
              : `Line ${bulkLines[item.index] ?? item.index + 1}: `;
          const messages = Object.entries(item.errors || {}).map(([field, list]) =>
            field === "non_field_errors"
              ? [].concat(list).join(" ")
              : `${label(field)}: ${[].concat(list).join(" ")}`,
          );
          return where + messages.join("; ");
        })
        .join(" ");
    }
  }
  if (data.status === "succeeded") {
    // Reload the counts, and the records when it is the zone on screen.
    loadZones().catch((error) => notify(error.message, "error"));
  }
}

async function checkBulk() {
  if (!bulkOperation) return;
  try {
    const job = await api.get(`/api/dns/bulk-operations/${bulkOperation.id}/`);
    if (job.status === "succeeded" || job.status === "failed") {
      bulkComplete(
        {
          operation_id: job.id,
          operation: job.operation,
          status: job.status,
          total: job.total,
          created: job.result?.created || [],
          errors: job.errors || [],
          zone_id: job.zone,
          zone_name: job.zone_name,
        },
        { fromEvent: false },
      );
    } else {
      bulkProgress({ operation_id: job.id, progress: job.progress, stage: job.status, processed: job.processed, total: job.total });
    }
  } catch {
    // The events will tell.
  }
}

// --- live -----------------------------------------------------------------------------------

function change(data, eventType, at) {
  const list = document.getElementById("changes");
  const action = data.action || eventType.split("_").pop();
  const what = eventType.startsWith("zone")
    ? `zone ${data.zone_name}`
    : [data.record_name, data.record_type, data.record_value].filter(Boolean).join(" ");
  const who = !data.user_id ? "system" : Number(data.user_id) === config.user.id ? "you" : `user #${data.user_id}`;
  list.prepend(
    el(
      "li",
      {},
      timeEl(data.timestamp || at, { short: true }),
      el("span", { class: `action status status-${action.split(" ")[0]}`, title: action, text: action }),
      el("span", { title: `${what} (by ${who})`, text: `${what}` }, el("span", { class: "muted who", text: ` · ${who}` })),
    ),
  );
  while (list.children.length > MAX_CHANGES) list.lastElementChild.remove();
}

function onEvent(event) {
  const data = event.data || {};
  const type = event.eventType;
  if (type === "bulk_operation_progress") return bulkProgress(data);
  if (type === "bulk_operation_complete") return bulkComplete(data);
  if (type.startsWith("record_")) {
    change(data, type, event.timestamp);
    const zone = zones.get(Number(data.zone_id));
    if (zone && typeof zone.records_count === "number" && type !== "record_updated" && !event.replayed) {
      zone.records_count += type === "record_created" ? 1 : -1;
      renderZones();
    }
    if (Number(data.zone_id) !== zoneId) return;
    if (type === "record_deleted") removeRecord(Number(data.record_id));
    else if (data.record) upsertRecord(data.record, { fresh: !event.replayed });
  } else if (type.startsWith("zone_")) {
    change(data, type, event.timestamp);
    const id = Number(data.zone_id);
    if (type === "zone_deleted") {
      zones.delete(id);
      renderZones();
      if (id === zoneId) loadZones();
    } else if (data.zone) {
      zones.set(id, { ...zones.get(id), ...data.zone });
      renderZones();
      if (id === zoneId) {
        document.getElementById("zone-meta").textContent =
          `${data.zone.zone_type} zone · serial ${data.zone.serial} · SOA ${data.zone.primary_ns || "—"} ${data.zone.email || ""}`;
      }
    }
  }
}

async function resync() {
  await loadZones().catch((error) => notify(error.message, "error"));
  await checkBulk();
}

loadZones().catch((error) => notify(`Could not load zones: ${error.message}`, "error"));
const DNS_EVENTS = [
  "zone_created",
  "zone_updated",
  "zone_deleted",
  "record_created",
  "record_updated",
  "record_deleted",
  "bulk_operation_progress",
  "bulk_operation_complete",
];

connectLive({
  page: "dns",
  eventTypes: perms.receive_dns ? DNS_EVENTS : [],
  onEvent,
  onResync: resync,
});
