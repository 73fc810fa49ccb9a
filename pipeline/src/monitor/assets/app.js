// bellwether's dashboard: renders the snapshots the server streams on
// /api/events. Charts are uPlot (vendored, served by bellwether: no
// network beyond this server).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const time = (t) => t == null ? "–" : new Date(t).toISOString().slice(0, 16).replace("T", " ");
const num = (x, d = 2) => Number(x).toFixed(d);
// A patched VM whose anomaly score reaches this is drawn yellow (view.rs: YELLOW_SCORE).
const YELLOW_SCORE = 0.5;
const FINISHED = new Set(["completed", "rolled_back", "rejected"]);
const QUEUED = new Set(["waiting_for_approval", "approved", "pending"]);

// What an operator can do next, per state.
const NEXT = {
  halted: "Nothing more is deployed. Resume to go on with the next wave, or roll back every patched VM.",
  rolling_back: "Rolling the patched VMs back, critical first.",
  baking: "The wave bakes. Promote ends the bake now; pause holds the next wave; abort stops the rollout.",
  canary: "Deploying the canary stage. Pause holds the next wave; abort stops the rollout.",
  advancing: "Deploying the next wave. Pause holds the one after; abort stops the rollout.",
  deploying: "Deploying. Pause holds the next wave; abort stops the rollout.",
  waiting_for_approval: "Approve the patch (bellwether patch approve) to start it.",
  completed: "Every wave deployed and baked.",
  rolled_back: "Every patched VM runs the old version again.",
};
const ACTIONS = ["pause", "resume", "promote", "abort", "rollback"];

const charts = new Map();
// For the browser test and the console: the charts by rollout id.
window.bellwether = { charts };

function render(snap) {
  $("#fleet").textContent = `${snap.fleet_size} VMs · fleet time ${time(snap.fleet_time)} · ${snap.vms_scored} scored · forecaster ${snap.forecaster}`;
  const main = $("#rollouts");
  if (!snap.rollouts.length) return;
  const empty = $(".empty", main);
  if (empty) empty.remove();
  $("#rollout-list").innerHTML = list(snap.rollouts);
  for (const r of snap.rollouts) {
    let el = document.getElementById("rollout-" + r.id);
    if (!el) {
      el = document.createElement("article");
      el.className = "rollout";
      el.id = "rollout-" + r.id;
      el.dataset.rollout = r.id;
      el.innerHTML = `<div class="body"></div><section class="anomaly"><h3>Anomaly score of patched VMs</h3><div class="chart"></div>
        <div class="legend">highest and mean per window; dashed: drifting (${YELLOW_SCORE}); lines: waves started, rollbacks decided. Drag to zoom, double-click to reset.</div></section>
        <section class="audit-trail"><h3>Audit trail</h3><ul class="audit"></ul></section>`;
      el.addEventListener("click", onControl);
      main.appendChild(el);
    }
    $(".body", el).innerHTML = rollout(r);
    $(".audit", el).innerHTML = r.audit.length
      ? r.audit.map((a) => `<li><time>${time(a.at)}</time> ${esc(a.by)}: <b>${esc(a.action)}</b>${a.reason ? " · " + esc(a.reason) : ""}${a.applied === false ? " · <i>not applicable in this state</i>" : a.applied ? " · applied" : ""}</li>`).join("")
      : `<li class="legend">no operator command yet</li>`;
    chart(el, r);
  }
}

// Rollouts by where they are: running, queued, finished.
function list(rollouts) {
  const kind = (r) => FINISHED.has(r.state) ? "finished" : QUEUED.has(r.state) ? "queued" : "active";
  return ["active", "queued", "finished"].map((k) => {
    const rs = rollouts.filter((r) => kind(r) === k);
    if (!rs.length) return "";
    return `<div class="list-group"><h3>${k}</h3>${rs.map((r) =>
      `<a class="rollout-link" href="#rollout-${esc(r.id)}">${esc(r.patch_id || r.id)} <span class="state ${esc(r.state)}">${esc(r.state.replace("_", " "))}</span></a>`).join("")}</div>`;
  }).join("");
}

function rollout(r) {
  const share = (n, w) => w.vms ? 100 * n / w.vms : 0;
  const waves = r.waves.map((w) => `<li class="wave"><span>wave ${w.wave}</span>
      <div class="bar"><div style="width:${share(w.patched, w)}%"></div><div class="back" style="width:${share(w.rolled_back, w)}%"></div></div>
      <span title="${w.patched} on the patch, ${w.rolled_back} rolled back, ${w.vms - w.patched - w.rolled_back} to patch, of ${w.vms}">${w.patched} on${w.rolled_back ? ` · ${w.rolled_back} back` : ""} / ${w.vms}</span></li>`).join("");
  const planned = r.waves_planned != null ? ` of ${r.waves_planned} planned` : "";
  const steps = r.waves.map((w, i) => {
    const last = i === r.waves.length - 1;
    const state = w.rolled_back === w.vms ? "rolled back"
      : !last ? "baked"
      : ({ baking: "baking", halted: "halted", rolling_back: "rolling back", completed: "baked" }[r.state] || "deploying");
    return `<tr class="step" data-state="${esc(state)}"><td>${w.wave}</td><td>${w.vms}</td><td>${esc(state)}</td><td>${time(w.started_at)}</td>
      <td>${w.patched}</td><td class="${w.rolled_back ? "back" : ""}">${w.rolled_back}</td><td>${w.vms - w.patched - w.rolled_back}</td></tr>`;
  }).join("");
  const groups = r.groups.map((g) => `<span class="group" data-health="${g.health}" data-reached="${g.reached}"
      title="${g.reached} of ${g.vms} VMs reached">${esc(g.name)}: ${g.health}</span>`).join("");
  const rollbacks = r.rollbacks.map((b) => `<tr class="rollback">
      <td class="vm ${b.critical ? "critical" : ""}">${esc(b.vm)}${b.critical ? " (critical)" : ""}</td>
      <td><div class="reason">${esc(b.reason.split(";")[0])}</div><ul class="evidence">${b.evidence.map((e) =>
        `<li>${esc(e.metric)}: ${num(e.observed)} vs ${num(e.forecast)} forecast, ${num(e.deviation, 1)}σ (threshold ${num(e.threshold, 1)}σ)</li>`).join("")}</ul></td>
      <td>decided ${time(b.decided_at)}<br>${b.executed_at ? "rolled back " + time(b.executed_at) : "pending"}</td></tr>`).join("");
  const top = r.top_vms.map((v) => `${esc(v.vm)} ${num(v.score)}`).join(" · ") || "–";
  const risk = r.failure_risk == null
    ? `<span class="risk">–</span><div class="legend">no failure model loaded</div>`
    : `<span class="risk">${num(100 * r.failure_risk, 0)}%</span>`;
  const reason = r.state_reason ? `<div class="state-reason"><b>Why ${esc(r.state.replace("_", " "))}:</b> ${esc(r.state_reason)}</div>` : "";
  const next = NEXT[r.state] ? `<div class="next">${esc(NEXT[r.state])}</div>` : "";
  const controls = FINISHED.has(r.state) ? "" : `<div class="controls">${ACTIONS.map((a) =>
    `<button type="button" data-action="${a}" class="${a === "rollback" || a === "abort" ? "danger" : ""}">${a === "rollback" ? "emergency rollback" : a}</button>`).join("")}
    <span class="control-result" role="status"></span></div>`;
  const paused = r.paused ? ` <span class="state paused">paused</span>` : "";
  return `<h2>${esc(r.patch_id || r.id)} <span class="state ${esc(r.state)}">${esc(r.state.replace("_", " "))}</span>${paused}</h2>
    <div class="sub">${esc(r.patch_title)} · rollout ${esc(r.id)} · ${esc(r.approval)}</div>
    ${reason}${next}${controls}
    <div class="grid">
      <section class="progress"><h3>Deployment</h3>
        <div class="bar"><div style="width:${r.patched_percent}%"></div></div>
        <div><span class="progress-percent">${num(r.patched_percent, 1)}%</span> of the fleet patched (${r.patched} VMs), ${r.waves.length} wave(s)${planned}</div>
        <ul class="waves">${waves}</ul></section>
      <section><h3>Canary groups</h3><div class="groups">${groups}</div>
        <h3 style="margin-top:1em">Failure risk</h3>${risk}
        <div class="legend">highest anomaly score now: ${top}</div></section>
    </div>
    <section class="steps-section"><h3>Steps</h3>
      <table class="steps"><tr><th>wave</th><th>VMs</th><th>state</th><th>started</th><th>on patch</th><th>rolled back</th><th>to patch</th></tr>${steps}</table></section>
    <section class="rollbacks"><h3>Rollbacks: <span class="rollback-count">${r.rollbacks.length}</span></h3>
      ${r.rollbacks.length ? `<table><tr><th>VM</th><th>Why</th><th>When</th></tr>${rollbacks}</table>` : "<p class=\"legend\">none</p>"}</section>`;
}

// The operator's token, asked once and kept for the browser session.
function token() {
  let t = sessionStorage.getItem("bellwether-token");
  if (!t) {
    t = prompt("Operator token (http.token) to control rollouts:");
    if (t) sessionStorage.setItem("bellwether-token", t);
  }
  return t;
}

async function onControl(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const article = event.currentTarget;
  const id = article.dataset.rollout, action = button.dataset.action;
  if (!confirm(`${action} rollout ${id}?`)) return;
  const t = token();
  if (!t) return;
  const result = $(".control-result", article);
  const answer = await fetch(`/api/rollouts/${encodeURIComponent(id)}/${action}`, {
    method: "POST",
    headers: { "Authorization": `Bearer ${t}`, "Content-Type": "application/json" },
    body: JSON.stringify({ by: "dashboard", reason: "from the dashboard" }),
  });
  if (answer.status === 401) sessionStorage.removeItem("bellwether-token");
  const body = await answer.json().catch(() => ({}));
  result.textContent = answer.ok ? `${action}: sent` : `${action}: ${body.error || answer.status}`;
  result.className = "control-result " + (answer.ok ? "ok" : "failed");
}

// Vertical lines at wave starts (grey) and rollback decisions (red).
function markers(r) {
  return (u) => {
    const { ctx } = u;
    const line = (t, colour) => {
      const x = u.valToPos(Date.parse(t) / 1000, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
    };
    for (const w of r.waves) if (w.started_at) line(w.started_at, "#8a8f98");
    for (const b of r.rollbacks) line(b.decided_at, "#d2322d");
  };
}

function chart(el, r) {
  const data = [r.anomaly.map((p) => p.t / 1000), r.anomaly.map((p) => p.max), r.anomaly.map((p) => p.mean),
    r.anomaly.map(() => YELLOW_SCORE)];
  const box = $(".chart", el);
  let u = charts.get(r.id);
  if (u) {
    u.__rollout = r;
    u.setData(data, false);
    u.setScale("x", u.scales.x.min == null || !u.__zoomed ? { min: data[0][0], max: data[0][data[0].length - 1] } : u.scales.x);
    return;
  }
  u = new uPlot({
    width: Math.max(320, box.clientWidth || 640), height: 200,
    // Fleet time is UTC everywhere bellwether shows it.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    scales: { y: { range: [0, 1] } },
    axes: [{}, { label: "anomaly score" }],
    series: [
      { label: "fleet time" },
      { label: "highest", stroke: "#d2322d", width: 1.5 },
      { label: "mean", stroke: "#3a6fd8", width: 1.5 },
      { label: "drifting", stroke: "#d9a400", dash: [6, 4], width: 1, points: { show: false } },
    ],
    cursor: { drag: { x: true, y: false } },
    hooks: {
      draw: [(u) => markers(u.__rollout)(u)],
      setSelect: [(u) => { u.__zoomed = true; }],
    },
  }, data, box);
  u.__rollout = r;
  u.over.addEventListener("dblclick", () => { u.__zoomed = false; });
  charts.set(r.id, u);
}

function connect() {
  const live = $("#live");
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (e) => { live.textContent = "live"; live.className = "live on"; render(JSON.parse(e.data)); });
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

connect();
