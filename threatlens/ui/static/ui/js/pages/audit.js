// Audit log (admins): filters in the URL, pages of 50, the CSV export with the same filters.
import * as api from "../api.js";
import { clear, el, parseTime, timeEl } from "../dom.js";

const FIELDS = ["actor", "action", "target_type", "target_id", "since", "until", "ip", "search"];
const form = document.getElementById("audit-filters");
const tbody = document.getElementById("audit-rows");
const state = document.getElementById("audit-state");
const exportLink = document.getElementById("export");
let page = Number(new URLSearchParams(location.search).get("page")) || 1;

// datetime-local holds local time without a zone; the API wants ISO 8601 with one.
function toIso(local) {
  const date = parseTime(local);
  return date ? date.toISOString() : "";
}

function toLocalInput(iso) {
  const date = parseTime(iso);
  if (!date) return "";
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 19);
}

// Sockets connect and disconnect all day: their rows are hidden unless asked for.
const SOCKET_ACTIONS = "realtime.connect,realtime.disconnect";

function filters() {
  const result = {};
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    result[name] = name === "since" || name === "until" ? toIso(value) : value;
  }
  if (form.elements.sockets.checked) result.sockets = "1";
  return result;
}

/** The API's query: the filters, less our `sockets` switch, which becomes an exclusion. */
function apiQuery(query) {
  const { sockets, ...rest } = query;
  return sockets ? rest : { ...rest, exclude_action: SOCKET_ACTIONS };
}

function fillForm() {
  const query = new URLSearchParams(location.search);
  for (const name of FIELDS) {
    const value = query.get(name) || "";
    form.elements[name].value = name === "since" || name === "until" ? toLocalInput(value) : value;
  }
  form.elements.sockets.checked = query.get("sockets") === "1";
}

function changes(entry) {
  const parts = { old: entry.old_values, new: entry.new_values, details: entry.details };
  const shown = Object.fromEntries(
    Object.entries(parts).filter(([, value]) => value && Object.keys(value).length),
  );
  if (!Object.keys(shown).length) return el("span", { class: "muted", text: "—" });
  return el(
    "details",
    {},
    el("summary", { text: Object.keys(shown).join(", ") }),
    el("pre", { text: JSON.stringify(shown, null, 2) }),
  );
}

async function load() {
  const query = filters();
  exportLink.href = api.withParams("/api/audit/export.csv", apiQuery(query));
  const url = new URL(location.href);
  url.search = new URLSearchParams({ ...query, ...(page > 1 ? { page } : {}) }).toString();
  history.replaceState(null, "", url);
  state.textContent = "Loading…";
  let data;
  try {
    data = await api.get("/api/audit/", { ...apiQuery(query), page });
  } catch (error) {
    state.textContent = error.message;
    if (error.status === 404 && page > 1) {
      page = 1;
      load();
    }
    return;
  }
  clear(tbody);
  for (const entry of data.results) {
    const target = [entry.target_type, entry.target_id].filter(Boolean).join(" #");
    tbody.append(
      el(
        "tr",
        {},
        el("td", { "data-label": "Time" }, timeEl(entry.created_at)),
        el("td", { "data-label": "Actor", text: entry.actor_username || "system" }),
        el("td", { "data-label": "Action" }, el("code", { text: entry.action })),
        el("td", { "data-label": "Target" }, el("span", { title: target, text: entry.target_repr || target || "—" })),
        el("td", { "data-label": "Address", text: entry.ip_address || "—" }),
        el("td", { "data-label": "Changes" }, changes(entry)),
      ),
    );
  }
  document.getElementById("audit-empty").hidden = data.results.length > 0;
  document.getElementById("page-info").textContent = `Page ${page} · ${data.count} entries`;
  document.getElementById("prev").disabled = !data.previous;
  document.getElementById("next").disabled = !data.next;
  const filtered = Object.keys(query).some((name) => name !== "sockets");
  state.textContent = filtered ? "Filtered." : query.sockets ? "" : "Socket connections hidden.";
}

form.elements.sockets.addEventListener("change", () => {
  page = 1;
  load();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  page = 1;
  load();
});
form.addEventListener("reset", () => {
  setTimeout(() => {
    page = 1;
    load();
  });
});
document.getElementById("prev").addEventListener("click", () => {
  page = Math.max(1, page - 1);
  load();
});
document.getElementById("next").addEventListener("click", () => {
  page += 1;
  load();
});

fillForm();
load();
