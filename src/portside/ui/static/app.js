// The portside dashboard: renders /ui/api/state and follows /ui/api/events (server-sent events).
// Plain DOM: every value from the server goes in through textContent, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let csrfToken = "";
let state = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A table in a region of its own; on a narrow screen each row becomes a card of "header: value"
// lines (app.css: table.stack), so no cell or button hides past a scrolled edge.
function table(caption, headers, rows) {
  if (!rows.length) return el("p", { class: "empty" }, `No ${caption.toLowerCase()}.`);
  for (const row of rows) [...row.children].forEach((td, i) => td.setAttribute("data-label", headers[i]));
  return el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": caption },
    el("table", { class: "stack" },
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || String(text).toLowerCase()}` }, text);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function meter(label, used, total, unit) {
  const pct = total ? Math.round((100 * used) / total) : 0;
  return el("div", { class: "meter" },
    el("span", {}, `${label} ${used}/${total}${unit || ""}`),
    el("progress", { max: String(total || 1), value: String(used), "aria-label": `${label} used: ${pct}%` }));
}

// -- charts: hand-drawn SVG polylines, one per line of the chart

const COLOURS = ["#1f6feb", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490"];

function chart(spec) {
  const figure = el("figure", { class: "chart" }, el("figcaption", {}, spec.title));
  if (!spec.lines.length) {
    figure.append(el("p", { class: "empty" }, "No data in the last hour."));
    return figure;
  }
  const width = 320, height = 120, pad = 4;
  const points = spec.lines.flatMap((l) => l.points);
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 60);
  const y1 = Math.max(...ys, 1);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const summary = spec.lines.map((l) => `${l.label} ${l.points[l.points.length - 1][1]} ${spec.unit}`).join(", ");
  svg.setAttribute("aria-label", `${spec.title}: latest ${summary}`);
  spec.lines.forEach((line, i) => {
    const poly = document.createElementNS(SVG, "polyline");
    poly.setAttribute("fill", "none");
    poly.setAttribute("stroke", COLOURS[i % COLOURS.length]);
    poly.setAttribute("stroke-width", i === 0 ? "3" : "2");
    if (i > 0) poly.setAttribute("stroke-dasharray", "6 3");  // lines that coincide stay distinguishable
    poly.setAttribute("points", line.points.map(([x, y]) =>
      `${(pad + ((x - x0) / (x1 - x0)) * (width - 2 * pad)).toFixed(1)},${(height - pad - (y / y1) * (height - 2 * pad)).toFixed(1)}`).join(" "));
    svg.append(poly);
  });
  figure.append(svg, el("ul", { class: "legend" }, spec.lines.map((l, i) =>
    el("li", { "data-colour": String(i % COLOURS.length) }, `${l.label}: ${l.points[l.points.length - 1][1]} ${spec.unit}`))),
    el("p", { class: "axis" }, `0 – ${y1} ${spec.unit}, last hour`));
  return figure;
}

// -- views

function renderClusters(s) {
  return s.clusters.length ? s.clusters.map((c) => el("article", { class: "card", "data-cluster": c.name },
    el("h3", {}, `${c.name} `, badge(c.status, "status")),
    table(`Container instances of ${c.name}`, ["Instance", "Agent and status", "CPU", "Memory", "Host ports in use", "Tasks", ""],
      c.instances.map((i) => el("tr", { "data-instance": i.arn },
        el("td", {}, i.id, el("small", { class: "where" }, `${i.host}${i.zone ? ` · ${i.zone}` : ""}`)),
        el("td", {}, badge(i.agentConnected ? "connected" : "disconnected"), " ", badge(i.status, i.status.toLowerCase())),
        el("td", {}, meter("CPU", i.cpu.used, i.cpu.registered)),
        el("td", {}, meter("Memory", i.memory.used, i.memory.registered, " MiB")),
        el("td", { title: i.hostPorts.join(", ") }, `${i.portsInUse} (${i.reservedPorts} reserved)`),
        el("td", {}, `${i.runningTasks} running, ${i.pendingTasks} pending`),
        el("td", {}, i.status === "ACTIVE" ? el("button", { type: "button", "data-key": `drain ${i.arn}`, onclick: () => confirmAction(
          { action: "drain", cluster: c.name, containerInstance: i.arn },
          `Drain container instance ${i.id}? Its service tasks are replaced elsewhere and it gets no new tasks.`) }, "Drain…") : ""))),
    ),
    el("div", { class: "charts" }, c.charts.map(chart)))) : el("p", { class: "empty" }, "No clusters.");
}

function renderServices(s) {
  if (!s.services.length) return el("p", { class: "empty" }, "No services.");
  return s.services.map((svc) => el("article", { class: "card", "data-service": svc.name },
    el("h3", {}, `${svc.name} `, el("small", {}, `${svc.cluster} · ${svc.taskDefinition}`)),
    el("dl", { class: "counts" },
      el("div", {}, el("dt", {}, "Desired"), el("dd", { class: "desired" }, svc.desired)),
      el("div", {}, el("dt", {}, "Running"), el("dd", { class: "running" }, svc.running)),
      el("div", {}, el("dt", {}, "Pending"), el("dd", { class: "pending" }, svc.pending))),
    el("div", { class: "buttons" },
      el("button", { type: "button", class: "scale", "data-key": `scale ${svc.arn}`, onclick: () => confirmAction(
        { action: "scale", cluster: svc.cluster, service: svc.name },
        `Set the desired count of ${svc.name}.`, svc.desired) }, "Scale…"),
      el("button", { type: "button", "data-key": `redeploy ${svc.arn}`, onclick: () => confirmAction(
        { action: "redeploy", cluster: svc.cluster, service: svc.name },
        `Force a new deployment of ${svc.name}? Every task is replaced.`) }, "Force new deployment…")),
    table(`Deployments of ${svc.name}`, ["Deployment", "Status", "Rollout", "Task definition", "Desired", "Running", "Pending", "Failed"],
      svc.deployments.map((d) => el("tr", {},
        el("td", {}, d.id), el("td", {}, badge(d.status, "status")),
        el("td", { title: d.rolloutStateReason }, badge(d.rolloutState || "—", (d.rolloutState || "").toLowerCase())),
        el("td", {}, d.taskDefinition), el("td", {}, d.desired), el("td", {}, d.running), el("td", {}, d.pending), el("td", {}, d.failed)))),
    el("h4", {}, "Last events"),
    svc.events.length ? el("ol", { class: "events" }, svc.events.map((e) => el("li", {}, el("time", {}, when(e.at)), " ", e.message)))
      : el("p", { class: "empty" }, "No events."),
    el("div", { class: "charts" }, svc.charts.map(chart))));
}

// renderTasks(s): tasks.js (a page of rows at a time, filters, row-by-row updates)

function renderLoadBalancers(s) {
  if (!s.loadBalancers.length) return el("p", { class: "empty" }, "No load balancers.");
  return s.loadBalancers.map((lb) => el("article", { class: "card", "data-load-balancer": lb.name },
    el("h3", {}, `${lb.name} `, badge(lb.state, "status")), el("p", { class: "dns" }, lb.dnsName),
    lb.listeners.map((l) => table(`Listener ${l.protocol}:${l.port}`, ["Priority", "Conditions", "Forwards to"],
      l.rules.map((r) => el("tr", {}, el("td", {}, r.priority), el("td", {}, r.conditions.join("; ")), el("td", {}, r.actions.join(", "))))))));
}

function renderTargetGroups(s) {
  if (!s.targetGroups.length) return el("p", { class: "empty" }, "No target groups.");
  return s.targetGroups.map((tg) => el("article", { class: "card", "data-target-group": tg.name },
    el("h3", {}, `${tg.name} `, el("small", {}, `${tg.protocol}:${tg.port} · ${tg.healthy}/${tg.total} healthy · `,
      tg.requestRate === null ? "no requests recorded" : `${tg.requestRate} requests/s`)),
    table(`Targets of ${tg.name}`, ["Target", "Port", "Health", "Reason"],
      tg.targets.map((t) => el("tr", { "data-target": `${t.id}:${t.port}`, "data-state": t.state },
        el("td", {}, t.id), el("td", {}, t.port), el("td", {}, badge(t.state)), el("td", {}, t.reason, t.description ? el("small", {}, ` ${t.description}`) : "")))),
    el("div", { class: "charts" }, tg.charts.map(chart))));
}

function renderScaling(s) {
  return table("Scaling activities", ["Time", "Resource", "Status", "Description", "Cause"],
    s.scalingActivities.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.resource), el("td", {}, badge(a.status)),
      el("td", {}, a.description, a.message ? el("small", {}, ` ${a.message}`) : ""), el("td", {}, a.cause))));
}

function renderAlarms(s) {
  return table("Alarms", ["Alarm", "State", "Watches", "Condition", "Since", "Reason"],
    s.alarms.map((a) => el("tr", { "data-alarm": a.name },
      el("td", {}, a.name), el("td", {}, badge(a.state, a.state === "OK" ? "healthy" : a.state === "ALARM" ? "unhealthy" : "initial")),
      el("td", {}, a.metric), el("td", {}, a.condition), el("td", {}, when(a.since)), el("td", {}, a.reason))));
}

// -- a task's log tail: fetched when asked for, and again after each live update while shown

let logTask = null;

function showLogs(task) {
  logTask = task;
  refreshLogs().then(() => document.getElementById("logs-h").focus());
}

async function refreshLogs() {
  const body = document.querySelector("#logs .body");
  if (!logTask) {
    body.replaceChildren(el("p", { class: "empty" }, "Choose Logs on a task to see its newest log events here."));
    return;
  }
  const answer = await fetch(`/ui/api/logs?task=${encodeURIComponent(logTask.arn)}`, { credentials: "same-origin" });
  const tail = await answer.json();
  if (!answer.ok) {
    body.replaceChildren(el("p", { class: "error" }, `${tail.__type}: ${tail.message}`));
    return;
  }
  const heading = el("h3", {}, `Task ${tail.taskId}`, el("small", {}, ` ${tail.streams.map((st) => `${st.group} ${st.stream}`).join(" · ")}`));
  const close = el("button", { type: "button", onclick: () => { logTask = null; refreshLogs(); } }, "Close log tail");
  if (!tail.logged) { body.replaceChildren(heading, el("p", { class: "empty" }, tail.note), close); return; }
  body.replaceChildren(heading,
    tail.events.length ? el("pre", { class: "log", tabindex: "0", "aria-label": `Log events of task ${tail.taskId}` },
      tail.events.map((e) => `${new Date(e.at * 1000).toLocaleTimeString()} ${e.container} | ${e.message}\n`).join(""))
      : el("p", { class: "empty" }, "No log events yet."),
    close);
}

function render(s) {
  state = s;
  // Keep keyboard users where they were across a live update: buttons carry a stable data-key.
  const focusKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  document.getElementById("region").textContent = s.region;
  const put = (id, content) => document.querySelector(`#${id} .body`).replaceChildren(...[content].flat());
  put("clusters", renderClusters(s));
  put("services", renderServices(s));
  renderTasks(s);
  put("load-balancers", renderLoadBalancers(s));
  put("target-groups", renderTargetGroups(s));
  put("scaling", renderScaling(s));
  put("alarms", renderAlarms(s));
  refreshLogs();
  if (focusKey) {
    const again = document.querySelector(`main [data-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
  showLive(s);
  document.body.dataset.ready = "1";
}

function showLive(s) {
  const running = s.tasks.filter((t) => t.lastStatus === "RUNNING").length;
  document.getElementById("live").textContent =
    `live · ${s.services.length} services, ${running} tasks running · updated ${when(s.generatedAt)}`;
}

// -- actions, behind a confirmation dialog

let pending = null;

function confirmAction(request, text, count) {
  const dialog = document.getElementById("confirm");
  pending = request;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-error").textContent = "";
  const field = document.getElementById("confirm-field");
  field.hidden = count === undefined;
  const input = document.getElementById("confirm-count");
  if (count !== undefined) input.value = String(count);
  dialog.showModal();
  (count !== undefined ? input : document.getElementById("confirm-cancel")).focus();
}

async function submitAction(event) {
  event.preventDefault();
  if (!pending) return;
  const request = { ...pending };
  const error = document.getElementById("confirm-error");
  if (request.action === "scale") {
    const typed = document.getElementById("confirm-count").value.trim();
    if (!/^[0-9]+$/.test(typed)) { error.textContent = "Enter the desired count: a whole number, 0 or more."; return; }
    request.desiredCount = Number(typed);
  }
  try {
    const answer = await fetch("/ui/api/actions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Portside-CSRF": csrfToken },
      body: JSON.stringify(request),
    });
    const body = await answer.json();
    if (!answer.ok) {
      error.textContent = `${body.__type}: ${body.message}`;
      return;
    }
    pending = null;
    document.getElementById("confirm").close();
    notice(`${request.action}: ${body.operation} accepted.`);
  } catch (exc) {
    error.textContent = `The request failed: ${exc}`;
  }
}

function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.hidden = false;
}

// -- start: the session's CSRF token, the first state, then the live stream

async function start() {
  document.getElementById("confirm-form").addEventListener("submit", submitAction);
  document.getElementById("confirm-cancel").addEventListener("click", () => { pending = null; document.getElementById("confirm").close(); });
  // The session's token and the first state are fetched side by side: one round trip, not two.
  const [session, first] = await Promise.all([
    fetch("/ui/api/session", { credentials: "same-origin" }),
    fetch("/ui/api/state", { credentials: "same-origin" })]);
  if (session.ok) {
    const info = await session.json();
    csrfToken = info.csrfToken;
    if (info.accessKey) document.getElementById("signout").hidden = false;
  }
  if (first.status === 403) { window.location.assign("/ui/signin"); return; }
  let shown = await first.text();
  render(JSON.parse(shown));
  // The stream opens once the first state is painted (its first event repeats that state); a
  // state the page shows already is not rendered again.
  requestAnimationFrame(() => setTimeout(() => {
    const stream = new EventSource("/ui/api/events");
    stream.addEventListener("state", (event) => {
      if (event.data === shown) { showLive(state); return; }
      shown = event.data;
      render(JSON.parse(shown));
    });
    stream.addEventListener("error", () => { document.getElementById("live").textContent = "reconnecting…"; });
  }, 0));
}

document.addEventListener("DOMContentLoaded", start);
