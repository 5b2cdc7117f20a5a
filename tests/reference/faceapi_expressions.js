// The face-api peer: @vladmandic/face-api 1.7.15's shipped face_expression_model (tfjs, in node,
// offline) on face images in emotion-named folders (FER2013, CK+), mapped to avemo's six classes.
//
//   cd tests/reference && npm ci          # once: face-api, tfjs and its wasm backend (package-lock.json)
//   node faceapi_expressions.js [--backend wasm|cpu] [--json OUT.json] DIR...
//
// Every image under DIR whose folder names an emotion is decoded by the ffmpeg command line to
// 112x112 RGB (bilinear; the net's own input size, the faces are already cropped, so no
// detector runs) and classified.  The net answers over seven expressions; avemo's six classes
// are taken from the six that match (surprised is not one: its probability is ignored and
// the answer is the most probable of the other six), and images labelled surprise or
// contempt are left out, as avemo's label map does.  Prints accuracy, unweighted accuracy
// and the confusion matrix for each DIR and for all of them.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const CLASSES = ['ANG', 'DIS', 'FEA', 'HAP', 'NEU', 'SAD'];
const FOLDER_CLASS = {
  angry: 'ANG', anger: 'ANG', disgust: 'DIS', disgusted: 'DIS', fear: 'FEA', fearful: 'FEA',
  happy: 'HAP', happiness: 'HAP', neutral: 'NEU', sad: 'SAD', sadness: 'SAD',
};
const LEFT_OUT = new Set(['surprise', 'surprised', 'contempt']);
const NET_CLASS = { angry: 'ANG', disgusted: 'DIS', fearful: 'FEA', happy: 'HAP', neutral: 'NEU', sad: 'SAD' };
const IMAGE = /\.(png|jpe?g|bmp|tiff?|webp)$/i;
const SIDE = 112;

function parseArgs(argv) {
  const a = { backend: 'wasm', json: null, dirs: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--backend') a.backend = argv[++i];
    else if (argv[i] === '--json') a.json = argv[++i];
    else a.dirs.push(argv[i]);
  }
  if (!a.dirs.length || !['wasm', 'cpu'].includes(a.backend)) {
    console.error('usage: node faceapi_expressions.js [--backend wasm|cpu] [--json OUT.json] DIR...');
    process.exit(2);
  }
  return a;
}

// Labelled images under dir: [{file, label}], sorted; counts of the left-out labels.
function listImages(dir) {
  const items = [];
  const skipped = {};
  const walk = (d) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (fs.statSync(p).isDirectory()) { walk(p); continue; }
      if (!IMAGE.test(name)) continue;
      const folder = path.basename(path.dirname(p)).toLowerCase();
      if (LEFT_OUT.has(folder)) skipped[folder] = (skipped[folder] || 0) + 1;
      else if (FOLDER_CLASS[folder]) items.push({ file: p, label: FOLDER_CLASS[folder] });
    }
  };
  walk(dir);
  return { items, skipped };
}

function decodeRGB(file) {
  return execFileSync('ffmpeg', ['-v', 'error', '-i', file, '-vf', `scale=${SIDE}:${SIDE}:flags=bilinear`,
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: SIDE * SIDE * 3 + 1 });
}

function metrics(truth, pred) {
  const k = CLASSES.length;
  const conf = Array.from({ length: k }, () => new Array(k).fill(0));
  let right = 0;
  truth.forEach((t, i) => { conf[t][pred[i]]++; if (t === pred[i]) right++; });
  const recalls = conf.map((row, c) => row.reduce((s, v) => s + v, 0) ? row[c] / row.reduce((s, v) => s + v, 0) : null)
    .filter((r) => r !== null);
  return {
    n: truth.length,
    accuracy: truth.length ? right / truth.length : 0,
    unweighted_accuracy: recalls.reduce((s, r) => s + r, 0) / (recalls.length || 1),
    labels: CLASSES,
    confusion: conf,
  };
}

function printMetrics(name, m, skipped) {
  console.log(`${name}: n ${m.n}, accuracy ${(100 * m.accuracy).toFixed(1)}%, ` +
    `unweighted ${(100 * m.unweighted_accuracy).toFixed(1)}%` +
    (skipped && Object.keys(skipped).length ? `  (left out: ${JSON.stringify(skipped)})` : ''));
  console.log('        ' + CLASSES.map((c) => c.padStart(6)).join(''));
  m.confusion.forEach((row, c) => console.log('   ' + CLASSES[c] + '  ' + row.map((v) => String(v).padStart(6)).join('')));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tf = require('@tensorflow/tfjs');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  // The wasm binaries come from node_modules: nothing is fetched from the network.
  wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), path.sep));
  await tf.setBackend(args.backend);
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);

  const report = { model: 'face_expression_model', package: '@vladmandic/face-api@1.7.15', backend: tf.getBackend(), per_data: [] };
  const allTruth = [], allPred = [];
  let netSeconds = 0;
  for (const dir of args.dirs) {
    const { items, skipped } = listImages(dir);
    const truth = [], pred = [];
    for (const it of items) {
      const rgb = decodeRGB(it.file);
      const input = tf.tensor3d(new Uint8Array(rgb), [SIDE, SIDE, 3], 'int32');
      const t0 = process.hrtime.bigint();
      const result = await faceapi.nets.faceExpressionNet.predictExpressions(input);
      netSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
      input.dispose();
      let best = null;
      for (const [expr, cls] of Object.entries(NET_CLASS))
        if (best === null || result[expr] > result[best]) best = expr;
      truth.push(CLASSES.indexOf(it.label));
      pred.push(CLASSES.indexOf(NET_CLASS[best]));
    }
    const m = metrics(truth, pred);
    printMetrics(dir, m, skipped);
    report.per_data.push({ data: dir, left_out: skipped, ...m });
    allTruth.push(...truth);
    allPred.push(...pred);
  }
  const all = metrics(allTruth, allPred);
  if (args.dirs.length > 1) printMetrics('all', all);
  report.all = all;
  report.ms_per_image = allTruth.length ? (1000 * netSeconds) / allTruth.length : 0;
  console.log(`network time: ${report.ms_per_image.toFixed(1)} ms per image (${report.backend} backend)`);
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(report, null, 1) + '\n');
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
