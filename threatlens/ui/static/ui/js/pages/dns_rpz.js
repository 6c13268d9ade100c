// RPZ rules: the list (server-side search), add and remove, live over rpz_updated (one
// rule's change carries the rule; a feed import of many rules reloads the list).
import * as api from "../api.js";
import { clear, el, label, pageConfig, timeEl } from "../dom.js";
import { notify } from "../shell.js";
import { connectLive } from "../socket.js";

const config = pageConfig();
const perms = config.perms;
const tbody = document.getElementById("rpz-rules");
const form = document.getElementById("rule-form");
const filter = document.getElementById("rule-filter");
const FIELDS = ["domain", "action", "category", "redirect_target", "description"];
const rules = new Map(); // id -> {rule, tr}
let total = null;

function matches(rule) {
  const needle = filter.elements.search.value.trim().toLowerCase();
  return !needle || [rule.domain, rule.description].some((t) => String(t || "").toLowerCase().includes(needle));
}

function row(rule) {
  const actions = el("div", { class: "row-actions" });
  if (perms.delete_rpz_rules) {
    actions.append(
      el("button", {
        type: "button",
        class: "btn btn-small btn-danger",
        text: "Remove",
        "aria-label": `Remove the rule for ${rule.domain}`,
        onclick: () => removeRule(rules.get(rule.id)?.rule || rule),
      }),
    );
  }
  return [
    el("td", { class: "title", "data-label": "Domain" }, el("span", { class: "t", title: rule.domain, text: rule.include_subdomains ? `${rule.domain} (+ subdomains)` : rule.domain })),
    el("td", { "data-label": "Action", text: rule.action === "redirect" ? `redirect → ${rule.redirect_target}` : rule.action }),
    el("td", { "data-label": "Category", text: label(rule.category || "") }),
    el("td", { "data-label": "Source", title: rule.description || "", text: rule.feed_name ? `feed ${rule.feed_name}` : rule.source }),
    el("td", { "data-label": "Updated" }, timeEl(rule.updated_at, { short: true })),
    el("td", { class: "actions", "data-label": "" }, actions),
  ];
}

function showCount() {
  const shown = rules.size;
  document.getElementById("rule-count").textContent =
    total === null || total === shown ? `${shown} rule${shown === 1 ? "" : "s"}` : `${shown} of ${total} shown`;
  document.getElementById("rules-empty").hidden = shown > 0;
}

function upsert(rule, { fresh = false } = {}) {
  if (!matches(rule)) return remove(rule.id);
  const existing = rules.get(rule.id);
  if (existing) {
    existing.rule = rule;
    existing.tr.replaceChildren(...row(rule));
  } else {
    const tr = el("tr", { class: fresh ? "row-fresh" : "", dataset: { ruleId: String(rule.id) } }, row(rule));
    const after = [...rules.values()].find((r) => r.rule.domain > rule.domain);
    rules.set(rule.id, { rule, tr });
    tbody.insertBefore(tr, after ? after.tr : null);
  }
  showCount();
}

function remove(id) {
  const existing = rules.get(id);
  if (existing) {
    existing.tr.remove();
    rules.delete(id);
  }
  showCount();
}

async function load() {
  const search = filter.elements.search.value.trim();
  let page;
  try {
    page = await api.get("/api/dns/rpz/rules/", { ordering: "domain", page_size: 500, search });
  } catch (error) {
    notify(`Could not load the rules: ${error.message}`, "error");
    return;
  }
  if (search !== filter.elements.search.value.trim()) return; // a newer search runs
  rules.clear();
  clear(tbody);
  total = page.count;
  for (const rule of page.results) {
    const tr = el("tr", { dataset: { ruleId: String(rule.id) } }, row(rule));
    rules.set(rule.id, { rule, tr });
    tbody.append(tr);
  }
  showCount();
}

async function removeRule(rule) {
  if (!window.confirm(`Remove the ${rule.action} rule for ${rule.domain}?`)) return;
  try {
    await api.del(`/api/dns/rpz/rules/${rule.id}/`);
    remove(rule.id);
    notify(`Rule for ${rule.domain} removed.`, "success");
  } catch (error) {
    notify(error.message, "error");
  }
}

let timer = null;
filter.addEventListener("submit", (event) => event.preventDefault());
filter.elements.search.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(load, 250);
});

if (form) {
  const redirectField = document.getElementById("rpz-redirect-field");
  const showRedirect = () => {
    redirectField.hidden = form.elements.action.value !== "redirect";
  };
  form.elements.action.addEventListener("change", showRedirect);
  showRedirect();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = document.getElementById("rule-form-error");
    box.hidden = true;
    for (const name of FIELDS) {
      document.getElementById(`rpz-${name}-error`).textContent = "";
      form.elements[name].removeAttribute("aria-invalid");
    }
    const body = { include_subdomains: form.elements.include_subdomains.checked };
    for (const name of FIELDS) {
      if (name === "redirect_target" && redirectField.hidden) continue;
      body[name] = form.elements[name].value.trim();
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const rule = await api.post("/api/dns/rpz/rules/", body);
      if (total !== null) total += rules.has(rule.id) ? 0 : 1;
      upsert(rule, { fresh: true });
      notify(`Rule for ${rule.domain} added.`, "success");
      form.elements.domain.value = "";
      form.elements.description.value = "";
    } catch (error) {
      const other = [];
      for (const [name, messages] of Object.entries(error.fieldErrors)) {
        const target = document.getElementById(`rpz-${name}-error`);
        if (target) {
          target.textContent = messages.join(" ");
          form.elements[name].setAttribute("aria-invalid", "true");
        } else other.push(...messages);
      }
      if (other.length || !Object.keys(error.fieldErrors).length) {
        box.textContent = other.length ? other.join(" ") : error.message;
        box.hidden = false;
      }
    } finally {
      button.disabled = false;
    }
  });
}

function onEvent(event) {
  if (event.eventType !== "rpz_updated") return;
  const data = event.data || {};
  if (data.rule) {
    const id = Number(data.rule_id);
    if (data.action === "deleted") {
      if (rules.has(id) && total !== null) total -= 1;
      remove(id);
    } else {
      if (!rules.has(id) && total !== null && data.action === "created") total += 1;
      upsert(data.rule, { fresh: !event.replayed });
    }
  } else {
    load(); // many rules at once (a feed import or removal)
  }
}

load();
connectLive({
  page: "dns_rpz",
  eventTypes: perms.receive_security ? ["rpz_updated"] : [],
  onEvent,
  onResync: load,
});
