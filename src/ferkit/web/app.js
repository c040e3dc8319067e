// ferkit's page: the browser camera streamed to /v1/stream, and single photos posted to
// /v1/predict. Plain JavaScript, no dependencies, no build step.
"use strict";

// Same colours as ferkit.draw.COLORS (which are BGR there).
const COLORS = {
  angry: "rgb(220,40,40)", disgust: "rgb(40,140,40)", fear: "rgb(160,60,160)",
  happy: "rgb(255,200,0)", sad: "rgb(30,120,200)", surprise: "rgb(255,160,0)",
  neutral: "rgb(180,180,180)",
};
const CAPTURE_WIDTH = 640;   // frames wider than this (px) are downscaled before sending; the server
                             // detects on a 320 px copy and crops the faces from this frame
const JPEG_QUALITY = 0.8;
const ANSWER_TIMEOUT_MS = 5000;

const $ = (id) => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), chart = $("chart");
const capture = document.createElement("canvas");
let classNames = Object.keys(COLORS), maxUploadBytes = 10 * 1024 * 1024;
let socket = null, waitingSince = 0, fps = 0, lastAnswer = 0;

function colorOf(label) { return COLORS[label] || "rgb(0,255,0)"; }

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function showMessage(id, text) {
  const el = $(id);
  el.textContent = text || "";
  el.hidden = !text;
}

function caption(face) {
  const id = face.track_id !== undefined ? `#${face.track_id} ` : "";
  return `${id}${face.label} ${face.score.toFixed(2)}`;
}

// Boxes (x, y, w, h) and landmarks [x, y] are in the pixels of the image the server saw;
// scale maps them to the canvas. Each landmark (YuNet's eyes, nose tip, mouth corners) is a dot.
function drawFaces(ctx, faces, scale) {
  const font = Math.max(12, Math.round(ctx.canvas.width / 40));
  const dot = Math.max(2, Math.round(ctx.canvas.width / 250));
  ctx.lineWidth = Math.max(2, Math.round(ctx.canvas.width / 300));
  ctx.font = `${font}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  for (const face of faces) {
    const [x, y, w, h] = face.box.map((v) => v * scale);
    const text = caption(face);
    ctx.strokeStyle = ctx.fillStyle = colorOf(face.label);
    ctx.strokeRect(x, y, w, h);
    for (const [px, py] of face.landmarks || []) {
      ctx.beginPath();
      ctx.arc(px * scale, py * scale, dot, 0, 2 * Math.PI);
      ctx.fill();
    }
    const tw = ctx.measureText(text).width + 8;
    const ty = y - font - 6 >= 0 ? y : y + h + font + 6;
    ctx.fillRect(x, ty - font - 6, tw, font + 6);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x + 4, ty - 3);
  }
}

// The faces also go into a list (with data attributes), for screen readers and tests.
function listFaces(list, faces) {
  list.replaceChildren(...faces.map((face) => {
    const li = document.createElement("li");
    li.className = "face";
    li.dataset.label = face.label;
    li.dataset.score = face.score.toFixed(4);
    li.dataset.box = face.box.join(",");
    if (face.track_id !== undefined) li.dataset.trackId = face.track_id;
    if (face.landmarks) li.dataset.landmarks = JSON.stringify(face.landmarks);
    li.dataset.roll = face.roll;
    const top = Object.entries(face.probs).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(", ");
    li.textContent = `${caption(face)} at (${face.box.join(", ")}): ${top}`;
    return li;
  }));
}

function buildChart() {
  chart.replaceChildren(...classNames.map((name) => {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.emotion = name;
    row.innerHTML = '<span class="bar-name"></span><span class="bar-track"><span class="bar"></span></span>' +
      '<span class="bar-value">0%</span>';
    row.querySelector(".bar-name").textContent = name;
    row.querySelector(".bar").style.background = colorOf(name);
    return row;
  }));
}

function updateChart(probs) {
  chart.hidden = !probs;
  if (!probs) return;
  for (const row of chart.children) {
    const p = probs[row.dataset.emotion] || 0;
    row.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".bar-value").textContent = `${(100 * p).toFixed(0)}%`;
  }
}

function showLive(msg) {
  const now = performance.now();
  if (lastAnswer) fps = fps ? 0.9 * fps + 0.1 * (1000 / (now - lastAnswer)) : 1000 / (now - lastAnswer);
  lastAnswer = now;
  $("fps").textContent = `${fps.toFixed(1)} fps, server ${msg.server_ms.toFixed(0)} ms/frame`;
  const dpr = window.devicePixelRatio || 1;
  overlay.width = Math.round(overlay.clientWidth * dpr);
  overlay.height = Math.round(overlay.clientHeight * dpr);
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  drawFaces(ctx, msg.faces, overlay.width / msg.width);
  listFaces($("faces"), msg.faces);
  updateChart(msg.faces.length ? msg.faces[0].probs : null);
  $("live").dataset.state = msg.faces.length ? "faces" : "no-face";
  setStatus(msg.faces.length ? `live: ${msg.faces.length} face(s)` : "live: no face in view");
}

function sendFrame() {
  const ready = socket && socket.readyState === WebSocket.OPEN && video.readyState >= 2 && video.videoWidth;
  if (!ready || (waitingSince && performance.now() - waitingSince < ANSWER_TIMEOUT_MS)) return;
  const width = Math.min(CAPTURE_WIDTH, video.videoWidth);
  capture.width = width;
  capture.height = Math.round(video.videoHeight * width / video.videoWidth);
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  waitingSince = performance.now();
  capture.toBlob((blob) => {
    if (blob && socket && socket.readyState === WebSocket.OPEN) socket.send(blob);
    else waitingSince = 0;
  }, "image/jpeg", JPEG_QUALITY);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(`${scheme}${location.host}/v1/stream`);
  socket.onopen = () => { waitingSince = 0; setStatus("live"); };
  socket.onmessage = (event) => {
    waitingSince = 0;
    const msg = JSON.parse(event.data);
    if (msg.type === "faces") showLive(msg);
    else setStatus(`server: ${msg.detail}`, true);
  };
  socket.onclose = () => {
    setStatus("connection to the server lost; reconnecting", true);
    setTimeout(connect, 1000);
  };
}

async function startCamera() {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage("camera-message", "The browser gives the camera only to pages on https or localhost, and this " +
      "page came over plain http from another address. Start the server with --ssl-certfile and " +
      "--ssl-keyfile and open its https address, or open the page on the machine itself. " +
      "The photo upload still works.");
    setStatus("no camera");
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    await video.play();
  } catch (err) {
    const why = {
      NotAllowedError: "Camera permission was denied: allow the camera for this site in the browser's " +
        "settings and reload the page.",
      NotFoundError: "No camera was found on this device.",
      OverconstrainedError: "No camera here can give a video stream.",
      NotReadableError: "The camera is in use by another program, or the system blocked it.",
    }[err.name] || `The camera could not be started (${err.name}: ${err.message}).`;
    showMessage("camera-message", `${why} The photo upload still works.`);
    setStatus("no camera");
    return;
  }
  $("live").dataset.state = "streaming";
  connect();
  setInterval(sendFrame, 10);
}

async function uploadPhoto(event) {
  event.preventDefault();
  const file = $("file").files[0];
  const canvas = $("photo-canvas");
  listFaces($("photo-faces"), []);
  canvas.hidden = true;  // no stale result beside a new message
  delete $("photo").dataset.state;
  if (!file) { showMessage("upload-message", "Choose a photo first."); return; }
  if (file.size > maxUploadBytes) {
    showMessage("upload-message", `${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the server takes ` +
      `up to ${(maxUploadBytes / 1e6).toFixed(1)} MB.`);
    return;
  }
  showMessage("upload-message", `Sending ${file.name}...`);
  const form = new FormData();
  form.append("file", file);
  let answer;
  try {
    const response = await fetch("/v1/predict", { method: "POST", body: form });
    answer = await response.json();
    if (!response.ok) { showMessage("upload-message", `Refused: ${answer.detail}`); return; }
  } catch (err) {
    showMessage("upload-message", `The server could not be reached (${err.message}).`);
    return;
  }
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch (err) { bitmap = null; }
  if (bitmap) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    drawFaces(ctx, answer.faces, 1);
    canvas.hidden = false;
  }
  listFaces($("photo-faces"), answer.faces);
  showMessage("upload-message", answer.faces.length ? `${answer.faces.length} face(s) in ${file.name}.`
    : `No face found in ${file.name}.`);
  $("photo").dataset.state = answer.faces.length ? "faces" : "no-face";
}

async function main() {
  $("upload").addEventListener("submit", uploadPhoto);
  $("file").addEventListener("change", () => $("upload").requestSubmit());
  try {
    const health = await (await fetch("/health")).json();
    classNames = health.class_names;
    maxUploadBytes = health.max_upload_bytes;
  } catch (err) {
    setStatus(`the server does not answer (${err.message})`, true);
  }
  buildChart();
  await startCamera();
}

main();
