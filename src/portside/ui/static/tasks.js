// The dashboard's task table: one page of rows at a time (50 by default), filtered by service,
// host and status, and updated row by row: a live update rebuilds only the rows whose task changed.
// Uses el(), badge(), confirmAction() and showLogs() from app.js (loaded after this file, run later).
"use strict";

const TASK_PAGE_SIZES = [10, 50, 200];
const NO_SERVICE = "(no service)";
const TASK_HEADERS = ["Task", "Service", "Host", "Host port → container port", "Status", "Target health", ""];
const taskView = { service: "", host: "", status: "", size: 50, page: 0 };
const taskRowCache = new Map();  // task ARN -> { sig: its JSON, node: its <tr> }
let taskParts = null;  // the section's controls and table, built once
let lastTasks = [];

function taskRow(t) {
  const cell = (i, attrs, ...children) => el("td", { ...attrs, "data-label": TASK_HEADERS[i] }, ...children);
  return el("tr", { "data-task": t.arn, "data-service": t.service },
    cell(0, {}, t.id.slice(0, 12)), cell(1, {}, t.service || "—"), cell(2, { class: "host" }, t.host),
    cell(3, { class: "ports" }, t.ports.length ? t.ports.map((p) => el("div", { class: "port", "data-host-port": String(p.hostPort || "") },
      `${p.hostPort || "—"} → ${p.containerPort}/${p.protocol}`)) : "—"),
    cell(4, {}, badge(t.lastStatus), t.desiredStatus !== t.lastStatus ? ` → ${t.desiredStatus}` : ""),
    cell(5, { class: "health" }, t.ports.filter((p) => p.target).map((p) => el("div", { "data-state": p.target.state },
      badge(p.target.state), p.target.reason ? ` ${p.target.reason}` : "", p.target.description ? el("small", {}, ` ${p.target.description}`) : "")),
      t.ports.some((p) => p.target) ? "" : "—"),
    cell(6, { class: "task-buttons" },
      el("button", { type: "button", "aria-label": `Logs of task ${t.id}`, "data-key": `logs ${t.arn}`, onclick: () => showLogs(t) }, "Logs"),
      t.desiredStatus === "RUNNING" ? el("button", { type: "button", "data-key": `stop ${t.arn}`, onclick: () => confirmAction(
        { action: "stop", cluster: t.cluster, task: t.arn }, `Stop task ${t.id}?${t.service ? " Its service starts a replacement." : ""}`) }, "Stop…") : ""));
}

function taskSelect(id, label, key) {
  const select = el("select", { id, "data-key": `filter ${key}` });
  select.addEventListener("change", () => { taskView[key] = key === "size" ? Number(select.value) : select.value; taskView.page = 0; renderTaskPage(); });
  return { select, field: el("p", { class: "field" }, el("label", { for: id }, label), " ", select) };
}

function buildTaskParts() {
  const service = taskSelect("task-service", "Service", "service");
  const host = taskSelect("task-host", "Host", "host");
  const status = taskSelect("task-status", "Status", "status");
  const size = taskSelect("task-size", "Per page", "size");
  size.select.replaceChildren(...TASK_PAGE_SIZES.map((n) => el("option", { value: String(n), selected: n === taskView.size }, String(n))));
  const tbody = el("tbody");
  const table = el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Tasks" },
    el("table", { class: "stack" }, el("caption", {}, "Tasks"),
      el("thead", {}, el("tr", {}, TASK_HEADERS.map((h) => el("th", { scope: "col" }, h)))), tbody));
  const shown = el("p", { class: "shown", id: "task-shown", role: "status", "aria-live": "polite" });
  const empty = el("p", { class: "empty", hidden: true });
  const turn = (by) => () => { taskView.page += by; renderTaskPage(); };
  const previous = el("button", { type: "button", "data-key": "tasks previous", onclick: turn(-1) }, "Previous page");
  const next = el("button", { type: "button", "data-key": "tasks next", onclick: turn(1) }, "Next page");
  const pager = el("nav", { class: "pager", "aria-label": "Task pages" }, previous, el("span", { class: "page" }), next);
  const filters = el("form", { class: "filters", "aria-label": "Filter tasks" }, service.field, host.field, status.field, size.field);
  filters.addEventListener("submit", (event) => event.preventDefault());
  document.querySelector("#tasks .body").replaceChildren(filters, shown, empty, table, pager);
  return { selects: { service: service.select, host: host.select, status: status.select }, tbody, table, shown, empty, pager, previous, next };
}

// A filter's choices: "All" and every value the tasks have, plus the chosen one if it is gone
// (a choice is never dropped silently: it then shows no tasks, and says so).
function setChoices(select, values, chosen) {
  const all = [...new Set(values.concat(chosen ? [chosen] : []))].sort();
  const signature = all.join("\n");
  if (select.dataset.choices === signature) return;
  select.dataset.choices = signature;
  select.replaceChildren(el("option", { value: "" }, "All"), ...all.map((v) => el("option", { value: v, selected: v === chosen }, v)));
}

function taskMatches(t) {
  return (!taskView.service || (t.service || NO_SERVICE) === taskView.service)
    && (!taskView.host || t.host === taskView.host)
    && (!taskView.status || t.lastStatus === taskView.status);
}

function renderTasks(s) {
  lastTasks = s.tasks;
  if (!taskParts) taskParts = buildTaskParts();
  setChoices(taskParts.selects.service, s.tasks.map((t) => t.service || NO_SERVICE), taskView.service);
  setChoices(taskParts.selects.host, s.tasks.map((t) => t.host).filter(Boolean), taskView.host);
  setChoices(taskParts.selects.status, s.tasks.map((t) => t.lastStatus), taskView.status);
  const live = new Set(s.tasks.map((t) => t.arn));
  for (const arn of taskRowCache.keys()) if (!live.has(arn)) taskRowCache.delete(arn);
  renderTaskPage();
}

function renderTaskPage() {
  const parts = taskParts;
  const matching = lastTasks.filter(taskMatches);
  const pages = Math.max(1, Math.ceil(matching.length / taskView.size));
  taskView.page = Math.min(Math.max(taskView.page, 0), pages - 1);
  const first = taskView.page * taskView.size;
  const rows = matching.slice(first, first + taskView.size).map((t) => {
    const sig = JSON.stringify(t);
    let row = taskRowCache.get(t.arn);
    if (!row || row.sig !== sig) taskRowCache.set(t.arn, row = { sig, node: taskRow(t) });
    return row.node;
  });
  const current = parts.tbody.children;
  if (rows.length !== current.length || rows.some((node, i) => node !== current[i])) parts.tbody.replaceChildren(...rows);
  const filtered = taskView.service || taskView.host || taskView.status;
  parts.table.hidden = !rows.length;
  parts.empty.hidden = rows.length > 0;
  parts.empty.textContent = filtered ? "No task matches these filters." : "No tasks.";
  parts.shown.textContent = matching.length
    ? `Showing ${first + 1}–${first + rows.length} of ${matching.length} tasks${filtered ? ` (of ${lastTasks.length})` : ""}`
    : `Showing 0 of ${lastTasks.length} tasks`;
  parts.pager.hidden = pages < 2;
  parts.pager.querySelector(".page").textContent = `Page ${taskView.page + 1} of ${pages}`;
  parts.previous.disabled = taskView.page === 0;
  parts.next.disabled = taskView.page >= pages - 1;
}
