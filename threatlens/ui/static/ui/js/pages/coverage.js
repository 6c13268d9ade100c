// ATT&CK coverage: the techniques the enabled Sigma rules detect, grouped by tactic, each
// with its number of rules and links to them; the Navigator layer is a download link.
import * as api from "../api.js";
import { clear, el } from "../dom.js";

const container = document.getElementById("tactics");
const state = document.getElementById("coverage-state");
const empty = document.getElementById("coverage-empty");

function rulesUrl(technique) {
  return `/rules/?state=loaded&technique=${encodeURIComponent(technique)}`;
}

function techniqueRow(technique) {
  const count = technique.rules.length;
  return el(
    "tr",
    { dataset: { technique: technique.id } },
    el("th", { scope: "row" }, el("a", { href: rulesUrl(technique.id), title: `Rules for ${technique.id}` }, el("code", { text: technique.id }))),
    el("td", { class: "rule-count", "data-label": "Rules", text: String(count) }),
    el(
      "td",
      { "data-label": "Rule titles" },
      el("ul", { class: "inline-list" }, technique.rules.map((rule) => el("li", { text: rule.title }))),
    ),
    el("td", {}, el("a", { href: `/alerts/?view=open&technique=${encodeURIComponent(technique.id)}`, text: "Open alerts" })),
  );
}

/** "credential-access" -> "Credential access" (ATT&CK's own spelling of its tactics). */
function tacticName(name) {
  if (!name) return "No tactic tagged";
  const words = name.replaceAll("-", " ").replaceAll("_", " ");
  return words[0].toUpperCase() + words.slice(1);
}

function tacticSection(tactic, index) {
  const headingId = `tactic-${index}`;
  const name = tacticName(tactic.name);
  return el(
    "section",
    { class: "panel table-panel", "aria-labelledby": headingId, dataset: { tactic: tactic.name || "" } },
    el(
      "h2",
      { id: headingId },
      name,
      tactic.id ? el("span", { class: "muted small", text: ` ${tactic.id}` }) : null,
      el("span", { class: "muted small", text: ` · ${tactic.techniques.length} technique${tactic.techniques.length === 1 ? "" : "s"}` }),
    ),
    el(
      "div",
      { class: "table-scroll" },
      el(
        "table",
        { class: "table coverage-table" },
        el(
          "thead",
          {},
          el("tr", {}, ["Technique", "Rules", "Rule titles", "Alerts"].map((text) => el("th", { scope: "col", text }))),
        ),
        el("tbody", {}, tactic.techniques.map(techniqueRow)),
      ),
    ),
  );
}

async function load() {
  let coverage;
  try {
    coverage = await api.get("/api/sigma/rules/coverage/tactics/");
  } catch (error) {
    state.textContent = `Could not load the coverage: ${error.message}`;
    return;
  }
  clear(container);
  coverage.tactics.forEach((tactic, index) => container.append(tacticSection(tactic, index)));
  empty.hidden = coverage.techniques > 0;
  state.textContent =
    `${coverage.techniques} technique${coverage.techniques === 1 ? "" : "s"} covered by ` +
    `${coverage.rules_with_techniques} of ${coverage.rules} enabled rule${coverage.rules === 1 ? "" : "s"}.`;
}

load();
