// avemo web page: upload or record a clip, show the emotion, the face crop, the waveform and the history.
// Plain JavaScript, no build step; every text from the server goes through textContent.
'use strict';

const NAMES = { ANG: 'anger', DIS: 'disgust', FEA: 'fear', HAP: 'happy', NEU: 'neutral', SAD: 'sad' };
const PAGE = 20;
const $ = (id) => document.getElementById(id);
let historyOffset = 0;
let recorder = null;

function apiKey() { return localStorage.getItem('avemo-api-key') || ''; }

// fetch + JSON; throws an Error carrying the server's {"error":{"code","message"}}.
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers['Authorization'] = 'Bearer ' + apiKey();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const err = new Error(body && body.error ? body.error.message : response.status + ' ' + response.statusText);
    err.status = response.status;
    err.code = body && body.error ? body.error.code : 'http_' + response.status;
    throw err;
  }
  return body;
}

function showError(err) {
  const box = $('error');
  if (!err) { box.hidden = true; return; }
  box.textContent = err.status === 401 ? 'This server needs an API key: enter it below.' : err.message;
  if (err.status === 401) $('key-box').open = true;
  box.hidden = false;
}

function setBusy(busy, text) {
  $('loading').hidden = !busy;
  $('loading-text').textContent = text || 'Classifying…';
  $('submit').disabled = busy || !$('file').files.length;
}

async function loadModels() {
  const select = $('model');
  try {
    const data = await api('/v1/models');
    select.textContent = '';
    for (const m of data.models) {
      const option = document.createElement('option');
      option.value = m.name;
      option.textContent = m.name + ' (' + m.modes.join(', ') + ')';
      select.appendChild(option);
    }
    if (!data.models.length) showError(new Error('The server has no model loaded.'));
  } catch (err) { showError(err); }
}

function emotionName(code) { return NAMES[code] || code; }

function renderResult(p) {
  $('result').hidden = false;
  const classes = (p.classes || []).slice();
  let top = classes.reduce((a, c) => (!a || c.probability > a.probability ? c : a), null);
  const code = top ? top.label : String(p.label);
  $('label').textContent = emotionName(code);
  $('confidence').textContent = top ? 'confidence ' + (100 * top.probability).toFixed(1) + ' %' : '';
  const parts = [];
  if (p.model) parts.push('model ' + p.model);
  if (p.mode_used || p.mode) parts.push('mode ' + (p.mode_used || p.mode));
  if (p.fallback_reason) parts.push(p.fallback_reason);
  if (typeof p.latency_ms === 'number') parts.push(p.latency_ms.toFixed(0) + ' ms');
  if (p.id !== undefined) parts.push('#' + p.id);
  $('details').textContent = parts.join(' · ');

  const bars = $('bars');
  bars.textContent = '';
  for (const c of classes) {
    const li = document.createElement('li');
    li.className = c === top ? 'top' : '';
    li.dataset.label = c.label;
    const name = document.createElement('span');
    name.textContent = emotionName(c.label);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = (100 * c.probability).toFixed(1) + '%';
    bar.appendChild(fill);
    const pct = document.createElement('span');
    pct.className = 'pct';
    pct.textContent = (100 * c.probability).toFixed(1) + '%';
    li.append(name, bar, pct);
    bars.appendChild(li);
  }
  const face = $('face');
  if (typeof p.face_crop === 'string' && p.face_crop.startsWith('data:image/')) {
    face.src = p.face_crop;
    face.hidden = false;
  } else {
    face.hidden = true;
    face.removeAttribute('src');
  }
}

// The waveform of the clip's audio, decoded in the browser (Web Audio API).
async function drawWaveform(blob) {
  const canvas = $('wave');
  const note = $('wave-note');
  const g = canvas.getContext('2d');
  canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1) || 800;
  g.clearRect(0, 0, canvas.width, canvas.height);
  canvas.hidden = false;
  note.textContent = '';
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { note.textContent = 'This browser cannot draw the waveform.'; return; }
  const ctx = new Ctx();
  try {
    const audio = await ctx.decodeAudioData(await blob.arrayBuffer());
    const data = audio.getChannelData(0);
    const w = canvas.width, h = canvas.height, step = Math.max(1, Math.floor(data.length / w));
    g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent') || '#3056d3';
    for (let x = 0; x < w; x++) {
      let lo = 1, hi = -1;
      for (let i = x * step; i < Math.min(data.length, (x + 1) * step); i++) {
        if (data[i] < lo) lo = data[i];
        if (data[i] > hi) hi = data[i];
      }
      if (hi < lo) continue;
      g.fillRect(x, (1 - hi) * h / 2, 1, Math.max(1, (hi - lo) * h / 2));
    }
    note.textContent = audio.duration.toFixed(2) + ' s of audio';
  } catch (e) {
    canvas.hidden = true;
    note.textContent = 'No waveform: the browser cannot decode this file\'s audio (the server still classifies it).';
  } finally {
    if (ctx.close) ctx.close();
  }
}

async function predict(body, query, contentType, blob) {
  showError(null);
  setBusy(true);
  drawWaveform(blob);
  try {
    const headers = contentType ? { 'Content-Type': contentType } : {};
    const p = await api('/v1/predict?' + new URLSearchParams(query), { method: 'POST', body, headers });
    renderResult(p);
    historyOffset = 0;
    loadHistory();
  } catch (err) {
    showError(err);
  } finally {
    setBusy(false);
  }
}

function onSubmit(event) {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  const form = new FormData();
  form.append('file', file, file.name);
  const query = { mode: $('mode').value };
  if ($('model').value) query.model = $('model').value;
  predict(form, query, null, file);
}

async function onRecord() {
  const button = $('record');
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError(new Error('Recording needs a browser with MediaRecorder, on https or localhost.'));
    return;
  }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
  catch (err) { showError(new Error('No microphone: ' + err.message)); return; }
  const type = MediaRecorder.isTypeSupported('audio/webm') ? 'audio/webm' : '';
  recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    recorder = null;
    button.classList.remove('recording');
    button.textContent = 'Record from microphone';
    const blob = new Blob(chunks, { type: type || 'audio/webm' });
    const query = { mode: 'audio', name: 'recording.webm' };
    predict(blob, query, 'audio/webm', blob);
  };
  recorder.start();
  button.classList.add('recording');
  button.textContent = 'Stop and classify';
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadHistory(append) {
  try {
    const page = await api('/v1/history?limit=' + PAGE + '&offset=' + historyOffset);
    const rows = $('history-rows');
    if (!append) rows.textContent = '';
    for (const r of page.items) {
      const tr = document.createElement('tr');
      tr.dataset.id = r.id;
      const when = new Date(r.created_at);
      const del = document.createElement('button');
      del.className = 'secondary';
      del.textContent = 'Delete';
      del.setAttribute('aria-label', 'Delete prediction ' + r.id);
      del.onclick = async () => {
        try { await api('/v1/history/' + r.id, { method: 'DELETE' }); tr.remove(); }
        catch (err) { showError(err); }
      };
      const action = document.createElement('td');
      action.appendChild(del);
      const shown = isNaN(when) ? r.created_at : when.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
      tr.append(cell(shown), cell(r.file_name, 'file'),
                cell(r.mode_used), cell(emotionName(r.label)), cell((100 * r.confidence).toFixed(0) + '%'),
                cell(r.latency_ms.toFixed(0)), action);
      rows.appendChild(tr);
    }
    historyOffset += page.items.length;
    $('history-count').textContent = page.total + ' prediction' + (page.total === 1 ? '' : 's');
    $('more').hidden = historyOffset >= page.total;
  } catch (err) {
    showError(err);
  }
}

function init() {
  const keyInput = $('api-key');
  keyInput.value = apiKey();
  keyInput.addEventListener('change', () => {
    localStorage.setItem('avemo-api-key', keyInput.value.trim());
    showError(null);
    loadModels();
    historyOffset = 0;
    loadHistory();
  });
  const fileInput = $('file');
  fileInput.addEventListener('change', () => {
    const f = fileInput.files[0];
    $('file-label').textContent = f ? f.name + ' (' + (f.size / 1024).toFixed(0) + ' KB)' : 'Choose a file';
    $('submit').disabled = !f;
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) {
      fileInput.files = e.dataTransfer.files;
      fileInput.dispatchEvent(new Event('change'));
    }
  });
  $('upload-form').addEventListener('submit', onSubmit);
  $('record').addEventListener('click', onRecord);
  $('refresh').addEventListener('click', () => { historyOffset = 0; loadHistory(); });
  $('more').addEventListener('click', () => loadHistory(true));
  loadModels();
  loadHistory();
}

document.addEventListener('DOMContentLoaded', init);
