// Live oversight for the admin pages: one websocket to /ws/live/ (the session cookie
// authenticates it), the dashboard redrawn from GET /api/v1/governance/dashboard/, the task
// page's state and steps and the reviewer queues' rows re-read from the page itself (the
// server renders them, so the live view and a reload always agree). After a dropped connection, or when
// the server says events were skipped ("resync"), the page refetches what it shows, so a
// missed event never stays missing. No build step: this file is served as it is.

const REDRAW_DELAY_MS = 200;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

function text(value) {
  return value === null || value === undefined ? "" : String(value);
}

function cell(tag, content, className) {
  const element = document.createElement(tag);
  if (content instanceof Node) element.append(content);
  else element.textContent = text(content);
  if (className) element.className = className;
  return element;
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function empty(columns, message) {
  const tr = row([cell("td", message)]);
  tr.className = "vigil-empty";
  tr.firstChild.colSpan = columns;
  return tr;
}

function badge(label, className) {
  return cell("span", label, `vigil-badge ${className}`);
}

function due(approval) {
  if (approval.breached) return badge("breached", "vigil-breached");
  if (!approval.due_at) return "—";
  const time = document.createElement("time");
  time.dataset.due = approval.due_at;
  tick(time);
  return time;
}

function tick(element) {
  const left = Math.round((Date.parse(element.dataset.due) - Date.now()) / 1000);
  if (Number.isNaN(left)) return;
  const abs = Math.abs(left);
  const span = abs >= 86400 ? `${Math.floor(abs / 86400)}d ${Math.floor((abs % 86400) / 3600)}h`
    : abs >= 3600 ? `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m ${abs % 60}s`
      : `${Math.floor(abs / 60)}m ${abs % 60}s`;
  element.textContent = left >= 0 ? `in ${span}` : `${span} overdue`;
}

function fill(root, name, rows, columns, message) {
  const body = root.querySelector(`[data-list="${name}"]`);
  if (!body) return;
  body.replaceChildren(...(rows.length ? rows : [empty(columns, message)]));
}

function drawDashboard(root, data) {
  for (const key of ["in_flight", "pending_approvals", "sla_breaches"]) {
    const element = root.querySelector(`[data-figure="${key}"]`);
    if (element) element.textContent = text(data[key]);
  }
  const states = Object.keys(data.tasks_by_state).sort();
  fill(root, "tasks_by_state", states.map((state) => {
    const tr = row([cell("th", badge(state, `vigil-state-${state}`)), cell("td", data.tasks_by_state[state])]);
    tr.dataset.state = state;
    tr.firstChild.scope = "row";
    return tr;
  }), 2, "No tasks yet.");
  fill(root, "approvals", data.approvals.map((a) => row([
    cell("td", `#${a.id} (task ${a.task_id})`), cell("td", a.agent), cell("td", a.tool),
    cell("td", a.required_role), cell("td", due(a)),
  ])), 5, "Nothing waits for a decision.");
  fill(root, "error_rates", data.error_rates.map((e) => row([
    cell("td", e.agent), cell("td", e.finished), cell("td", e.failed),
    cell("td", `${Math.round(e.error_rate * 100)} %`),
  ])), 4, "No task finished in the last 24 hours.");
  fill(root, "usage", (data.usage || []).map((u) => {
    const tr = row([cell("td", u.label), cell("td", u.used === null ? "not counted" : u.used), cell("td", u.max)]);
    tr.dataset.limit = u.limit;
    if (u.near) tr.className = "vigil-near";
    return tr;
  }), 3, "No limits.");
  fill(root, "audit", data.audit.map((line) => row([
    cell("td", line.seq), cell("td", line.created_at), cell("td", line.actor),
    cell("td", line.verb), cell("td", line.target),
  ])), 5, "No events yet.");
  root.dataset.seq = text(data.seq);
}

function dashboardPage(root) {
  return {
    wants: (event) => ["task.", "approval.", "agent.", "usage."].some((prefix) => event.type.startsWith(prefix)),
    async refresh() {
      const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) drawDashboard(root, await response.json());
    },
  };
}

function taskPage(root) {
  const taskId = Number(root.dataset.taskId);
  return {
    wants: (event) => Number(event.task_id) === taskId,
    apply(event) {
      const badgeElement = document.querySelector("[data-task-state]");
      if (event.type === "task.state" && badgeElement) {
        badgeElement.textContent = event.to_state;
        badgeElement.className = `vigil-badge vigil-state-${event.to_state}`;
        badgeElement.dataset.taskState = event.to_state;
      }
    },
    // The steps, events and fields are Django admin markup: re-read this very page and swap
    // the parts that change, so the live view and a reload always agree.
    async refresh() {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const selector of ["#content > h2", "[data-task-state]", ".inline-group", ".field-state .readonly",
        ".field-output_view .readonly", ".field-finished_at .readonly", ".field-approvals .readonly"]) {
        const now = document.querySelectorAll(selector);
        const next = fresh.querySelectorAll(selector);
        now.forEach((element, index) => { if (next[index]) element.replaceWith(next[index]); });
      }
    },
  };
}

// The reviewer queues (My queue, Team queue): any approval event may add, move or remove a
// row, and a task that stops waiting closes its requests; the rows are re-read from the page.
function queuePage() {
  const shown = () => new Set([...document.querySelectorAll("#queue tr[data-approval-id]")]
    .map((tr) => tr.dataset.approvalId));
  return {
    wants: (event) => event.type.startsWith("approval.")
      || (event.type === "task.state" && document.querySelector(`#queue tr[data-task-id="${Number(event.task_id)}"]`) !== null),
    async refresh() {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const before = shown();
      const focused = document.activeElement && document.activeElement.closest("tr[data-approval-id]");
      for (const selector of ["#queue tbody", "#queue-pages"]) {
        const now = document.querySelector(selector);
        const next = fresh.querySelector(selector);
        if (now && next) now.replaceWith(next);
      }
      for (const tr of document.querySelectorAll("#queue tr[data-approval-id]")) {
        if (before.size && !before.has(tr.dataset.approvalId)) tr.classList.add("vigil-new");
      }
      document.querySelectorAll("time[data-due]").forEach(tick);
      const again = focused && document.querySelector(`#queue tr[data-approval-id="${focused.dataset.approvalId}"] a`);
      if (again) again.focus();
    },
  };
}

function setStatus(on) {
  for (const element of document.querySelectorAll("[data-live-status]")) {
    element.textContent = on ? "live updates: on" : "live updates: reconnecting…";
    element.classList.toggle("vigil-on", on);
  }
}

function start(page) {
  let timer = null;
  let retry = RETRY_MIN_MS;
  const redraw = () => {
    clearTimeout(timer);
    timer = setTimeout(() => page.refresh().catch(() => {}), REDRAW_DELAY_MS);
  };
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/live/`);
    socket.addEventListener("open", () => { retry = RETRY_MIN_MS; setStatus(true); });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "hello" || event.type === "resync") {
        // Connected (again) or events were skipped: what is shown may be stale.
        redraw();
        return;
      }
      if (!page.wants(event)) return;
      if (page.apply) page.apply(event);
      redraw();
    });
    socket.addEventListener("close", () => {
      setStatus(false);
      setTimeout(open, retry);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    });
  };
  open();
  setInterval(() => document.querySelectorAll("time[data-due]").forEach(tick), 1000);
}

const root = document.querySelector("[data-live]");
const PAGES = { task: taskPage, queue: queuePage, dashboard: dashboardPage };
if (root) start((PAGES[root.dataset.live] || dashboardPage)(root));
