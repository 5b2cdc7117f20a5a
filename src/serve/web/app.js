// avemo web page: upload, record or photograph, show the emotion, why a mode fell back, the face crop,
// the waveform and log-mel of the server's decode, the model's caveats, and the history (details, CSV).
// Plain JavaScript, no build step; every text from the server goes through textContent.
'use strict';

const NAMES = { ANG: 'anger', DIS: 'disgust', FEA: 'fear', HAP: 'happy', NEU: 'neutral', SAD: 'sad' };
const PAGE = 20;
const $ = (id) => document.getElementById(id);
let historyOffset = 0;
let recorder = null;
let camera = null;          // the webcam's MediaStream while the camera box is open
const models = {};          // name -> entry of /v1/models (caveats, card url)

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
      models[m.name] = m;
      const option = document.createElement('option');
      option.value = m.name;
      option.textContent = m.name + ' (' + m.modes.join(', ') + ')';
      select.appendChild(option);
    }
    if (!data.models.length) showError(new Error('The server has no model loaded.'));
  } catch (err) { showError(err); }
}

function emotionName(code) { return NAMES[code] || code; }

// Why the answer comes from another mode than asked (the API's `fallback`), and what it is about
// when that is not the whole input: a part of a long recording, one of several faces (`note`).
function renderFallback(p) {
  const box = $('fallback');
  const reason = p.fallback || p.fallback_reason;
  const lines = [];
  if (reason) lines.push('Answered in ' + (p.mode_used || p.mode) + ' mode, not ' + p.mode_requested + ': ' + reason + '.');
  if (p.note) lines.push(p.note.charAt(0).toUpperCase() + p.note.slice(1) + '.');
  box.hidden = !lines.length;
  box.textContent = lines.join(' ');
}

// Not confident (the API's `uncertain`): say so and give the top two rather than one answer.
function renderUncertain(p, top) {
  const box = $('uncertain');
  const second = p.second;
  box.hidden = !(p.uncertain && top && second);
  if (box.hidden) { box.textContent = ''; return; }
  const pct = (x) => (100 * x).toFixed(1) + ' %';
  $('label').textContent = 'Uncertain: ' + emotionName(top.label) + ' or ' + emotionName(second.label);
  box.textContent = 'Not confident: ' + emotionName(top.label) + ' ' + pct(top.probability) + ', ' +
    emotionName(second.label) + ' ' + pct(second.confidence) + ' (answers below ' +
    pct(p.uncertain_below) + ' are called uncertain).';
}

// The face the network saw; for a photo without one, the photo itself, said so.
function renderFace(p, upload) {
  const box = $('face-box'), face = $('face');
  if (face.dataset.objectUrl) { URL.revokeObjectURL(face.dataset.objectUrl); delete face.dataset.objectUrl; }
  if (typeof p.face_crop === 'string' && p.face_crop.startsWith('data:image/')) {
    face.src = p.face_crop;
    $('face-caption').textContent = 'face crop used';
    box.hidden = false;
  } else if (upload && /^image\//.test(upload.type || '')) {
    face.dataset.objectUrl = URL.createObjectURL(upload);
    face.src = face.dataset.objectUrl;
    $('face-caption').textContent = 'your photo';
    box.hidden = false;
  } else {
    box.hidden = true;
    face.removeAttribute('src');
  }
}

// The model card's caveats of the model that answered (or the one asked for), with its link.
function renderCaveats(p, asked) {
  const m = models[p.model] || models[asked];
  const card = m && m.card;
  const box = $('caveats-box'), list = $('caveats');
  list.textContent = '';
  box.hidden = !card || !card.caveats || !card.caveats.length;
  if (box.hidden) return;
  for (const text of card.caveats) {
    const li = document.createElement('li');
    li.textContent = text;
    list.appendChild(li);
  }
  const whose = m.name === p.model ? m.name : m.name + ' (asked for; ' + p.model + ' answered)';
  box.querySelector('summary').textContent = 'What ' + whose + ' cannot do (' + card.caveats.length + ')';
  $('card-link').href = card.url;
}

function renderResult(p, upload, asked) {
  $('result').hidden = false;
  const classes = (p.classes || []).slice();
  let top = classes.reduce((a, c) => (!a || c.probability > a.probability ? c : a), null);
  const code = top ? top.label : String(p.label);
  $('label').textContent = emotionName(code);
  $('confidence').textContent = top ? 'confidence ' + (100 * top.probability).toFixed(1) + ' %' : '';
  renderUncertain(p, top);
  const parts = [];
  if (p.model) parts.push('model ' + p.model);
  if (p.mode_used || p.mode) parts.push('mode ' + (p.mode_used || p.mode));
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
  renderFallback(p);
  renderFace(p, upload);
  renderCaveats(p, asked);
  drawSignals(p.signals);
  renderExplanation(p.explanation);
}

// Why (?explain=1): each modality's share of the decision as two bars, the Grad-CAM heat map
// over the face crop shown above (the answer's face_crop_index) and over the audio features.
function renderExplanation(e) {
  const box = $('explain-box');
  box.hidden = !e;
  if (!e) return;
  const shares = $('shares');
  shares.textContent = '';
  for (const name of ['audio', 'face']) {
    const share = e.modalities[name].share;
    const li = document.createElement('li');
    li.dataset.modality = name;
    const label = document.createElement('span');
    label.textContent = name;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = (100 * share).toFixed(1) + '%';
    bar.appendChild(fill);
    const pct = document.createElement('span');
    pct.className = 'pct';
    pct.textContent = (100 * share).toFixed(0) + '%';
    li.append(label, bar, pct);
    shares.appendChild(li);
  }
  const face = e.face_crop_index === null || e.face_crop_index === undefined ? null : e.faces[e.face_crop_index];
  showMap('face-heat', face && face.heatmap);
  showMap('audio-heat', e.audio && e.audio.heatmap);
  if (e.audio) $('audio-heat-caption').textContent = 'where in the sound: ' + e.audio.feature.toUpperCase() +
    ' over time, low ' + (e.audio.feature === 'mfcc' ? 'coefficients' : 'bands') + ' at the bottom';
  $('explain-note').textContent = 'Red is where the evidence for ' + emotionName(e.class) + ' lies (Grad-CAM). ' +
    'A share is how much the decision changes when that branch is blanked out (its features set to zero).';
}

function showMap(id, url) {
  const img = $(id), ok = typeof url === 'string' && url.startsWith('data:image/png;base64,');
  $(id + '-box').hidden = !ok;
  if (ok) img.src = url;
  else img.removeAttribute('src');
}

// The waveform and the log-mel spectrogram of the server's own decode (?signals=1), so every
// format the server reads is drawn, FLV included.
function drawSignals(signals) {
  const wave = $('wave'), mel = $('logmel'), note = $('wave-note');
  wave.hidden = mel.hidden = !signals;
  if (!signals) { note.textContent = 'No audio in this file.'; return; }
  drawWaveform(wave, signals.waveform);
  drawLogmel(mel, signals.logmel);
  note.textContent = signals.duration_s.toFixed(2) + ' s of audio as the server decoded it (peak ' +
    (100 * signals.waveform.peak).toFixed(0) + ' % of full scale, drawn normalised); log-mel, ' +
    signals.logmel.bands + ' bands, low at the bottom';
}

function drawWaveform(canvas, w) {
  const g = canvas.getContext('2d');
  canvas.width = Math.max(300, Math.round(canvas.clientWidth * (window.devicePixelRatio || 1)) || 800);
  const W = canvas.width, H = canvas.height, n = w.min.length;
  g.clearRect(0, 0, W, H);
  g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#3056d3';
  for (let x = 0; x < W; x++) {
    const c = Math.min(n - 1, Math.floor(x * n / W));
    const top = (1 - w.max[c] / 127) * H / 2, bottom = (1 - w.min[c] / 127) * H / 2;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

// 0..255 to a dark-blue .. yellow ramp.
function heat(v) {
  const t = v / 255;
  return [Math.round(255 * Math.min(1, Math.max(0, 1.6 * t - 0.5))), Math.round(220 * Math.sqrt(t)),
          Math.round(140 * (1 - t) + 40)];
}

function drawLogmel(canvas, m) {
  const bytes = Uint8Array.from(atob(m.data), (ch) => ch.charCodeAt(0));
  const small = document.createElement('canvas');
  small.width = m.frames;
  small.height = m.bands;
  const sg = small.getContext('2d'), img = sg.createImageData(m.frames, m.bands);
  for (let b = 0; b < m.bands; b++)
    for (let f = 0; f < m.frames; f++) {
      const [r, g, bl] = heat(bytes[b * m.frames + f]);
      const at = 4 * ((m.bands - 1 - b) * m.frames + f); // the lowest band at the bottom
      img.data[at] = r; img.data[at + 1] = g; img.data[at + 2] = bl; img.data[at + 3] = 255;
    }
  sg.putImageData(img, 0, 0);
  canvas.width = Math.max(300, Math.round(canvas.clientWidth * (window.devicePixelRatio || 1)) || 800);
  const g = canvas.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(small, 0, 0, canvas.width, canvas.height);
}

async function predict(body, query, contentType, blob) {
  showError(null);
  setBusy(true);
  try {
    const headers = contentType ? { 'Content-Type': contentType } : {};
    query = Object.assign({ signals: '1' }, $('explain').checked ? { explain: '1' } : {}, query);
    const p = await api('/v1/predict?' + new URLSearchParams(query), { method: 'POST', body, headers });
    renderResult(p, blob, query.model || $('model').value);
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

// The webcam: a live preview, and a JPEG snapshot classified in face mode.
async function onCamera() {
  if (camera) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError(new Error('A camera needs a browser with getUserMedia, on https or localhost.'));
    return;
  }
  try { camera = await navigator.mediaDevices.getUserMedia({ video: true }); }
  catch (err) { showError(new Error('No camera: ' + err.message)); return; }
  $('camera-video').srcObject = camera;
  $('camera-box').hidden = false;
}

function closeCamera() {
  if (camera) camera.getTracks().forEach((t) => t.stop());
  camera = null;
  $('camera-video').srcObject = null;
  $('camera-box').hidden = true;
}

function onSnap() {
  const video = $('camera-video');
  if (!camera || !video.videoWidth) { showError(new Error('The camera has no picture yet.')); return; }
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    closeCamera();
    if (blob) predict(blob, { mode: 'face', name: 'webcam.jpg' }, 'image/jpeg', blob);
  }, 'image/jpeg', 0.92);
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
      del.onclick = async (event) => {
        event.stopPropagation();
        try { await api('/v1/history/' + r.id, { method: 'DELETE' }); tr.remove(); }
        catch (err) { showError(err); }
      };
      tr.tabIndex = 0;
      tr.title = 'Show the details';
      tr.onclick = () => showDetail(r.id);
      tr.onkeydown = (e) => { if (e.key === 'Enter') showDetail(r.id); };
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

// One history row in full: every field and its probabilities.
async function showDetail(id) {
  try {
    const r = await api('/v1/history/' + id);
    $('detail-title').textContent = 'Prediction #' + r.id;
    const fields = [['Time', r.created_at], ['File', r.file_name], ['Size', r.size + ' bytes'], ['SHA-256', r.sha256],
                    ['Model', r.model], ['Mode asked', r.mode], ['Mode used', r.mode_used],
                    ['Label', emotionName(r.label) + ' (' + r.label + ')'],
                    ['Confidence', (100 * r.confidence).toFixed(1) + ' %'], ['Time taken', r.latency_ms.toFixed(0) + ' ms']];
    const dl = $('detail-fields');
    dl.textContent = '';
    for (const [k, v] of fields) {
      const dt = document.createElement('dt'), dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    }
    const bars = $('detail-bars');
    bars.textContent = '';
    for (const [label, prob] of Object.entries(r.probabilities || {})) {
      const li = document.createElement('li');
      li.dataset.label = label;
      const name = document.createElement('span'), bar = document.createElement('div'), fill = document.createElement('span'),
        pct = document.createElement('span');
      name.textContent = emotionName(label);
      bar.className = 'bar';
      fill.style.width = (100 * prob).toFixed(1) + '%';
      bar.appendChild(fill);
      pct.className = 'pct';
      pct.textContent = (100 * prob).toFixed(1) + '%';
      if (label === r.label) li.className = 'top';
      li.append(name, bar, pct);
      bars.appendChild(li);
    }
    $('history-detail').hidden = false;
    $('history-detail').scrollIntoView({ block: 'nearest' });
  } catch (err) { showError(err); }
}

function csvField(v) {
  const text = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

// The whole history as CSV (RFC 4180), one row per prediction, one column per class probability.
async function exportCsv() {
  try {
    const items = [];
    for (let offset = 0; ;) {
      const page = await api('/v1/history?limit=1000&offset=' + offset);
      items.push(...page.items);
      offset += page.items.length;
      if (!page.items.length || offset >= page.total) break;
    }
    const labels = [...new Set(items.flatMap((r) => Object.keys(r.probabilities || {})))];
    const head = ['id', 'created_at', 'file_name', 'size', 'sha256', 'model', 'mode', 'mode_used', 'label',
                  'confidence', 'latency_ms'];
    const lines = [head.concat(labels.map((l) => 'p_' + l)).join(',')];
    for (const r of items)
      lines.push(head.map((k) => csvField(r[k])).concat(labels.map((l) => csvField((r.probabilities || {})[l]))).join(','));
    const url = URL.createObjectURL(new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'avemo-history.csv';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) { showError(err); }
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
  $('camera').addEventListener('click', onCamera);
  $('snap').addEventListener('click', onSnap);
  $('camera-close').addEventListener('click', closeCamera);
  $('export-csv').addEventListener('click', exportCsv);
  $('detail-close').addEventListener('click', () => { $('history-detail').hidden = true; });
  $('refresh').addEventListener('click', () => { historyOffset = 0; loadHistory(); });
  $('more').addEventListener('click', () => loadHistory(true));
  loadModels();
  loadHistory();
}

document.addEventListener('DOMContentLoaded', init);
