// Saved views: a page's filter (its query string) stored per user on the server
// (/api/saved-views/). Choosing one opens the page with its query string, so a saved view
// is also just a URL.
import * as api from "./api.js";
import { el } from "./dom.js";
import { notify } from "./shell.js";

/** Mount the saved-views control of `page` ("alerts", "incidents") into `root`. */
export async function mountSavedViews(page, root) {
  if (!root) return;
  const select = el("select", { id: "saved-view", "aria-label": "Saved views" });
  const nameInput = el("input", {
    id: "saved-view-name",
    "aria-label": "Name of the view",
    maxlength: 80,
    placeholder: "Name this view",
    hidden: true,
  });
  const save = el("button", { type: "button", class: "btn btn-small", text: "Save view" });
  const remove = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Delete view", hidden: true });
  root.replaceChildren(select, nameInput, save, remove);
  let views = [];

  async function refresh(selectedId) {
    try {
      views = await api.get("/api/saved-views/", { page });
    } catch (error) {
      notify(`Could not load saved views: ${error.message}`, "error");
      views = [];
    }
    const current = location.search.replace(/^\?/, "");
    const match = views.find((view) => view.id === selectedId) || views.find((view) => view.query === current);
    select.replaceChildren(
      el("option", { value: "", text: views.length ? "Saved views…" : "No saved views" }),
      ...views.map((view) => el("option", { value: view.id, text: view.name })),
    );
    select.value = match ? String(match.id) : "";
    remove.hidden = !match;
  }

  select.addEventListener("change", () => {
    const view = views.find((item) => String(item.id) === select.value);
    if (view) location.assign(view.url);
  });
  save.addEventListener("click", async () => {
    if (nameInput.hidden) {
      nameInput.hidden = false;
      save.textContent = "Save";
      nameInput.focus();
      return;
    }
    try {
      const created = await api.post("/api/saved-views/", {
        page,
        name: nameInput.value,
        query: location.search,
      });
      nameInput.value = "";
      nameInput.hidden = true;
      save.textContent = "Save view";
      notify(`Saved view “${created.name}”.`, "success");
      await refresh(created.id);
    } catch (error) {
      notify(error.fieldErrors.name?.[0] || error.message, "error");
      nameInput.setAttribute("aria-invalid", "true");
    }
  });
  nameInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") save.click();
  });
  remove.addEventListener("click", async () => {
    const view = views.find((item) => String(item.id) === select.value);
    if (!view) return;
    try {
      await api.del(`/api/saved-views/${view.id}/`);
      notify(`Deleted view “${view.name}”.`, "success");
      await refresh();
    } catch (error) {
      notify(error.message, "error");
    }
  });
  await refresh();
}
