// The centrifuge page: upload, follow the job, then play the input and the layers in sync.
"use strict";

const $ = (id) => document.getElementById(id);
const JOB_PATH = /^\/jobs\/([0-9a-f]{32})$/;
let info = null;
let pollTimer = null;

function clock(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function showError(text) {
  $("error").textContent = text ? `error: ${text}` : "";
  $("error").hidden = !text;
}

let shown = { id: null, fraction: 0 }; // the bar never moves back while one job runs

function setBar(fraction, text, id = null) {
  $("status").hidden = false;
  if (id !== shown.id) shown = { id, fraction: 0 };
  if (fraction === null) $("bar").removeAttribute("value"); // indeterminate: it still moves
  else $("bar").value = shown.fraction = id === null ? fraction : Math.max(fraction, shown.fraction);
  $("status-text").textContent = text;
}

async function loadInfo() {
  info = await (await fetch("/api/info")).json();
  for (const s of info.sizes) $("size").add(new Option(/^\d+$/.test(s) ? `${s} px` : s, s));
  $("size").value = info.default_size;
  for (const m of info.models) $("model").add(new Option(m.name, m.name));
  $("model").onchange = () => {
    $("note").textContent = info.models.find((m) => m.name === $("model").value).note;
  };
  $("model").onchange();
  $("limits").textContent =
    `up to ${Math.round(info.max_bytes / 1e6)} MB and ${Math.round(info.max_seconds / 60)} min`;
}

// -- choosing and uploading ------------------------------------------------------------------
let chosen = null;

function choose(file) {
  chosen = file || null;
  $("drop-text").textContent = chosen ? chosen.name : "Drop a video or a still here, or click to choose one";
  $("go").disabled = !chosen;
}

function upload(event) {
  event.preventDefault();
  if (!chosen) return;
  showError("");
  $("result").hidden = true;
  $("go").disabled = true;
  const q = new URLSearchParams({
    name: chosen.name, size: $("size").value, layers: $("layers").value, model: $("model").value,
  });
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/api/jobs?${q}`);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  const started = performance.now();
  xhr.upload.onprogress = (e) => {
    const secs = (performance.now() - started) / 1000;
    if (e.lengthComputable && e.loaded > 0) {
      const left = (secs / e.loaded) * (e.total - e.loaded);
      setBar(e.loaded / e.total, `uploading ${Math.round((100 * e.loaded) / e.total)}% · ${clock(left)} left`);
    }
  };
  xhr.upload.onload = () => setBar(null, "checking the file");
  xhr.onload = () => {
    $("go").disabled = false;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: xhr.statusText }; }
    if (xhr.status !== 201) {
      $("status").hidden = true;
      showError(body.error || `upload failed (${xhr.status})`);
      return;
    }
    history.pushState({}, "", `/jobs/${body.id}`);
    follow(body.id);
  };
  xhr.onerror = () => {
    $("go").disabled = false;
    $("status").hidden = true;
    showError("the upload failed: the server did not answer.");
  };
  setBar(0, "uploading");
  xhr.send(chosen);
}

// -- following a job -------------------------------------------------------------------------
// Where the bar stands: the frames done, and between two reports (every `step` frames) an estimate
// at the measured rate that never passes the next report; before the first report it creeps
// towards it, so the bar moves from the first second. The text gives the frames actually done.
function estimate(job) {
  const total = job.frames_total;
  const next = Math.min(total, job.frames_done + job.step);
  if (job.rate) {
    const ahead = Math.min(job.rate * job.since_update, 0.97 * (next - job.frames_done));
    return (job.frames_done + ahead) / total;
  }
  return (next * (1 - Math.exp(-job.elapsed / 10))) / total;
}

function describe(job) {
  if (job.state === "queued") {
    if (!job.ahead) return [null, "waiting for the worker"];
    const ahead = job.ahead === 1 ? "1 job" : `${job.ahead} jobs`;
    return [null, `waiting: ${ahead} ahead of yours in the queue`];
  }
  const frames = `frames ${job.frames_done} / ${job.frames_total}`;
  if (job.stage !== "separating" || !job.frames_total) {
    return [job.frames_done ? job.frames_done / job.frames_total : null, `${frames} · ${job.stage}`];
  }
  if (!job.frames_done) {
    const first = Math.min(job.frames_total, job.step);
    return [estimate(job), `${frames} · separating the first ${first} · ${clock(job.elapsed)}`];
  }
  return [estimate(job), `${frames} · ${clock(job.eta)} left`];
}

async function follow(id) {
  clearTimeout(pollTimer);
  let job;
  try {
    const res = await fetch(`/api/jobs/${id}`);
    job = await res.json();
    if (!res.ok) {
      $("status").hidden = true;
      showError(job.error || `no such job (${res.status})`);
      return;
    }
  } catch (err) {
    pollTimer = setTimeout(() => follow(id), 1000); // the server may be restarting
    return;
  }
  document.title = `${job.name}: ${job.state} · centrifuge`;
  if (job.state === "failed") {
    $("status").hidden = true;
    showError(job.error);
  } else if (job.state === "done") {
    setBar(1, `done: ${job.frames} frames`);
    showResult(job);
  } else {
    const [fraction, text] = describe(job);
    setBar(fraction, text, job.id);
    pollTimer = setTimeout(() => follow(id), 400);
  }
}

// -- the result: players in sync ---------------------------------------------------------------
function figure(caption, media) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(media, cap);
  return fig;
}

function video(src, muted) {
  const v = document.createElement("video");
  v.src = src;
  v.muted = muted;
  v.loop = true;
  v.preload = "auto";
  v.playsInline = true;
  return v;
}

function showResult(job) {
  const base = `/api/jobs/${job.id}`;
  const file = (name) => `${base}/files/${encodeURIComponent(name)}`;
  const layers = job.files.filter((f) => /^layer_\d+\.\w+$/.test(f));
  $("result-title").textContent = `${job.name}: ${layers.length} layers (${job.options.model}, size ${job.options.size || "native"})`;
  const players = $("players");
  players.replaceChildren();
  const still = job.frames === 1;
  const videos = [];
  if (still) {
    const img = document.createElement("img");
    img.src = `${base}/input`;
    img.alt = "input";
    players.append(figure("input", img));
  } else {
    const input = video(`${base}/input`, false);
    input.onerror = () => { // a format this browser cannot play: the preview shows the input too
      input.onerror = null;
      input.src = file("preview.mp4");
      input.nextSibling.textContent = "input | layers (preview.mp4: this browser cannot play the upload)";
    };
    videos.push(input);
    players.append(figure("input", input));
  }
  layers.forEach((name, i) => {
    if (/\.(png|jpe?g)$/.test(name)) { // a still's layers may be pictures
      const img = document.createElement("img");
      img.src = file(name);
      img.alt = `layer ${i + 1}`;
      players.append(figure(`layer ${i + 1}`, img));
      return;
    }
    const v = video(file(name), true);
    videos.push(v);
    players.append(figure(`layer ${i + 1}`, v));
  });
  $("controls").hidden = still;
  sync(videos);
  $("contact").src = file("contact.png");
  const links = $("downloads");
  links.replaceChildren();
  for (const name of job.files) {
    const a = document.createElement("a");
    a.href = file(name);
    a.download = name;
    a.textContent = name;
    const li = document.createElement("li");
    li.append(a);
    links.append(li);
  }
  const a = document.createElement("a");
  a.href = `${base}/input`;
  a.download = job.name;
  a.textContent = `${job.name} (your upload)`;
  const li = document.createElement("li");
  li.append(a);
  links.append(li);
  $("result").hidden = false;
}

// One play/pause and one seek bar for all players; the first one leads and the others follow it.
let syncTimer = null;

function sync(videos) {
  clearInterval(syncTimer);
  if (!videos.length) return;
  const lead = videos[0];
  const play = $("play");
  const seek = $("seek");
  play.textContent = "Play";
  play.onclick = () => {
    if (lead.paused) videos.forEach((v) => v.play().catch(() => {}));
    else videos.forEach((v) => v.pause());
  };
  lead.onplay = () => { play.textContent = "Pause"; };
  lead.onpause = () => { play.textContent = "Play"; };
  seek.oninput = () => {
    const t = seek.value * (lead.duration || 0);
    videos.forEach((v) => { v.currentTime = t; });
  };
  syncTimer = setInterval(() => {
    const d = lead.duration || 0;
    if (d) seek.value = lead.currentTime / d;
    $("time").textContent = `${clock(lead.currentTime)} / ${clock(d)}`;
    for (const v of videos.slice(1)) {
      if (v.readyState < 2) continue;
      if (Math.abs(v.currentTime - lead.currentTime) > 0.12) v.currentTime = lead.currentTime;
      if (v.paused !== lead.paused) { if (lead.paused) v.pause(); else v.play().catch(() => {}); }
    }
  }, 100);
}

// -- wiring ------------------------------------------------------------------------------------
function init() {
  const drop = $("drop");
  $("file").onchange = () => choose($("file").files[0]);
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files[0]);
  };
  $("form").onsubmit = upload;
  window.onpopstate = route;
  loadInfo().then(route);
}

function route() {
  const m = JOB_PATH.exec(location.pathname);
  if (m) follow(m[1]);
}

init();
