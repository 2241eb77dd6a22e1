// The viewer page: live cars on a canvas, curves per iteration (uPlot), the latest lap replayed at the control rate.
// Data comes from /api/events (server-sent events, one "update" message with whatever is new).
"use strict";

const TRAIL_POINTS = 48;        // snapshots kept per car for its trail
const MAX_MARKS = 300;          // off-track / crash marks kept on the map
const CAR_TIMEOUT_MS = 15000;   // a car not heard of for this long leaves the map

const viewer = {
  tracks: {}, trackName: null, cars: {}, marks: [], laps: {}, points: [], objects: null,
  snapshots: 0, frames: 0, curves: {}, connected: false,
};
window.viewer = viewer;

// ---------------------------------------------------------------- geometry
function speedColour(speed, maxSpeed) {
  const t = Math.max(0, Math.min(1, speed / (maxSpeed || 4)));
  return `rgb(${Math.round(255 * t)},${Math.round(255 * (1 - Math.abs(2 * t - 1)))},${Math.round(255 * (1 - t))})`;
}

function transformFor(outline, size) {
  const pts = outline.inner.concat(outline.outer);
  let lx = Infinity, ly = Infinity, hx = -Infinity, hy = -Infinity;
  for (const [x, y] of pts) { lx = Math.min(lx, x); ly = Math.min(ly, y); hx = Math.max(hx, x); hy = Math.max(hy, y); }
  const margin = 0.5;
  lx -= margin; ly -= margin; hx += margin; hy += margin;
  const scale = (size - 1) / Math.max(hx - lx, hy - ly);
  const ox = (size - 1 - (hx - lx) * scale) / 2, oy = (size - 1 - (hy - ly) * scale) / 2;
  return { scale, px: (x, y) => [(x - lx) * scale + ox, size - 1 - ((y - ly) * scale + oy)] };
}

function drawTrack(ctx, outline, tf) {
  ctx.fillStyle = "#1f5a2c";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  const path = (points) => {
    ctx.beginPath();
    points.forEach(([x, y], i) => { const [u, v] = tf.px(x, y); if (i) ctx.lineTo(u, v); else ctx.moveTo(u, v); });
    ctx.closePath();
  };
  // The road is the outer border's polygon minus the inner one's (even-odd fill of both).
  ctx.beginPath();
  for (const border of [outline.outer, outline.inner]) {
    border.forEach(([x, y], i) => { const [u, v] = tf.px(x, y); if (i) ctx.lineTo(u, v); else ctx.moveTo(u, v); });
    ctx.closePath();
  }
  ctx.fillStyle = "#46464a";
  ctx.fill("evenodd");
  ctx.strokeStyle = "#ebebeb"; ctx.lineWidth = 2;
  path(outline.outer); ctx.stroke();
  path(outline.inner); ctx.stroke();
  ctx.setLineDash([4, 6]); ctx.strokeStyle = "#dcbe28"; ctx.lineWidth = 1;
  path(outline.center); ctx.stroke(); ctx.setLineDash([]);
}

function drawCar(ctx, tf, x, y, yaw, colour, sizePx, outline = "#fff") {
  const [u, v] = tf.px(x, y);
  ctx.save();
  ctx.translate(u, v);
  ctx.rotate(-yaw);  // canvas y points down
  ctx.beginPath();
  ctx.moveTo(sizePx, 0); ctx.lineTo(-sizePx * 0.7, sizePx * 0.6); ctx.lineTo(-sizePx * 0.7, -sizePx * 0.6);
  ctx.closePath();
  ctx.fillStyle = colour; ctx.fill();
  ctx.strokeStyle = outline; ctx.lineWidth = 1.5; ctx.stroke();
  ctx.restore();
}

// A box or bot car: a rectangle of half sizes hl (along yaw) and hw (across), filled; a bot's front edge in white.
function drawObject(ctx, tf, [x, y, yaw, hl, hw], bot) {
  const c = Math.cos(yaw), s = Math.sin(yaw);
  const corners = [[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]].map(([a, b]) => tf.px(x + a * c - b * s, y + a * s + b * c));
  ctx.beginPath();
  corners.forEach(([u, v], i) => { if (i) ctx.lineTo(u, v); else ctx.moveTo(u, v); });
  ctx.closePath();
  ctx.fillStyle = bot ? "#2878fa" : "#f0961e"; ctx.fill();
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 1; ctx.stroke();
  if (bot) {
    ctx.lineWidth = 2.5; ctx.beginPath(); ctx.moveTo(...corners[0]); ctx.lineTo(...corners[1]); ctx.stroke();
  }
}

function drawMark(ctx, tf, x, y, colour) {
  const [u, v] = tf.px(x, y);
  ctx.strokeStyle = colour; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(u - 4, v - 4); ctx.lineTo(u + 4, v + 4); ctx.moveTo(u + 4, v - 4); ctx.lineTo(u - 4, v + 4);
  ctx.stroke();
}

// ---------------------------------------------------------------- live cars
function addTrack(outline) {
  viewer.tracks[outline.name] = outline;
  const select = document.getElementById("track-select");
  if (![...select.options].some((o) => o.value === outline.name)) select.add(new Option(outline.name, outline.name));
  if (viewer.trackName === null) { viewer.trackName = outline.name; select.value = outline.name; }
}

function addSnapshot(s) {
  viewer.snapshots += 1;
  const now = performance.now();
  // Object-avoidance / head-to-bot: the boxes or bots of one sampled car's env (each car has its own).
  if (s.objects) viewer.objects = { ...s.objects, track: s.track[s.id.indexOf(s.objects.car)], heard: now };
  for (let k = 0; k < s.id.length; k++) {
    const id = s.id[k];
    let car = viewer.cars[id];
    if (!car) car = viewer.cars[id] = { trail: [], status: 0, episode: -1, periodMs: 250 };
    const next = { x: s.x[k], y: s.y[k], yaw: s.yaw[k], speed: s.speed[k] };
    if (car.episode !== s.episode[k]) { car.trail = []; car.from = next; car.status = 0; }
    else { car.from = car.shown || car.to || next; car.periodMs = Math.min(2000, Math.max(50, now - car.t0)); }
    car.to = next; car.t0 = now; car.heard = now;
    car.episode = s.episode[k]; car.track = s.track[k]; car.maxSpeed = s.max_speed_mps; car.evaluation = s.evaluation;
    car.trail.push(next);
    if (car.trail.length > TRAIL_POINTS) car.trail.shift();
    if (s.status[k] !== 0 && car.status === 0) {
      viewer.marks.push({ x: next.x, y: next.y, track: s.track[k], crash: s.status[k] === 2 });
      if (viewer.marks.length > MAX_MARKS) viewer.marks.shift();
    }
    car.status = s.status[k];
  }
}

const trackCanvas = document.getElementById("track");
const trackCtx = trackCanvas.getContext("2d");
let background = null;  // the drawn track, redrawn only when the shown track changes

function drawLive() {
  const outline = viewer.tracks[viewer.trackName];
  const now = performance.now();
  if (!outline) {
    trackCtx.fillStyle = "#1f5a2c"; trackCtx.fillRect(0, 0, trackCanvas.width, trackCanvas.height);
    trackCtx.fillStyle = "#ddd"; trackCtx.fillText("waiting for the env runners' first cars…", 20, 30);
    return;
  }
  if (!background || background.name !== outline.name) {
    const off = document.createElement("canvas");
    off.width = trackCanvas.width; off.height = trackCanvas.height;
    const tf = transformFor(outline, off.width);
    drawTrack(off.getContext("2d"), outline, tf);
    background = { name: outline.name, canvas: off, tf };
  }
  const tf = background.tf;
  trackCtx.drawImage(background.canvas, 0, 0);
  for (const m of viewer.marks) if (m.track === outline.name) drawMark(trackCtx, tf, m.x, m.y, m.crash ? "#ffa500" : "#ff4040");
  const objects = viewer.objects;
  if (objects && objects.track === outline.name && now - objects.heard < CAR_TIMEOUT_MS) {
    for (const rect of objects.rects) drawObject(trackCtx, tf, rect, objects.bots);
  }
  let shown = 0;
  for (const [id, car] of Object.entries(viewer.cars)) {
    if (now - car.heard > CAR_TIMEOUT_MS) { delete viewer.cars[id]; continue; }
    if (car.track !== outline.name) continue;
    shown += 1;
    for (let i = 1; i < car.trail.length; i++) {
      const a = tf.px(car.trail[i - 1].x, car.trail[i - 1].y), b = tf.px(car.trail[i].x, car.trail[i].y);
      trackCtx.strokeStyle = speedColour(car.trail[i].speed, car.maxSpeed); trackCtx.lineWidth = 2;
      trackCtx.beginPath(); trackCtx.moveTo(a[0], a[1]); trackCtx.lineTo(b[0], b[1]); trackCtx.stroke();
    }
    // Glide from the previous snapshot to the latest over one publishing period.
    const t = Math.min(1, (now - car.t0) / car.periodMs);
    const f = car.from, g = car.to;
    const dyaw = Math.atan2(Math.sin(g.yaw - f.yaw), Math.cos(g.yaw - f.yaw));
    car.shown = { x: f.x + (g.x - f.x) * t, y: f.y + (g.y - f.y) * t, yaw: f.yaw + dyaw * t, speed: g.speed };
    drawCar(trackCtx, tf, car.shown.x, car.shown.y, car.shown.yaw, speedColour(g.speed, car.maxSpeed),
            Math.max(5, 0.25 * tf.scale), car.evaluation ? "#ffe14d" : "#fff");
  }
  document.getElementById("cars-info").textContent =
    `${shown} cars on ${outline.name} · ${Object.keys(viewer.cars).length} in all · ${viewer.snapshots} snapshots`;
}

// ---------------------------------------------------------------- curves
const CURVES = [
  { id: "return", el: "chart-return", title: "episode return (mean)", series: [["return", "return", "#1f77b4"]] },
  { id: "progress", el: "chart-progress", title: "lap progress %",
    series: [["progress_pct", "mean", "#2ca02c"], ["progress_max_pct", "max", "#98df8a"], ["eval_progress_pct", "eval", "#9467bd"]] },
  { id: "lap", el: "chart-lap", title: "lap time s (mean)", series: [["lap_time_s", "lap time", "#d62728"]] },
  { id: "offtrack", el: "chart-offtrack", title: "off-track rate %", series: [["offtrack_pct", "off-track", "#ff7f0e"]] },
  { id: "steps", el: "chart-steps", title: "env steps/s", series: [["env_steps_per_s", "steps/s", "#8c564b"]] },
];

function makeCharts() {
  for (const c of CURVES) {
    const el = document.getElementById(c.el);
    const opts = {
      title: c.title, width: Math.max(380, el.clientWidth || 420), height: 180,
      scales: { x: { time: false } },
      axes: [{ label: "iteration" }, {}],
      series: [{ label: "iteration" }, ...c.series.map(([, label, colour]) => ({ label, stroke: colour, width: 2, spanGaps: true }))],
    };
    const data = [[], ...c.series.map(() => [])];
    viewer.curves[c.id] = new uPlot(opts, data, el);
    viewer.curves[c.id].spec = c;
  }
}

function addPoints(points) {
  for (const p of points) {
    p.offtrack_pct = p.offtrack_rate === null || p.offtrack_rate === undefined ? null : 100 * p.offtrack_rate;
    // A restart from a checkpoint repeats iterations: the newer result replaces the older.
    while (viewer.points.length && viewer.points[viewer.points.length - 1].iteration >= p.iteration) viewer.points.pop();
    viewer.points.push(p);
  }
  for (const chart of Object.values(viewer.curves)) {
    const data = [viewer.points.map((p) => p.iteration), ...chart.spec.series.map(([key]) => viewer.points.map((p) => p[key] ?? null))];
    chart.setData(data);
  }
  const last = viewer.points[viewer.points.length - 1];
  if (last) setStatus(`iteration ${last.iteration} · ${last.env_steps.toLocaleString()} env steps`);
}

// ---------------------------------------------------------------- latest lap
const lapCanvas = document.getElementById("lap");
const lapCtx = lapCanvas.getContext("2d");
let lapShown = null;

function showLap(lap) {
  const outline = viewer.tracks[lap.track];
  lapShown = { lap, start: performance.now(), outline, tf: outline ? transformFor(outline, lapCanvas.width) : null };
  const kind = lap.kind === "evaluation" ? "evaluation episode" : "training episode (no evaluation episode yet)";
  document.getElementById("lap-title").textContent = `latest ${kind}`;
  const lapTime = lap.lap_time_s === null ? "no lap completed" : `lap ${lap.lap_time_s.toFixed(2)} s`;
  document.getElementById("lap-info").textContent =
    `runner ${lap.runner} car ${lap.car} · ${lap.track} · ${lap.status} · progress ${(lap.progress_pct ?? 0).toFixed(1)} % · ${lapTime} · ` +
    `${lap.steps} steps replayed at ${lap.control_hz} Hz`;
}

function drawLap() {
  if (!lapShown || !lapShown.tf) return;
  const { lap, tf, outline } = lapShown;
  const n = lap.x.length;
  const hz = lap.control_hz || 15;
  const i = Math.floor(((performance.now() - lapShown.start) / 1000) * hz) % (n + Math.round(hz));  // a 1 s pause at the end
  const k = Math.min(i, n - 1);
  drawTrack(lapCtx, outline, tf);
  for (let j = 1; j <= k; j++) {
    const a = tf.px(lap.x[j - 1], lap.y[j - 1]), b = tf.px(lap.x[j], lap.y[j]);
    lapCtx.strokeStyle = speedColour(lap.speed[j], lap.max_speed_mps); lapCtx.lineWidth = 3;
    lapCtx.beginPath(); lapCtx.moveTo(a[0], a[1]); lapCtx.lineTo(b[0], b[1]); lapCtx.stroke();
  }
  drawCar(lapCtx, tf, lap.x[k], lap.y[k], lap.yaw[k], "#e61e1e", Math.max(6, 0.3 * tf.scale));
  lapCtx.fillStyle = "#fff";
  lapCtx.fillText(`t ${(k / hz).toFixed(2)} s   ${lap.speed[k].toFixed(2)} m/s`, 10, 16);
}

function addLaps(laps) {
  for (const [kind, lap] of Object.entries(laps)) viewer.laps[kind] = lap;
  // Evaluation laps first: they are the policy's deterministic driving.
  const best = viewer.laps.evaluation || viewer.laps.training;
  if (best) showLap(best);
}

// ---------------------------------------------------------------- wiring
function setStatus(text) { document.getElementById("status").textContent = (viewer.connected ? "live · " : "disconnected · ") + text; }

function frame() {
  viewer.frames += 1;
  drawLive();
  drawLap();
  requestAnimationFrame(frame);
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  document.getElementById("run").textContent = info.run;
  const box = document.getElementById("videos");
  if (info.videos.length) {
    box.innerHTML = `<h2>latest rollout video</h2>`;
    const video = document.createElement("video");
    video.src = `/video/${info.videos[0]}`; video.controls = true; video.loop = true; video.muted = true;
    box.appendChild(video);
  }
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { viewer.connected = true; setStatus("waiting for the first iteration"); };
  source.onerror = () => { viewer.connected = false; setStatus("reconnecting…"); };
  source.addEventListener("update", (event) => {
    const news = JSON.parse(event.data);
    (news.tracks || []).forEach(addTrack);
    (news.snapshots || []).forEach(addSnapshot);
    if (news.iterations) addPoints(news.iterations);
    if (news.laps) addLaps(news.laps);
    if (lapShown && !lapShown.tf && viewer.tracks[lapShown.lap.track]) showLap(lapShown.lap);
  });
}

document.getElementById("track-select").addEventListener("change", (e) => { viewer.trackName = e.target.value; });
makeCharts();
loadInfo();
connect();
requestAnimationFrame(frame);
