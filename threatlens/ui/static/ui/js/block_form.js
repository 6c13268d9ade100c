// "Block this domain" (an RPZ rule made from an incident, POST /api/incidents/{id}/blocks/),
// offered where a domain shows: the pivot page of a domain and an alert's detail. The
// incident is given (an alert's) or chosen among the open ones the user may see.
import * as api from "./api.js";
import { el } from "./dom.js";
import { notify } from "./shell.js";

/** A form blocking `domain`; `incidentId` fixes the incident, else the user picks one. */
export function blockForm({ domain, incidentId = null, onBlocked = () => {} }) {
  const ids = { incident: "bf-incident", action: "bf-action", reason: "bf-reason" };
  const incident = incidentId
    ? null
    : el("select", { id: ids.incident, name: "incident" }, el("option", { value: "", text: "Loading…" }));
  const action = el(
    "select",
    { id: ids.action, name: "action" },
    ["nxdomain", "nodata", "drop"].map((value) => el("option", { value, text: value.toUpperCase() })),
  );
  const reason = el("input", { id: ids.reason, name: "reason", maxlength: 500, autocomplete: "off" });
  const note = el("span", { class: "small", role: "alert" });
  const form = el(
    "form",
    { class: "block-form", novalidate: true, "aria-label": `Block ${domain}` },
    el("h3", { text: `Block ${domain} with an RPZ rule` }),
    incident ? el("div", { class: "field" }, el("label", { for: ids.incident, text: "For incident" }), incident) : null,
    el("div", { class: "field" }, el("label", { for: ids.action, text: "Action" }), action),
    el("div", { class: "field" }, el("label", { for: ids.reason, text: "Reason" }), reason),
    el("button", { type: "submit", class: "btn btn-primary", text: "Block" }),
    note,
  );
  if (incident) {
    api
      .get("/api/incidents/", { status: ["new", "investigating", "contained"], ordering: "-updated_at", page_size: 100 })
      .then((page) =>
        incident.replaceChildren(
          el("option", { value: "", text: page.results.length ? "Choose…" : "No open incident" }),
          ...page.results.map((item) => el("option", { value: item.id, text: `${item.reference} ${item.title}` })),
        ),
      )
      .catch((error) => incident.replaceChildren(el("option", { value: "", text: error.message })));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = incidentId || Number(incident.value);
    if (!target) {
      note.textContent = "Choose the incident this block belongs to.";
      return;
    }
    try {
      const rule = await api.post(`/api/incidents/${target}/blocks/`, {
        domain,
        action: action.value,
        reason: reason.value,
      });
      note.textContent = `Blocked (RPZ rule #${rule.id}); undo it from the incident.`;
      notify(`${rule.domain} is blocked.`, "success");
      onBlocked(rule, target);
    } catch (error) {
      note.textContent = error.message;
    }
  });
  return form;
}
