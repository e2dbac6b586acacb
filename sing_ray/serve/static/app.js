// sing-ray's page: play the served model from an on-screen or computer keyboard.
// Talks only to the server it came from (relative URLs: works under any route prefix).
"use strict";

const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const COMPUTER_KEYS = ["a", "w", "s", "e", "d", "f", "t", "g", "y", "h", "u", "j", "k"];  // C .. C
const FIRST_OCTAVE_PITCH = 36, KEYBOARD_OCTAVES = 4;

// What the page did, for people reading the console and for tests driving a browser.
const state = {
  instruments: [], pitches: [], velocities: [], sampleRate: 16000,
  requests: 0, fetched: 0, cacheHits: 0, startRetries: 0, started: 0, playing: false,
  lastStatus: null, lastError: null, lastFrames: null, lastNote: null, lastBytes: 0,
  audioState: null,
};
window.singPage = state;

const cache = new Map();          // request body (JSON) -> {bytes, buffer, note}
let audio = null;                  // the AudioContext, made on the first gesture
let baseOctave = 4;                // the computer keyboard's C
let lastUrl = null;

const $ = (id) => document.getElementById(id);

// /instruments gives the pitch range as [lowest, highest].
function playable(pitch) {
  return pitch >= state.pitches[0] && pitch <= state.pitches[state.pitches.length - 1];
}

function midiName(pitch) {
  return NAMES[pitch % 12] + (Math.floor(pitch / 12) - 1);
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(status, message) {
  state.lastError = { status, message };
  const box = $("error");
  box.hidden = false;
  box.textContent = status === 503
    ? `The server is busy (503): ${message}. Try the note again in a moment.`
    : `The server refused the note (${status}): ${message}`;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// ---- the request --------------------------------------------------------------------

function timbre() {
  if (document.querySelector("input[name=timbre]:checked").value === "single") {
    return { instrument: $("instrument").value };
  }
  const parts = [];
  for (const row of document.querySelectorAll(".mix-row")) {
    const name = row.querySelector(".mix-instrument").value;
    const weight = Number(row.querySelector(".mix-weight").value);
    if (name && weight > 0) parts.push(`${name}:${weight}`);
  }
  return { mix: parts.join(",") };
}

function requestBody(pitch) {
  return JSON.stringify({ ...timbre(), pitch, velocity: Number($("velocity").value), format: "wav" });
}

// Frames in a PCM WAV: the data chunk's size over the block size (what the server sent,
// before the browser resamples anything).
function wavFrames(bytes) {
  const view = new DataView(bytes);
  let blockAlign = 0;
  for (let at = 12; at + 8 <= view.byteLength;) {
    const id = String.fromCharCode(...new Uint8Array(bytes, at, 4));
    const size = view.getUint32(at + 4, true);
    if (id === "fmt ") blockAlign = view.getUint16(at + 20, true);
    if (id === "data") return blockAlign ? size / blockAlign : null;
    at += 8 + size + (size % 2);
  }
  return null;
}

async function errorText(response) {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && parsed.error) return parsed.error;
  } catch (_) { /* not JSON: the proxy's own text */ }
  return text.trim() || response.statusText;
}

function audioContext() {
  if (!audio) {
    try {
      audio = new AudioContext({ sampleRate: state.sampleRate });
    } catch (_) {
      audio = new AudioContext();
    }
  }
  return audio;
}

async function fetchNote(pitch) {
  const body = requestBody(pitch);
  if (cache.has(body)) {
    state.cacheHits += 1;
    return cache.get(body);
  }
  state.requests += 1;
  const response = await fetch("synthesize", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  state.lastStatus = response.status;
  if (!response.ok) {
    const message = await errorText(response);
    throw Object.assign(new Error(message), { status: response.status });
  }
  const bytes = await response.arrayBuffer();
  state.fetched += 1;
  const buffer = await audioContext().decodeAudioData(bytes.slice(0));
  const note = { bytes, buffer, frames: wavFrames(bytes), name: response.headers.get("X-Note") || midiName(pitch) };
  cache.set(body, note);
  return note;
}

async function play(pitch, key) {
  const ctx = audioContext();
  if (ctx.state === "suspended") await ctx.resume();
  key && key.classList.add("loading");
  setStatus(`${midiName(pitch)}: asking the model…`);
  try {
    const note = await fetchNote(pitch);
    clearError();
    const source = ctx.createBufferSource();
    source.buffer = note.buffer;
    source.connect(ctx.destination);
    source.onended = () => { state.playing = false; };
    source.start();
    state.started += 1;
    state.playing = true;
    state.audioState = ctx.state;
    state.lastFrames = note.frames;
    state.lastNote = note.name;
    state.lastBytes = note.bytes.byteLength;
    setStatus(`Playing ${note.name} (${midiName(pitch)}).`);
    showNote(note);
  } catch (err) {
    setStatus(`${midiName(pitch)}: no note.`);
    showError(err.status || 0, err.message);
  } finally {
    key && key.classList.remove("loading");
  }
}

// ---- the last note: spectrogram and download -----------------------------------------

function fft(re, im) {                       // in place, radix 2
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = -2 * Math.PI / len, wr = Math.cos(angle), wi = Math.sin(angle);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr; im[b] = im[a] - ti; re[a] += tr; im[a] += ti;
        [cr, ci] = [cr * wr - ci * wi, cr * wi + ci * wr];
      }
    }
  }
}

function drawSpectrogram(samples) {
  const canvas = $("spectrogram"), g = canvas.getContext("2d");
  const size = 512, hop = Math.max(1, Math.floor((samples.length - size) / canvas.width));
  const bins = size / 2 + 1, image = g.createImageData(canvas.width, bins);
  const hann = Float32Array.from({ length: size }, (_, i) => 0.5 - 0.5 * Math.cos(2 * Math.PI * i / size));
  const re = new Float32Array(size), im = new Float32Array(size), db = new Float32Array(canvas.width * bins);
  let top = -Infinity;
  for (let x = 0; x < canvas.width; x++) {
    const start = x * hop;
    for (let i = 0; i < size; i++) { re[i] = (samples[start + i] || 0) * hann[i]; im[i] = 0; }
    fft(re, im);
    for (let b = 0; b < bins; b++) {
      const v = 10 * Math.log10(re[b] * re[b] + im[b] * im[b] + 1e-12);
      db[x * bins + b] = v;
      top = Math.max(top, v);
    }
  }
  // 80 dB of range below the note's loudest bin, so quiet and loud notes both read.
  for (let x = 0; x < canvas.width; x++) {
    for (let b = 0; b < bins; b++) {
      const v = Math.max(0, Math.min(1, (db[x * bins + b] - top + 80) / 80));
      const at = ((bins - 1 - b) * canvas.width + x) * 4;
      image.data[at] = 255 * Math.min(1, 1.8 * v);
      image.data[at + 1] = 255 * Math.max(0, Math.min(1, 1.6 * v - 0.45));
      image.data[at + 2] = 255 * Math.max(0, 0.5 - Math.abs(v - 0.3)) * 1.6;
      image.data[at + 3] = 255;
    }
  }
  g.putImageData(image, 0, 0);
}

function showNote(note) {
  $("note-name").textContent = note.name;
  drawSpectrogram(note.buffer.getChannelData(0));
  if (lastUrl) URL.revokeObjectURL(lastUrl);
  lastUrl = URL.createObjectURL(new Blob([note.bytes], { type: "audio/wav" }));
  const link = $("download");
  link.href = lastUrl;
  link.download = `${note.name}.wav`;
  link.hidden = false;
}

// ---- building the page from the model's vocabulary -------------------------------------

function fillSelect(select, values, label = (v) => v) {
  select.replaceChildren(...values.map((v) => new Option(label(v), v)));
}

function buildKeyboard() {
  const board = $("keyboard");
  board.replaceChildren();
  const first = FIRST_OCTAVE_PITCH, last = FIRST_OCTAVE_PITCH + 12 * KEYBOARD_OCTAVES;
  const whites = [];
  for (let p = first; p <= last; p++) if (![1, 3, 6, 8, 10].includes(p % 12)) whites.push(p);
  const width = 100 / whites.length;
  for (let p = first; p <= last; p++) {
    if (!playable(p)) continue;
    const black = [1, 3, 6, 8, 10].includes(p % 12);
    const key = document.createElement("button");
    key.type = "button";
    key.className = `key ${black ? "black" : "white"}`;
    key.dataset.pitch = String(p);
    key.title = midiName(p);
    key.textContent = p % 12 === 0 ? midiName(p) : "";
    if (black) {
      const left = whites.indexOf(p - 1) + 1;
      key.style.left = `calc(${left * width}% - ${width * 0.3}%)`;
      key.style.width = `${width * 0.6}%`;
    }
    key.addEventListener("click", () => play(p, key));
    board.appendChild(key);
  }
}

function updateShares() {
  const rows = [...document.querySelectorAll(".mix-row")];
  const total = rows.reduce((s, r) => s + (r.querySelector(".mix-instrument").value ? Number(r.querySelector(".mix-weight").value) : 0), 0);
  for (const r of rows) {
    const w = r.querySelector(".mix-instrument").value ? Number(r.querySelector(".mix-weight").value) : 0;
    r.querySelector(".mix-share").textContent = total ? `${Math.round(100 * w / total)} %` : "–";
  }
}

function octaveLabel() {
  $("octave-label").textContent = `keys from C${baseOctave}`;
}

// A busy server (503) is asked again, a little later each time, before the page gives up.
async function fetchInstruments(tries = 6) {
  for (let attempt = 1; ; attempt += 1) {
    const response = await fetch("instruments");
    if (response.ok) return response;
    const error = Object.assign(new Error(await errorText(response)), { status: response.status });
    if (response.status !== 503 || attempt >= tries) throw error;
    state.startRetries = attempt;
    $("model-line").textContent = `The server is busy; asking again (${attempt} of ${tries - 1})\u2026`;
    await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
  }
}

async function start() {
  try {
    const response = await fetchInstruments();
    const listing = await response.json();
    Object.assign(state, { instruments: listing.instruments, pitches: listing.pitches,
                           velocities: listing.velocities, sampleRate: listing.sample_rate || 16000 });
  } catch (err) {
    $("model-line").textContent = "The model's instruments could not be loaded.";
    showError(err.status || 0, err.message);
    return;
  }
  $("model-line").textContent = `${state.instruments.length} instruments, pitches ${state.pitches[0]}–` +
    `${state.pitches[state.pitches.length - 1]}, velocities ${state.velocities.join(", ")}.`;
  fillSelect($("instrument"), state.instruments);
  document.querySelectorAll(".mix-instrument").forEach((select, i) => {
    fillSelect(select, i < 2 ? state.instruments : ["", ...state.instruments], (v) => v || "(none)");
    if (i < 2 && state.instruments.length > i) select.value = state.instruments[i];
    select.addEventListener("change", updateShares);
  });
  document.querySelectorAll(".mix-weight").forEach((s) => s.addEventListener("input", updateShares));
  fillSelect($("velocity"), state.velocities);
  $("velocity").value = String(state.velocities.includes(100) ? 100 : state.velocities[state.velocities.length - 1]);
  document.querySelectorAll("input[name=timbre]").forEach((radio) => radio.addEventListener("change", () => {
    const mix = document.querySelector("input[name=timbre]:checked").value === "mix";
    $("mix").hidden = !mix;
    $("single").hidden = mix;
  }));
  $("octave-down").addEventListener("click", () => { baseOctave = Math.max(0, baseOctave - 1); octaveLabel(); });
  $("octave-up").addEventListener("click", () => { baseOctave = Math.min(8, baseOctave + 1); octaveLabel(); });
  document.addEventListener("keydown", (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) && event.target.type !== "range") return;
    const k = event.key.toLowerCase();
    if (k === "z") { baseOctave = Math.max(0, baseOctave - 1); octaveLabel(); return; }
    if (k === "x") { baseOctave = Math.min(8, baseOctave + 1); octaveLabel(); return; }
    const offset = COMPUTER_KEYS.indexOf(k);
    if (offset < 0) return;
    const pitch = 12 * (baseOctave + 1) + offset;
    if (!playable(pitch)) return;
    const key = document.querySelector(`.key[data-pitch="${pitch}"]`);
    key && key.classList.add("active");
    setTimeout(() => key && key.classList.remove("active"), 200);
    play(pitch, key);
  });
  octaveLabel();
  updateShares();
  buildKeyboard();
  state.ready = true;
}

document.addEventListener("DOMContentLoaded", start);
