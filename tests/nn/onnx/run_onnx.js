// ctest nn_onnx_*: run an avemo ONNX export with onnxruntime-node on the inputs test_nn_onnx wrote
// and compare its probabilities with avemo's (max absolute difference <= manifest.tolerance).
// usage: node run_onnx.js MANIFEST.json   (exit 77 when onnxruntime-node is not installed)
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  console.log('SKIPPED: onnxruntime-node is missing (cd tests/nn/onnx && npm ci --ignore-scripts): ' + e.message);
  process.exit(77);
}

function floats(file) {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
}

async function main() {
  const m = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const session = await ort.InferenceSession.create(m.model, {graphOptimizationLevel: 'disabled'});
  const feeds = {};
  for (const input of m.inputs) feeds[input.name] = new ort.Tensor('float32', floats(input.file), input.shape);
  const out = await session.run(feeds);
  const got = out.probabilities.data, want = floats(m.expected);
  if (got.length !== m.batch * m.classes || want.length !== got.length)
    throw new Error(`probabilities: ${got.length} values, expected ${m.batch} x ${m.classes}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  for (let n = 0; n < m.batch; n++) {
    const row = Array.from(got.slice(n * m.classes, (n + 1) * m.classes)).map((p) => p.toFixed(4));
    console.log(`sample ${n}: onnxruntime [${row.join(' ')}]`);
  }
  console.log(`max |onnxruntime - avemo| = ${worst.toExponential(2)} (tolerance ${m.tolerance})`);
  if (!(worst <= m.tolerance)) {
    console.log('FAIL: the probabilities differ');
    process.exit(1);
  }
}

main().catch((e) => {
  console.log('FAIL: ' + e.message);
  process.exit(1);
});
