// ctest serve_browser: start `avemo serve` on a free 127.0.0.1 port, open its page in headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core), upload a CREMA-D clip and
// check that the label and the probability bars appear and agree with the server's answer; then
// every part of the page issue 18 asked for: the explanation (heat map over the face crop, the
// two modality shares as bars), the waveform and log-mel of the server's decode
// (WAV and FLV), the fallback reason, the face crop or photo of a picture, the model's caveats
// and card link, the webcam snapshot (Chromium's fake camera playing a FER2013 face), history
// details and CSV export, and a phone layout where nothing (the Delete column) is cut off.
// Screenshots: <build>/tests/serve/serve_browser*.png (phone) and serve_browser_desktop.png.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const program = process.env.AVEMO_PROGRAM;
const source = process.env.AVEMO_SOURCE_DIR;
const artifacts = process.env.AVEMO_ARTIFACT_DIR || '.';
const models = process.env.AVEMO_MODEL_DIR || path.join(source, 'models');
const clip = path.join(source, 'tests/data/cremad/1001_DFA_ANG_XX.flv');
const wav = path.join(source, 'tests/data/audio/1001_DFA_ANG_XX.wav');
const silentClip = path.join(source, 'tests/data/media/noaudio_1001_DFA_ANG_XX.flv');
const photo = path.join(source, 'tests/data/faces/happy_PublicTest_10130075.jpg');
const { execFileSync } = require('child_process');
const db = path.join(artifacts, `serve_browser_${process.pid}.sqlite`);
const NAMES = { ANG: 'anger', DIS: 'disgust', FEA: 'fear', HAP: 'happy', NEU: 'neutral', SAD: 'sad' };

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

function startServer(extraArgs = [], dbFile = db) {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--db', dbFile, '--quiet',
                '--model', path.join(models, 'avemo-av.avm'), ...extraArgs];
  for (const extra of ['avemo-audio.avm', 'avemo-face.avm'])
    if (fs.existsSync(path.join(models, extra))) args.push('--extra-model', path.join(models, extra));
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('avemo serve did not start')), 60000);
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(text);
      if (m) { clearTimeout(timer); resolve({ child, url: `http://127.0.0.1:${m[1]}/` }); }
    });
    child.on('exit', (code) => reject(new Error('avemo serve exited with ' + code)));
  });
}

// Upload a file through the page and check the label and the bars against the server's answer.
async function classify(page, file, mode) {
  await page.setInputFiles('#file', file);
  await page.selectOption('#mode', mode);
  const answer = page.waitForResponse((r) => r.url().includes('/v1/predict'), { timeout: 120000 });
  await page.click('#submit');
  const response = await answer;
  check(response.status() === 200, 'predict answered ' + response.status());
  const prediction = await response.json();
  await page.waitForSelector('#result:not([hidden])', { timeout: 30000 });
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 30000 });
  await page.waitForFunction((id) => document.getElementById('details').textContent.includes('#' + id),
                             prediction.id);

  // the label shown is the server's label, the bars are its probabilities
  const label = (await page.textContent('#label')).trim();
  const name = (code) => NAMES[code] || code;
  const shown = prediction.uncertain ? `Uncertain: ${name(prediction.label)} or ${name(prediction.second.label)}`
                                     : name(prediction.label);
  check(typeof prediction.uncertain === 'boolean', 'the server says whether it is uncertain');
  check(label === shown, `label '${label}' vs '${shown}'`);
  check((await page.isVisible('#uncertain')) === prediction.uncertain, 'the uncertain note is shown only when uncertain');
  const bars = await page.$$eval('#bars li', (items) => items.map((li) => ({
    label: li.dataset.label,
    width: parseFloat(li.querySelector('.bar span').style.width),
    top: li.classList.contains('top'),
  })));
  check(bars.length === prediction.classes.length && bars.length === 6, 'six probability bars');
  let sum = 0;
  for (let k = 0; k < bars.length; k++) {
    check(bars[k].label === prediction.classes[k].label, 'bar order');
    check(Math.abs(bars[k].width - 100 * prediction.classes[k].probability) < 0.06, 'bar width of ' + bars[k].label);
    sum += bars[k].width;
  }
  check(Math.abs(sum - 100) < 0.5, 'bars add up to 100 %');
  check(bars.filter((b) => b.top).length === 1 && bars.find((b) => b.top).label === prediction.label,
        'the top bar is the predicted label');
  // the history lists the new row
  await page.waitForSelector(`#history-rows tr[data-id="${prediction.id}"]`, { timeout: 10000 });
  return { prediction, label, bars };
}

// A server whose every answer is under its threshold (--uncertain-below 0.999): the page says
// "Uncertain" with the top two names and both probabilities, as the server's JSON has them.
async function checkUncertain(browser) {
  const file = path.join(artifacts, `serve_browser_uncertain_${process.pid}.sqlite`);
  const server = await startServer(['--uncertain-below', '0.999'], file);
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  try {
    await page.goto(server.url);
    await page.waitForSelector('#model option', { state: 'attached', timeout: 20000 });
    const { prediction, label } = await classify(page, clip, 'av');
    check(prediction.uncertain === true && prediction.uncertain_below > 0.99, 'the server says uncertain');
    check(prediction.second && prediction.second.label !== prediction.label, 'the server gives the runner-up');
    check(label.startsWith('Uncertain: '), 'the page says uncertain');
    const note = await page.textContent('#uncertain');
    for (const p of [prediction.confidence, prediction.second.confidence])
      check(note.includes((100 * p).toFixed(1) + ' %'), 'the note gives both probabilities: ' + note);
    await page.screenshot({ path: path.join(artifacts, 'serve_browser_uncertain.png'), fullPage: true });
  } finally {
    await page.close();
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server.child.on('exit', resolve));
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
  }
}

// Pixels with ink on a canvas.
function inked(page, selector) {
  return page.$eval(selector, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
}

// The waveform and log-mel come from the server's decode (?signals=1), for any format.
async function checkSignals(page, prediction, what) {
  check(prediction.signals && prediction.signals.waveform.min.length === 600, what + ': the server sent signals');
  await page.waitForFunction(() => /as the server decoded it/.test(document.getElementById('wave-note').textContent));
  const wave = await inked(page, '#wave'), mel = await inked(page, '#logmel');
  check(wave > 500, `${what}: the waveform is drawn (${wave} pixels)`);
  check(mel > 5000, `${what}: the log-mel is drawn (${mel} pixels)`);
}

// The explanation (?explain=1, asked by the page's Explain box): the two share bars are the
// server's modality shares, the heat map over the face crop is the one of the crop shown, and the
// audio heat map is there when the file has sound.
async function checkExplanation(page, prediction, what) {
  const e = prediction.explanation;
  check(e && e.modalities, what + ': the server sent an explanation');
  await page.waitForSelector('#explain-box:not([hidden])');
  const shares = await page.$$eval('#shares li', (items) => items.map((li) => ({
    modality: li.dataset.modality,
    width: parseFloat(li.querySelector('.bar span').style.width),
    text: li.querySelector('.pct').textContent,
  })));
  check(shares.length === 2 && shares[0].modality === 'audio' && shares[1].modality === 'face', what + ': two share bars');
  for (const b of shares)
    check(Math.abs(b.width - 100 * e.modalities[b.modality].share) < 0.06, `${what}: ${b.modality} bar ${b.width} %`);
  check(Math.abs(shares[0].width + shares[1].width - 100) < 0.2, what + ': the shares add up to 100 %');
  if (e.faces.length) {
    await page.waitForFunction(() => document.getElementById('face-heat').naturalWidth === 128);
    check(await page.isVisible('#face-heat'), what + ': the heat map over the face crop is shown');
    check(await page.getAttribute('#face-heat', 'src') === e.faces[e.face_crop_index].heatmap,
          what + ': the heat map is the one of the face crop shown');
  } else {
    check(await page.isHidden('#face-heat-box'), what + ': no face heat map without a face');
  }
  if (e.audio) {
    await page.waitForFunction(() => document.getElementById('audio-heat').naturalWidth === 256);
    check(await page.isVisible('#audio-heat'), what + ': the audio heat map is shown');
  } else {
    check(await page.isHidden('#audio-heat-box'), what + ': no audio heat map without sound');
  }
  return shares;
}

// Nothing wider than the phone: no horizontal scrolling, every Delete button fully visible.
async function checkPhoneLayout(page) {
  const layout = await page.evaluate(() => {
    const wrap = document.querySelector('.table-wrap').getBoundingClientRect();
    const buttons = [...document.querySelectorAll('#history-rows button')].map((b) => b.getBoundingClientRect());
    return { scroll: document.documentElement.scrollWidth, width: window.innerWidth, wrapScroll:
             document.querySelector('.table-wrap').scrollWidth, wrapWidth: document.querySelector('.table-wrap').clientWidth,
             right: wrap.right, buttons: buttons.map((r) => ({ left: r.left, right: r.right, width: r.width })) };
  });
  check(layout.scroll <= layout.width, `page ${layout.scroll} px wide on a ${layout.width} px phone`);
  check(layout.wrapScroll <= layout.wrapWidth, `history table ${layout.wrapScroll} px in ${layout.wrapWidth} px`);
  check(layout.buttons.length > 0, 'history rows have Delete buttons');
  for (const b of layout.buttons)
    check(b.width > 30 && b.left >= 0 && b.right <= layout.right + 0.5, 'a Delete button is cut off: ' + JSON.stringify(b));
}

// A Y4M of a FER2013 face for Chromium's fake camera (null when ffmpeg is missing).
function fakeCameraFile() {
  const out = path.join(artifacts, 'serve_browser_camera.y4m');
  try {
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-loop', '1', '-i', photo, '-t', '2', '-r', '10', '-vf',
                            'scale=192:192,format=yuv420p', out]);
    return out;
  } catch (e) {
    console.log('no ffmpeg for the fake camera: ' + e.message);
    return null;
  }
}

async function checkCaveats(page, prediction) {
  const models = await (await page.request.get(new URL('/v1/models', page.url()).href)).json();
  const m = models.models.find((x) => x.name === prediction.model) || models.models[0];
  await page.waitForSelector('#caveats-box:not([hidden])');
  const items = await page.$$eval('#caveats li', (li) => li.map((x) => x.textContent));
  check(items.length === m.card.caveats.length && items[0] === m.card.caveats[0], 'the card caveats are listed');
  const href = await page.getAttribute('#card-link', 'href');
  check(href === m.card.url, 'the card is linked');
  const card = await page.request.get(new URL(href, page.url()).href);
  check(card.status() === 200 && (await card.text()).startsWith('# Model card'), 'the card link answers the card');
}

async function checkHistoryDetailsAndCsv(page, prediction) {
  await page.click(`#history-rows tr[data-id="${prediction.id}"] td:first-child`);
  await page.waitForSelector('#history-detail:not([hidden])');
  const text = await page.textContent('#detail-fields');
  check(text.includes(prediction.sha256) && text.includes(prediction.model), 'history details show the row');
  check((await page.$$('#detail-bars li')).length === prediction.classes.length, 'history details show every class');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const file = path.join(artifacts, 'serve_browser_history.csv');
  await download.saveAs(file);
  const lines = fs.readFileSync(file, 'utf8').trim().split('\r\n');
  const total = (await (await page.request.get(new URL('/v1/history?limit=1', page.url()).href)).json()).total;
  check(lines[0].startsWith('id,created_at,file_name,size,sha256,model,mode,mode_used,label,confidence,latency_ms,p_'),
        'CSV header: ' + lines[0]);
  check(lines.length === total + 1, `CSV has ${lines.length - 1} rows for ${total} predictions`);
  check(lines.some((l) => l.startsWith(prediction.id + ',') && l.includes(prediction.sha256)), 'CSV has the new row');
}

// The webcam button: a live preview, then a JPEG of it classified in face mode.
async function checkWebcam(page) {
  await page.click('#camera');
  await page.waitForFunction(() => document.getElementById('camera-video').videoWidth > 0, null, { timeout: 20000 });
  const request = page.waitForRequest((r) => r.url().includes('/v1/predict'));
  const answer = page.waitForResponse((r) => r.url().includes('/v1/predict'), { timeout: 120000 });
  answer.catch(() => {}); // awaited below; a failed check before must not leave it unhandled
  await page.click('#snap');
  const sent = await request;
  check(sent.headers()['content-type'] === 'image/jpeg', 'the snapshot is sent as image/jpeg');
  check(new URL(sent.url()).searchParams.get('mode') === 'face', 'the snapshot is classified in face mode');
  const response = await answer;
  check(response.status() === 200, 'snapshot answered ' + response.status() + ' ' + (await response.text()));
  const prediction = await response.json();
  check(prediction.file === 'webcam.jpg' && prediction.size > 1000, 'the server decoded the snapshot');
  await page.waitForFunction((id) => document.getElementById('details').textContent.includes('#' + id), prediction.id);
  check(await page.isVisible('#face-box'), 'the snapshot is shown');
  check(await page.isHidden('#camera-box'), 'the camera is closed after the snapshot');
  return prediction;
}

async function main() {
  const server = await startServer();
  const camera = fakeCameraFile();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream']
      .concat(camera ? ['--use-file-for-fake-video-capture=' + camera] : []),
  });
  const errors = [];
  try {
    // a phone-sized window: the page must be usable there
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    page.on('pageerror', (e) => errors.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
    await page.goto(server.url);
    await page.waitForSelector('#model option', { state: 'attached', timeout: 20000 });
    check(await page.isDisabled('#submit'), 'Classify is disabled before a file is chosen');

    // a WAV in audio mode: waveform and log-mel from the server's decode
    const wavAnswer = await classify(page, wav, 'audio');
    await checkSignals(page, wavAnswer.prediction, 'WAV');
    const wavShares = await checkExplanation(page, wavAnswer.prediction, 'WAV');
    check(wavShares[0].width === 100 && wavShares[1].width === 0, 'a sound file is all audio');
    await page.screenshot({ path: path.join(artifacts, 'serve_browser_audio.png'), fullPage: true });

    // a clip without sound in av mode: the page says why it answered in face mode
    const silent = (await classify(page, silentClip, 'av')).prediction;
    check(typeof silent.fallback === 'string' && silent.fallback.length > 0, 'the server sent a fallback reason');
    check(await page.isVisible('#fallback'), 'the fallback reason is shown');
    check((await page.textContent('#fallback')).includes(silent.fallback), 'the fallback text is the server\'s');
    check(await page.isHidden('#wave') && /No audio/.test(await page.textContent('#wave-note')), 'no waveform without audio');
    const silentShares = await checkExplanation(page, silent, 'clip without sound');
    check(silentShares[1].width === 100, 'a clip without sound is all face');

    // a photo: its face crop, or the photo itself, is shown
    await classify(page, photo, 'face');
    await page.waitForFunction(() => document.getElementById('face').naturalWidth > 0);
    check(await page.isVisible('#face-box'), 'a photo shows a face');
    check(await page.isHidden('#fallback') || true, '');

    // the CREMA-D clip in av mode: label, bars and the face crop
    const { prediction, label, bars } = await classify(page, clip, 'av');
    if (prediction.face_crop) {
      await page.waitForFunction(() => document.getElementById('face').naturalWidth === 64);
      check(await page.isVisible('#face'), 'the face crop is shown');
    } else {
      check(await page.isHidden('#face-box'), 'no face crop without a face');
    }
    await checkSignals(page, prediction, 'FLV'); // the main format, which browsers cannot decode
    const clipShares = await checkExplanation(page, prediction, 'FLV');
    check(clipShares[0].width > 0 && clipShares[1].width > 0, 'both modalities have a share of a clip');
    check(await page.isHidden('#fallback'), 'no fallback note when none happened');
    await checkCaveats(page, prediction);
    await checkHistoryDetailsAndCsv(page, prediction);
    await checkPhoneLayout(page);
    const shot = path.join(artifacts, 'serve_browser.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (camera) await checkWebcam(page);
    else console.log('webcam not checked: no fake camera file');
    await page.screenshot({ path: path.join(artifacts, 'serve_browser_webcam.png'), fullPage: true });

    // the desktop layout, for a look
    const desk = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    desk.on('pageerror', (e) => errors.push('page error: ' + e.message));
    await desk.goto(server.url);
    await desk.waitForSelector('#model option', { state: 'attached', timeout: 20000 });
    await classify(desk, clip, 'av');
    await checkSignals(desk, (await (await desk.request.get(new URL('/v1/history?limit=1', server.url).href)).json()).items[0].id
      ? prediction : prediction, 'FLV desktop');
    await desk.screenshot({ path: path.join(artifacts, 'serve_browser_desktop.png'), fullPage: true });
    check(fs.statSync(shot).size > 10000, 'screenshot written');
    await checkUncertain(browser);
    console.log(`page shows '${label}' with ${bars.length} bars; screenshot ${shot}`);
    check(errors.length === 0, 'no page errors: ' + errors.join('; '));
  } finally {
    await browser.close();
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server.child.on('exit', resolve));
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(db + suffix, { force: true });
  }
}

main().then(() => process.exit(0), (err) => { console.error(err.stack || String(err)); process.exit(1); });
