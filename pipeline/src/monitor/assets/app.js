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
window.bellwether = { charts, drill: [] };

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
        <section class="report"><h3>Canary analysis: patched VMs against their unpatched cohorts</h3>
          <table class="verdicts"></table><div class="report-charts"></div>
          <div class="legend">per metric, in the patched VMs' sigmas: red, their deviation from their forecasts (median, middle half shaded); grey, their cohorts' concurrent move. A patch is to blame where red leaves grey.</div></section>
        <section class="drilldown" hidden></section>
        <section class="audit-trail"><h3>Audit trail</h3><ul class="audit"></ul></section>`;
      el.addEventListener("click", onControl);
      main.appendChild(el);
    }
    $(".body", el).innerHTML = rollout(r, snap.fleet_time);
    $(".audit", el).innerHTML = r.audit.length
      ? r.audit.map((a) => `<li><time>${time(a.at)}</time> ${esc(a.by)}: <b>${esc(a.action)}</b>${a.reason ? " · " + esc(a.reason) : ""}${a.applied === false ? " · <i>not applicable in this state</i>" : a.applied ? " · applied" : ""}</li>`).join("")
      : `<li class="legend">no operator command yet</li>`;
    chart(el, r);
    // The report follows each new window, fetched (never pushed).
    const windows = r.anomaly.length ? r.anomaly[r.anomaly.length - 1].t : 0;
    if (el.dataset.reportAt !== String(windows)) {
      el.dataset.reportAt = String(windows);
      report(el, r.id);
    }
  }
}

const reportCharts = new Map();

async function report(el, id) {
  const answer = await fetch(`/api/rollouts/${encodeURIComponent(id)}/report`);
  if (!answer.ok) return;
  const rep = await answer.json();
  const fmt = (x, d = 1) => x == null ? "–" : num(x, d);
  $(".verdicts", el).innerHTML = `<tr><th>metric</th><th>verdict</th><th>canary σ</th><th>control σ</th><th>vs peers σ</th><th>Mann-Whitney p</th><th>anomalous</th></tr>` +
    rep.metrics.map((m) => {
      const v = m.verdict;
      const verdict = v.anomalous ? "fail" : "pass";
      return `<tr class="verdict" data-metric="${esc(m.metric)}" data-verdict="${verdict}"><td>${esc(m.metric)}</td><td class="${verdict}">${verdict}</td>
        <td>${fmt(v.canary_median)}</td><td>${fmt(v.control_median)}</td><td>${fmt(v.vs_peers_median)}</td>
        <td>${v.mann_whitney_p_min == null ? "–" : v.mann_whitney_p_min.toExponential(1)}</td><td>${v.anomalous}/${v.vms}</td></tr>`;
    }).join("");
  const grid = $(".report-charts", el);
  for (const m of rep.metrics) {
    const key = id + "/" + m.metric;
    const col = (side, q) => m[side].map((s) => s == null ? null : s[q]);
    const data = [m.t_ms.map((t) => t / 1000), col("canary", "p50"), col("canary", "p25"), col("canary", "p75"),
      col("control", "p50"), col("control", "p25"), col("control", "p75")];
    let u = reportCharts.get(key);
    if (u) { u.setData(data); continue; }
    const div = document.createElement("div");
    div.className = "report-chart";
    div.dataset.metric = m.metric;
    grid.appendChild(div);
    u = new uPlot({
      title: m.metric, width: 360, height: 160,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{ label: "fleet time" },
        { label: "canary", stroke: "#d2322d", width: 1.5 }, { label: "canary p25", stroke: "rgba(210,50,45,0.25)" }, { label: "canary p75", stroke: "rgba(210,50,45,0.25)" },
        { label: "control", stroke: "#8a8f98", width: 1.5 }, { label: "control p25", stroke: "rgba(138,143,152,0.25)" }, { label: "control p75", stroke: "rgba(138,143,152,0.25)" }],
      bands: [{ series: [3, 2], fill: "rgba(210,50,45,0.1)" }, { series: [6, 5], fill: "rgba(138,143,152,0.12)" }],
      legend: { show: false },
    }, data, div);
    reportCharts.set(key, u);
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

function rollout(r, now) {
  const share = (n, w) => w.vms ? 100 * n / w.vms : 0;
  const waves = r.waves.map((w) => `<li class="wave"><span>wave ${w.wave}</span>
      <div class="bar"><div style="width:${share(w.patched, w)}%"></div><div class="back" style="width:${share(w.rolled_back, w)}%"></div></div>
      <span title="${w.patched} on the patch, ${w.rolled_back} rolled back, ${w.vms - w.patched - w.rolled_back} to patch, of ${w.vms}">${w.patched} on${w.rolled_back ? ` · ${w.rolled_back} back` : ""} / ${w.vms}</span></li>`).join("");
  const planned = r.waves_planned != null ? ` of ${r.waves_planned} planned` : "";
  const steps = r.waves.map((w, i) => {
    const last = i === r.waves.length - 1;
    let state = w.rolled_back === w.vms ? "rolled back"
      : !last ? "baked"
      : ({ baking: "baking", halted: "halted", rolling_back: "rolling back", completed: "baked" }[r.state] || "deploying");
    if (last && state === "baking" && r.bake_ends_at && now) {
      const left = Math.max(0, Math.round((Date.parse(r.bake_ends_at) - Date.parse(now)) / 60000));
      state = `baking, ${left} min left${r.paused ? " (paused)" : ""}`;
    }
    const failed = w.failed || 0;
    const sick = w.patched - (w.healthy ?? w.patched);
    return `<tr class="step" data-state="${esc(state)}"><td>${w.wave}</td><td>${w.vms}</td><td>${esc(state)}</td><td>${time(w.started_at)}</td>
      <td>${w.patched}</td><td class="${sick ? "back" : ""}">${w.healthy ?? w.patched}</td><td class="${w.rolled_back ? "back" : ""}">${w.rolled_back}</td><td class="${failed ? "back" : ""}">${failed}</td><td>${w.vms - w.patched - w.rolled_back - failed}</td></tr>`;
  }).join("");
  const groups = r.groups.map((g) => `<span class="group" data-health="${g.health}" data-reached="${g.reached}"
      title="${g.reached} of ${g.vms} VMs reached">${esc(g.name)}: ${g.health}</span>`).join("");
  const rollbacks = r.rollbacks.map((b) => `<tr class="rollback">
      <td class="vm ${b.critical ? "critical" : ""}"><button type="button" class="drill" data-vm="${esc(b.vm)}" title="each metric against its forecast and its cohort">${esc(b.vm)}</button>${b.critical ? " (critical)" : ""}</td>
      <td class="trigger">${esc((b.trigger || "").replace("_", " "))}</td>
      <td><div class="reason">${esc(b.reason.split(";")[0])}</div><ul class="evidence">${b.evidence.map((e) =>
        `<li>${esc(e.metric)}: ${num(e.observed)} vs ${num(e.forecast)} forecast, ${num(e.deviation, 1)}σ (threshold ${num(e.threshold, 1)}σ)</li>`).join("")}</ul></td>
      <td>decided ${time(b.decided_at)}<br>${b.executed_at ? "rolled back " + time(b.executed_at) : "pending"}</td></tr>`).join("");
  const top = r.top_vms.map((v) => `<button type="button" class="drill" data-vm="${esc(v.vm)}">${esc(v.vm)}</button> ${num(v.score)}`).join(" · ") || "–";
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
      <table class="steps"><tr><th>wave</th><th>VMs</th><th>state</th><th>started</th><th>on patch</th><th>healthy</th><th>rolled back</th><th>failed to patch</th><th>to patch</th></tr>${steps}</table></section>
    <section class="rollbacks"><h3>Rollbacks: <span class="rollback-count">${r.rollbacks.length}</span></h3>
      ${r.rollbacks.length ? `<table><tr><th>VM</th><th>Trigger</th><th>Why</th><th>When</th></tr>${rollbacks}</table>` : "<p class=\"legend\">none</p>"}</section>`;
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
  const drill = event.target.closest("button.drill");
  if (drill) return drillDown(event.currentTarget, drill.dataset.vm);
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

// A VM's drill-down, fetched when asked for: each metric observed against
// its forecast interval and its cohort's band, and its failure risk.
async function drillDown(article, vm) {
  const id = article.dataset.rollout;
  const box = $(".drilldown", article);
  box.hidden = false;
  box.innerHTML = `<h3>${esc(vm)}: loading…</h3>`;
  const answer = await fetch(`/api/rollouts/${encodeURIComponent(id)}/vms/${encodeURIComponent(vm)}`);
  const d = await answer.json();
  if (!answer.ok) { box.innerHTML = `<h3>${esc(vm)}</h3><p class="legend">${esc(d.error)}</p>`; return; }
  const r = charts.get(id).__rollout;
  const rollback = r.rollbacks.find((b) => b.vm === vm);
  box.innerHTML = `<h3>${esc(vm)}${d.wave ? ` (wave ${d.wave})` : ""}: each metric against its forecast (blue band) and its unpatched cohort (grey band); grey line: patched${rollback ? "; red line: rolled back" : ""}</h3>
    <div class="drill-charts"></div><div class="drivers legend"></div>`;
  const grid = $(".drill-charts", box);
  window.bellwether.drill = [];
  const t = d.t_ms.map((ms) => ms / 1000);
  const marks = (u) => {
    const line = (at, colour) => {
      const x = u.valToPos(Date.parse(at) / 1000, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      u.ctx.save(); u.ctx.strokeStyle = colour; u.ctx.beginPath();
      u.ctx.moveTo(x, u.bbox.top); u.ctx.lineTo(x, u.bbox.top + u.bbox.height); u.ctx.stroke(); u.ctx.restore();
    };
    if (d.wave_started_at) line(d.wave_started_at, "#8a8f98");
    if (rollback) line(rollback.decided_at, "#d2322d");
  };
  const opts = (title, series, bands) => ({
    title, width: 360, height: 180, series: [{ label: "fleet time" }, ...series], bands,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    hooks: { draw: [marks] },
  });
  for (const m of d.metrics) {
    const div = document.createElement("div");
    div.className = "drill-chart";
    div.dataset.metric = m.metric;
    grid.appendChild(div);
    window.bellwether.drill.push(new uPlot(opts(`${m.metric} (threshold ${num(m.threshold, 1)}σ)`, [
      { label: "observed", stroke: "#1d2330", width: 1.5 },
      { label: "forecast", stroke: "#3a6fd8", dash: [4, 3] },
      { label: "forecast low", stroke: "rgba(58,111,216,0.3)" },
      { label: "forecast high", stroke: "rgba(58,111,216,0.3)" },
      { label: "cohort low", stroke: "rgba(138,143,152,0.4)" },
      { label: "cohort high", stroke: "rgba(138,143,152,0.4)" },
    ], [{ series: [4, 3], fill: "rgba(58,111,216,0.12)" }, { series: [6, 5], fill: "rgba(138,143,152,0.12)" }]),
    [t, m.observed, m.forecast, m.forecast_low, m.forecast_high, m.cohort_low, m.cohort_high], div));
  }
  if (d.failure_risk.some((x) => x != null)) {
    const div = document.createElement("div");
    div.className = "drill-chart";
    div.dataset.metric = "failure_risk";
    grid.appendChild(div);
    const acts = d.risk_threshold;
    const series = [{ label: "risk", stroke: "#d2322d", width: 1.5 }];
    const data = [t, d.failure_risk];
    if (acts != null) {
      series.push({ label: `rolls back at ${num(acts)}`, stroke: "#d9a400", dash: [6, 4], points: { show: false } });
      data.push(t.map(() => acts));
    }
    window.bellwether.drill.push(new uPlot({ ...opts(acts != null ? `failure risk (acts at ${num(acts)})` : "failure risk (not acted on)", series, []),
      scales: { y: { range: [0, 1] } } }, data, div));
    $(".drivers", box).textContent = "latest risk drivers: " +
      (d.drivers.map((x) => `${x.feature} ${num(x.value)} (${num(x.contribution)})`).join(" · ") || "none");
  }
  box.scrollIntoView({ block: "nearest" });
}

// The rollouts as the feed told them: a snapshot, then deltas (only the
// rollouts that changed, with only their new anomaly points).
const store = new Map();

function merge(delta) {
  for (const r of delta.rollouts) {
    const old = store.get(r.id);
    if (old) {
      const from = r.anomaly.length ? r.anomaly[0].t : Infinity;
      r.anomaly = old.anomaly.filter((p) => p.t < from).concat(r.anomaly).slice(-288);
      const fresh = new Map(r.rollbacks.map((b) => [b.vm, b]));
      r.rollbacks = old.rollbacks.map((b) => fresh.get(b.vm) || b)
        .concat(r.rollbacks.filter((b) => !old.rollbacks.some((o) => o.vm === b.vm)));
    }
    store.set(r.id, r);
  }
  return { ...delta, rollouts: delta.order.map((id) => store.get(id)).filter(Boolean) };
}

function connect() {
  const live = $("#live");
  const source = new EventSource("/api/events");
  const on = () => { live.textContent = "live"; live.className = "live on"; };
  source.addEventListener("snapshot", (e) => {
    on();
    const snap = JSON.parse(e.data);
    store.clear();
    for (const r of snap.rollouts) store.set(r.id, r);
    render(snap);
  });
  source.addEventListener("delta", (e) => { on(); render(merge(JSON.parse(e.data))); });
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

connect();
