// Sigma rules: list with state, techniques and cost; enable/disable; upload.
import * as api from "../api.js";
import { clear, el, pageConfig, severityBadge } from "../dom.js";

const config = pageConfig();
const form = document.getElementById("rule-filters");
const tbody = document.getElementById("rules");
const state = document.getElementById("rules-state");
const LEVELS = { informational: "low", low: "low", medium: "medium", high: "high", critical: "critical" };
const FILTERS = ["state", "technique", "search"];

// The filter is in the URL (links from the coverage page: ?state=loaded&technique=T1110).
const params = new URLSearchParams(location.search);
for (const name of FILTERS) if (params.has(name)) form.elements[name].value = params.get(name);

function filterToUrl(values) {
  const url = new URL(location.href);
  url.search = "";
  for (const [name, value] of Object.entries(values)) url.searchParams.set(name, value);
  history.replaceState(null, "", url);
}

function filters() {
  const result = {};
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) result[name] = value;
  }
  return result;
}

function stateCell(rule) {
  const badge = el("span", { class: `status rule-${rule.state}`, text: rule.state });
  if (rule.state !== "refused") return badge;
  return el("span", {}, badge, " ", el("span", { class: "muted small", text: `${rule.refusal_code}: ${rule.refusal_reason}` }));
}

// A shipped correlation that runs in place of a built-in rule while it is loaded.
function replacesNote(rule) {
  if (!rule.replaces) return null;
  const text = rule.state === "loaded"
    ? `Replaces the built-in rule ${rule.replaces}, which does not run`
    : `Replaces the built-in rule ${rule.replaces} when loaded (the built-in runs now)`;
  return el("div", { class: "muted small rule-replaces", text });
}

function toggle(rule) {
  if (!config.perms.change_sigma_rules || rule.state === "refused") return null;
  const enable = rule.state === "disabled";
  return el("button", {
    type: "button",
    class: "btn btn-small",
    text: enable ? "Enable" : "Disable",
    "aria-label": `${enable ? "Enable" : "Disable"} ${rule.title}`,
    onclick: async () => {
      try {
        await api.patch(`/api/sigma/rules/${rule.id}/`, { enabled: enable });
        load();
      } catch (error) {
        state.textContent = error.message;
      }
    },
  });
}

async function load() {
  state.textContent = "Loading…";
  let rules;
  try {
    rules = await api.getAll("/api/sigma/rules/", filters());
  } catch (error) {
    state.textContent = error.message;
    return;
  }
  clear(tbody);
  for (const rule of rules) {
    const link = rule.references && rule.references[0];
    const title = link ? el("a", { href: link, rel: "noopener noreferrer", target: "_blank", text: rule.title }) : rule.title;
    const perLine = rule.stats.microseconds_per_line;
    tbody.append(
      el(
        "tr",
        { dataset: { ruleId: rule.sigma_id } },
        el("td", { "data-label": "Rule" }, title, el("div", { class: "muted small", text: `${rule.kind} · ${rule.author || "no author"}` }), replacesNote(rule)),
        el("td", { "data-label": "Level" }, severityBadge(LEVELS[rule.level] || "medium")),
        el("td", { "data-label": "State" }, stateCell(rule)),
        el("td", { "data-label": "Techniques" }, rule.techniques.map((t) =>
          el("a", { class: "technique", href: `/alerts/?view=open&technique=${encodeURIComponent(t)}`, title: `Open alerts for ${t}` }, el("code", { text: t })),
        )),
        el("td", { "data-label": "Hits", text: String(rule.stats.hits) }),
        el("td", { "data-label": "Cost per line", text: perLine === null ? "—" : `${perLine.toFixed(2)} µs` }),
        el("td", {}, toggle(rule)),
      ),
    );
  }
  document.getElementById("rules-empty").hidden = rules.length > 0;
  state.textContent = rules.length === 1 ? "1 rule" : `${rules.length} rules`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  filterToUrl(filters());
  load();
});

const upload = document.getElementById("upload");
if (upload) {
  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("upload-state");
    try {
      const rule = await api.post("/api/sigma/rules/", { text: upload.elements.text.value });
      status.textContent = `Uploaded: ${rule.title} (${rule.state}).`;
      upload.reset();
      load();
    } catch (error) {
      const reason = error.body && error.body.reason_code ? ` (${error.body.reason_code})` : "";
      status.textContent = `${error.message}${reason}`;
    }
  });
}

load();
