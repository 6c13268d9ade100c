// DNS: the zones the user may read, their records, recent changes (live), record editing
// with the server's validation errors shown at each field, and bulk import with a progress
// bar driven by bulk_operation_progress. Zones can be created and deleted, imported from
// and exported to zone files; records are searched and kept in natural order (host2
// before host10, as the server sorts them). Whether the user may change a zone is the
// zone API's `can_change`, and a zone granted while the page is open appears live
// (`zone_access_changed`).
import * as api from "../api.js";
import { clear, coalesce, el, label, pageConfig, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const perms = config.perms;
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
  return Boolean(zone && zone.can_change === true);
}

/** The natural sort key of `dns/natural_sort.py`: text and digit runs, alternating. */
export function naturalKey(text) {
  return String(text)
    .toLowerCase()
    .split(/(\d+)/)
    .map((part, index) => (index % 2 ? Number(part) : part));
}

export function compareNatural(a, b) {
  const left = naturalKey(a);
  const right = naturalKey(b);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    if (left[i] !== right[i]) return left[i] < right[i] ? -1 : 1;
  }
  return left.length - right.length;
}

function compareRecords(a, b) {
  return compareNatural(a.name, b.name) || (a.record_type < b.record_type ? -1 : a.record_type > b.record_type ? 1 : 0) || a.id - b.id;
}

/** A zone from an event: events reach every reader, so `can_change` there is null; keep
 * what the zone API said for this user. */
function mergeZone(id, fresh) {
  const known = zones.get(id) || {};
  const merged = { ...known, ...fresh };
  if (fresh.can_change === null || fresh.can_change === undefined) merged.can_change = known.can_change;
  if (fresh.records_count === null || fresh.records_count === undefined) merged.records_count = known.records_count;
  return merged;
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
  const sorted = [...zones.values()].sort((a, b) => a.name.localeCompare(b.name));
  const next = zones.has(zoneId) ? zoneId : zones.has(wanted) ? wanted : sorted[0]?.id;
  if (next) await selectZone(next, { keepForm: next === zoneId });
  else showNoZone();
}

async function selectZone(id, { keepForm = false } = {}) {
  zoneId = id;
  const zone = zones.get(id);
  renderZones();
  const url = new URL(location.href);
  url.searchParams.set("zone", id);
  history.replaceState(null, "", url);
  document.getElementById("zone-title").textContent = zone.name;
  showZoneHead(zone);
  if (!keepForm) {
    closeForm();
    importForm.hidden = true;
  }
  await loadRecords();
}

function showZoneHead(zone) {
  // "you may edit" only where the zone API says this user can change the zone.
  document.getElementById("zone-access").textContent = mayChange(zone) ? "you may edit" : "read only";
  document.getElementById("zone-meta").textContent =
    `${zone.zone_type} zone · serial ${zone.serial} · SOA ${zone.primary_ns || "—"} ${zone.email || ""}`;
  const master = zone.zone_type === "master";
  // Record writes need change access to the zone, nothing more (dns.services): the
  // buttons follow `can_change`, so the label and what the user can do agree.
  addButton.hidden = !(mayChange(zone) && master);
  document.getElementById("bulk-panel").hidden = addButton.hidden;
  const exportLink = document.getElementById("export-zone");
  exportLink.hidden = !master;
  exportLink.href = `/api/dns/zones/${zone.id}/export/`;
  exportLink.setAttribute("download", `db.${zone.name}`);
  importButton.hidden = !(mayChange(zone) && master);
  if (importButton.hidden) importForm.hidden = true;
  deleteZoneButton.hidden = !(mayChange(zone) && perms.delete_zones);
}

function showNoZone() {
  zoneId = null;
  document.getElementById("zone-title").textContent = "Select a zone";
  document.getElementById("zone-access").textContent = "";
  document.getElementById("zone-meta").textContent = "";
  for (const id of ["add-record", "export-zone", "import-zone", "delete-zone", "bulk-panel"]) {
    document.getElementById(id).hidden = true;
  }
  importForm.hidden = true;
  closeForm();
  records.clear();
  clear(tbody);
  document.getElementById("records-empty").hidden = false;
  document.getElementById("record-count").textContent = "";
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
    actions.append(
      el("button", {
        type: "button",
        class: "btn btn-small",
        text: "Edit",
        "aria-label": `Edit ${record.name} ${record.record_type}`,
        onclick: () => openForm(records.get(record.id)?.record || record),
      }),
      el("button", {
        type: "button",
        class: "btn btn-small btn-danger",
        text: "Delete",
        "aria-label": `Delete ${record.name} ${record.record_type}`,
        onclick: () => deleteRecord(records.get(record.id)?.record || record),
      }),
    );
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

const filterForm = document.getElementById("record-filter");

function recordFilter() {
  return {
    search: filterForm.elements.search.value.trim(),
    record_type: filterForm.elements.record_type.value,
  };
}

/** Whether a record (from an event) belongs on screen under the current search, as the
 * REST `search` (name or value contains, any case) and `record_type` filters decide. */
function matchesFilter(record) {
  const { search, record_type: type } = recordFilter();
  if (type && record.record_type !== type) return false;
  if (!search) return true;
  const needle = search.toLowerCase();
  return [record.name, record.value].some((text) => String(text ?? "").toLowerCase().includes(needle));
}

function showCount() {
  const { search, record_type: type } = recordFilter();
  const n = records.size;
  document.getElementById("record-count").textContent =
    search || type ? `${n} matching record${n === 1 ? "" : "s"}` : `${n} record${n === 1 ? "" : "s"}`;
}

function upsertRecord(record, { fresh = false } = {}) {
  if (!matchesFilter(record)) {
    removeRecord(record.id);
    return;
  }
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
  // Keep the server's natural order (name, type, id) for new rows.
  const after = [...records.values()]
    .filter((r) => r.tr.isConnected)
    .find((r) => compareRecords(r.record, record) > 0);
  records.set(record.id, { record, tr });
  tbody.insertBefore(tr, after ? after.tr : null);
  document.getElementById("records-empty").hidden = true;
  showCount();
}

function removeRecord(id) {
  const row = records.get(id);
  if (!row) return;
  row.tr.remove();
  records.delete(id);
  document.getElementById("records-empty").hidden = records.size > 0;
  showCount();
}

async function loadRecords() {
  const id = zoneId;
  const filter = recordFilter();
  let list;
  try {
    // The server searches and sorts (natural order); the page shows what it answers.
    list = await api.getAll(`/api/dns/zones/${id}/records/`, { page_size: 1000, ...filter }, 5000);
  } catch (error) {
    notify(`Could not load records: ${error.message}`, "error");
    return;
  }
  if (id !== zoneId) return;
  const now = recordFilter();
  if (now.search !== filter.search || now.record_type !== filter.record_type) return; // a newer load runs
  records.clear();
  clear(tbody);
  for (const record of list) {
    const tr = el("tr", { dataset: { recordId: String(record.id) } }, renderRecord(record));
    records.set(record.id, { record, tr });
    tbody.append(tr);
  }
  document.getElementById("records-empty").hidden = list.length > 0;
  showCount();
}

const reloadRecordsSoon = coalesce(() => zoneId && loadRecords(), 300);
let searchTimer = null;
filterForm.addEventListener("submit", (event) => event.preventDefault());
filterForm.elements.search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => zoneId && loadRecords(), 250);
});
filterForm.elements.record_type.addEventListener("change", () => zoneId && loadRecords());

// --- zones: create, delete, import, export ----------------------------------------------------

const zoneForm = document.getElementById("zone-form");
const newZoneButton = document.getElementById("new-zone");
const deleteZoneButton = document.getElementById("delete-zone");
const importButton = document.getElementById("import-zone");
const importForm = document.getElementById("import-form");
const ZONE_FIELDS = ["name", "email", "description"];

function openZoneForm(open) {
  if (!zoneForm) return;
  zoneForm.hidden = !open;
  newZoneButton.setAttribute("aria-expanded", String(open));
  if (open) {
    zoneForm.reset();
    showZoneErrors(null);
    zoneForm.elements.name.focus();
  }
}

function showZoneErrors(error) {
  const box = document.getElementById("zone-form-error");
  box.hidden = true;
  for (const name of ZONE_FIELDS) {
    document.getElementById(`z-${name}-error`).textContent = "";
    zoneForm.elements[name].removeAttribute("aria-invalid");
  }
  if (!error) return;
  const other = [];
  for (const [name, messages] of Object.entries(error.fieldErrors)) {
    if (ZONE_FIELDS.includes(name)) {
      document.getElementById(`z-${name}-error`).textContent = messages.join(" ");
      zoneForm.elements[name].setAttribute("aria-invalid", "true");
    } else {
      other.push(...messages);
    }
  }
  if (other.length || !Object.keys(error.fieldErrors).length) {
    box.textContent = other.length ? other.join(" ") : error.message;
    box.hidden = false;
  }
}

if (zoneForm) {
  newZoneButton.addEventListener("click", () => openZoneForm(zoneForm.hidden));
  document.getElementById("zone-cancel").addEventListener("click", () => openZoneForm(false));
  zoneForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showZoneErrors(null);
    const body = { zone_type: "master" };
    for (const name of ZONE_FIELDS) body[name] = zoneForm.elements[name].value.trim();
    const button = zoneForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const zone = await api.post("/api/dns/zones/", body);
      zones.set(zone.id, zone);
      openZoneForm(false);
      notify(`Zone ${zone.name} created.`, "success");
      await selectZone(zone.id);
    } catch (error) {
      showZoneErrors(error);
    } finally {
      button.disabled = false;
    }
  });
}

deleteZoneButton.addEventListener("click", async () => {
  const zone = zones.get(zoneId);
  if (!zone) return;
  const count = zone.records_count ?? records.size;
  const question = `Delete the zone ${zone.name} and its ${count} record${count === 1 ? "" : "s"}? This cannot be undone.`;
  if (!window.confirm(question)) return;
  try {
    await api.del(`/api/dns/zones/${zone.id}/`, { version: zone.version });
    zones.delete(zone.id);
    notify(`Zone ${zone.name} deleted.`, "success");
    const url = new URL(location.href);
    url.searchParams.delete("zone");
    history.replaceState(null, "", url);
    zoneId = null;
    renderZones();
    await loadZones();
  } catch (error) {
    notify(error.message, "error");
  }
});

importButton.addEventListener("click", () => {
  importForm.hidden = !importForm.hidden;
  importButton.setAttribute("aria-expanded", String(!importForm.hidden));
  if (!importForm.hidden) {
    importForm.reset();
    document.getElementById("import-error").textContent = "";
    importForm.elements.file.focus();
  }
});
document.getElementById("import-cancel").addEventListener("click", () => {
  importForm.hidden = true;
  importButton.setAttribute("aria-expanded", "false");
});
importForm.elements.file.addEventListener("change", async () => {
  const file = importForm.elements.file.files[0];
  if (file) importForm.elements.zone_file.value = await file.text();
});
importForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = document.getElementById("import-error");
  errorBox.textContent = "";
  const text = importForm.elements.zone_file.value;
  if (!text.trim()) {
    errorBox.textContent = "Choose a zone file or paste one.";
    return;
  }
  const zone = zones.get(zoneId);
  const replace = importForm.elements.replace.checked;
  if (replace && !window.confirm(`Replace every record of ${zone.name} with the file's?`)) return;
  const button = importForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const reply = await api.post("/api/dns/zones/import/", { zone: zone.id, zone_file: text, replace });
    const summary = reply.import || {};
    notify(`Imported into ${zone.name}: ${summary.added ?? 0} added, ${summary.removed ?? 0} removed.`, "success");
    importForm.hidden = true;
    importButton.setAttribute("aria-expanded", "false");
    zones.set(zone.id, mergeZone(zone.id, reply.zone));
    await loadZones();
  } catch (error) {
    const fields = error.fieldErrors;
    errorBox.textContent = Object.entries(fields)
      .map(([key, messages]) => (key === "zone_file" || key === "non_field_errors" ? messages.join(" ") : `${label(key)}: ${messages.join(" ")}`))
      .join(" ") || error.message;
  } finally {
    button.disabled = false;
  }
});

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
  // Events name the user who made the change; never show a bare id.
  const who = !data.user_id ? "system" : Number(data.user_id) === config.user.id ? "you" : data.username || "another user";
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
  } else if (type === "zone_access_changed") {
    // Before the zone_* branch: this one is the user's own access, not a zone change.
    const id = Number(data.zone_id);
    if (data.action === "revoked") {
      refreshZone(id); // a group or an admin permission may still grant it
    } else {
      refreshZone(id, { announce: !zones.has(id) && !event.replayed });
    }
  } else if (type.startsWith("zone_")) {
    change(data, type, event.timestamp);
    const id = Number(data.zone_id);
    if (type === "zone_deleted") {
      zones.delete(id);
      renderZones();
      if (id === zoneId) loadZones();
    } else if (type === "zone_created" && !zones.has(id)) {
      // Its creator and admins hear of it: load it to learn this user's can_change.
      refreshZone(id);
    } else if (data.zone) {
      zones.set(id, mergeZone(id, data.zone));
      renderZones();
      if (id === zoneId) {
        showZoneHead(zones.get(id));
        // A zone file import announces the zone, not each record: reload them.
        if (!event.replayed) reloadRecordsSoon();
      }
    }
  }
}

/** Reload one zone from REST (what this user may do with it), or drop it when the
 * user may no longer read it. */
async function refreshZone(id, { announce = false } = {}) {
  let zone;
  try {
    zone = await api.get(`/api/dns/zones/${id}/`);
  } catch (error) {
    if (error.status === 404) {
      zones.delete(id);
      renderZones();
      if (id === zoneId) await loadZones();
      return;
    }
    notify(error.message, "error");
    return;
  }
  const before = zones.get(id);
  zones.set(id, zone);
  renderZones();
  if (id === zoneId) {
    showZoneHead(zone);
    if (before?.can_change !== zone.can_change) {
      // The rows' Edit and Delete follow the new access too.
      for (const row of records.values()) row.tr.replaceChildren(...renderRecord(row.record));
    }
  } else if (zoneId === null) {
    await selectZone(id);
  }
  if (announce) notify(`You now have access to the zone ${zone.name}.`, "info");
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
  "zone_access_changed",
];

connectLive({
  page: "dns",
  eventTypes: perms.receive_dns ? DNS_EVENTS : [],
  onEvent,
  onResync: resync,
});
