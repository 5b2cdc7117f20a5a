// ctest serve_browser: start `avemo serve` on a free 127.0.0.1 port, open its page in headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core), upload a CREMA-D clip and
// check that the label and the probability bars appear and agree with the server's answer.
// The screenshot is saved as <build>/tests/serve/serve_browser.png.
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
const db = path.join(artifacts, `serve_browser_${process.pid}.sqlite`);
const NAMES = { ANG: 'anger', DIS: 'disgust', FEA: 'fear', HAP: 'happy', NEU: 'neutral', SAD: 'sad' };

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

function startServer() {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--db', db, '--quiet',
                '--model', path.join(models, 'avemo-av.avm')];
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
  check(label === (NAMES[prediction.label] || prediction.label), `label '${label}' vs '${prediction.label}'`);
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

async function main() {
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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

    // a WAV in audio mode: the browser decodes it, so the waveform is drawn
    await classify(page, wav, 'audio');
    await page.waitForFunction(() => /s of audio/.test(document.getElementById('wave-note').textContent));
    const inked = await page.$eval('#wave', (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    check(inked > 500, 'the waveform is drawn (' + inked + ' pixels)');
    await page.screenshot({ path: path.join(artifacts, 'serve_browser_audio.png'), fullPage: true });

    // the CREMA-D clip in av mode: label, bars and the face crop
    const { prediction, label, bars } = await classify(page, clip, 'av');
    if (prediction.face_crop) {
      await page.waitForFunction(() => document.getElementById('face').naturalWidth === 64);
      check(await page.isVisible('#face'), 'the face crop is shown');
    } else {
      check(await page.isHidden('#face'), 'no face crop without a face');
    }
    const shot = path.join(artifacts, 'serve_browser.png');
    await page.screenshot({ path: shot, fullPage: true });
    check(fs.statSync(shot).size > 10000, 'screenshot written');
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
