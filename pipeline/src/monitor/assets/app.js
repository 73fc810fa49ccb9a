// bellwether's dashboard: renders the snapshots the server streams on
// /api/events. No library, no network beyond this server.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const time = (ms) => ms == null ? "–" : new Date(ms).toISOString().slice(0, 16).replace("T", " ");
const num = (x, d = 2) => Number(x).toFixed(d);

function render(snap) {
  $("#fleet").textContent = `${snap.fleet_size} VMs · fleet time ${time(snap.fleet_time)} · ${snap.vms_scored} scored · forecaster ${snap.forecaster}`;
  const main = $("#rollouts");
  if (!snap.rollouts.length) return;
  const empty = $(".empty", main);
  if (empty) empty.remove();
  for (const r of snap.rollouts) {
    let el = document.getElementById("rollout-" + r.id);
    if (!el) {
      el = document.createElement("article");
      el.className = "rollout";
      el.id = "rollout-" + r.id;
      main.appendChild(el);
    }
    el.innerHTML = rollout(r);
    chart($("canvas", el), r.anomaly);
  }
}

function rollout(r) {
  const share = (n, w) => w.vms ? 100 * n / w.vms : 0;
  const waves = r.waves.map((w) => `<li class="wave"><span>wave ${w.wave}</span>
      <div class="bar"><div style="width:${share(w.patched, w)}%"></div><div class="back" style="width:${share(w.rolled_back, w)}%"></div></div>
      <span title="${w.patched} on the patch, ${w.rolled_back} rolled back, ${w.vms - w.patched - w.rolled_back} to patch, of ${w.vms}">${w.patched} on${w.rolled_back ? ` · ${w.rolled_back} back` : ""} / ${w.vms}</span></li>`).join("");
  const planned = r.waves_planned != null ? ` of ${r.waves_planned} planned` : "";
  const groups = r.groups.map((g) => `<span class="group" data-health="${g.health}" data-reached="${g.reached}"
      title="${g.reached} of ${g.vms} VMs reached">${esc(g.name)}: ${g.health}</span>`).join("");
  const rollbacks = r.rollbacks.map((b) => `<tr class="rollback">
      <td class="vm ${b.critical ? "critical" : ""}">${esc(b.vm)}${b.critical ? " (critical)" : ""}</td>
      <td><div class="reason">${esc(b.reason)}</div><ul class="evidence">${b.evidence.map((e) =>
        `<li>${esc(e.metric)}: ${num(e.observed)} vs ${num(e.forecast)} forecast, ${num(e.deviation, 1)}σ (threshold ${num(e.threshold, 1)}σ)</li>`).join("")}</ul></td>
      <td>decided ${time(b.decided_at)}<br>${b.executed_at ? "rolled back " + time(b.executed_at) : "pending"}</td></tr>`).join("");
  const top = r.top_vms.map((v) => `${esc(v.vm)} ${num(v.score)}`).join(" · ") || "–";
  const risk = r.failure_risk == null
    ? `<span class="risk">–</span><div class="legend">no failure model loaded</div>`
    : `<span class="risk">${num(100 * r.failure_risk, 0)}%</span>`;
  return `<h2>${esc(r.patch_id || r.id)} <span class="state ${esc(r.state)}">${esc(r.state.replace("_", " "))}</span></h2>
    <div class="sub">${esc(r.patch_title)} · rollout ${esc(r.id)}${r.approved_by ? " · approved by " + esc(r.approved_by) : ""}</div>
    <div class="grid">
      <section class="progress"><h3>Deployment</h3>
        <div class="bar"><div style="width:${r.patched_percent}%"></div></div>
        <div><span class="progress-percent">${num(r.patched_percent, 1)}%</span> of the fleet patched (${r.patched} VMs), ${r.waves.length} wave(s)${planned}</div>
        <ul class="waves">${waves}</ul></section>
      <section><h3>Canary groups</h3><div class="groups">${groups}</div>
        <h3 style="margin-top:1em">Failure risk</h3>${risk}</section>
      <section><h3>Anomaly score of patched VMs</h3><canvas width="640" height="160"></canvas>
        <div class="legend">max (red) and mean (blue) per window · highest now: ${top}</div></section>
    </div>
    <section class="rollbacks"><h3>Rollbacks: <span class="rollback-count">${r.rollbacks.length}</span></h3>
      ${r.rollbacks.length ? `<table><tr><th>VM</th><th>Why</th><th>When</th></tr>${rollbacks}</table>` : "<p class=\"legend\">none</p>"}</section>`;
}

function chart(canvas, points) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#8a8f98";
  ctx.font = "11px sans-serif";
  for (const y of [0, 0.5, 1]) {
    const py = h - pad - y * (h - 2 * pad);
    ctx.beginPath(); ctx.moveTo(pad, py); ctx.lineTo(w - 4, py); ctx.stroke();
    ctx.fillText(String(y), 2, py + 4);
  }
  if (points.length < 2) return;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const x = (t) => pad + (w - pad - 4) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => h - pad - Math.min(1, Math.max(0, v)) * (h - 2 * pad);
  for (const [key, colour] of [["mean", "#3a6fd8"], ["max", "#d2322d"]]) {
    ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
    ctx.stroke();
  }
  ctx.fillStyle = "#8a8f98";
  ctx.fillText(time(t0).slice(5), pad, h - 6);
  const last = time(t1).slice(5);
  ctx.fillText(last, w - 4 - ctx.measureText(last).width, h - 6);
}

function connect() {
  const live = $("#live");
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (e) => { live.textContent = "live"; live.className = "live on"; render(JSON.parse(e.data)); });
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

connect();
