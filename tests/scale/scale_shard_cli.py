#!/usr/bin/python3
"""scale_shard_cli: `avemo classify FILES --shard I/N --json` for I = 0..N-1 together print
exactly the lines of the unsharded run (each line's time_ms, measured per run, aside); the
shard comes from SLURM_ARRAY_TASK_* or JOB_COMPLETION_INDEX when --shard is not given; a shard
killed mid-line and restarted (--out) finishes, and `avemo merge` of the shards is the
unsharded output; `avemo features` shards merge into the one-process .npy byte for byte;
`avemo eval --shard` + `avemo merge --metrics` equal one process, for clips and for the av
model on label-matched pairs (audio files paired with face images).

  tests/scale/scale_shard_cli.py --program build/avemo
"""
import argparse
import os
import re

from scale_common import CLIPS, DATA, MODE, MODEL, fail, log, main, run


def lines(text):
    return [re.sub(r',"time_ms":\{[^}]*\}', "", line) for line in text.splitlines()]


def classify(program, *args, env=None):
    return run([program, "classify", "--model", MODEL, "--mode", MODE, "--json", *args], timeout=120,
               what="avemo classify " + " ".join(args[-2:]), env=env)


def test(stack, program):
    single = lines(classify(program, *CLIPS))
    if len(single) != len(CLIPS):
        fail(f"the unsharded run printed {len(single)} lines for {len(CLIPS)} clips")
    for n in (3,):
        parts = [lines(classify(program, *CLIPS, "--shard", f"{i}/{n}")) for i in range(n)]
        if sum(parts, []) != single:
            fail(f"--shard I/{n}: the shards' lines are not the unsharded run's")
    log(f"classify --shard I/3 --json: the shards print exactly the {len(single)} lines of one run")

    base = dict(os.environ)
    for var in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"):
        base.pop(var, None)
    slurm = dict(base, SLURM_ARRAY_TASK_ID="11", SLURM_ARRAY_TASK_MIN="10", SLURM_ARRAY_TASK_COUNT="3")
    k8s = dict(base, JOB_COMPLETION_INDEX="1", AVEMO_SHARD_COUNT="3")
    want = parts[1]
    if lines(classify(program, *CLIPS, env=slurm)) != want or lines(classify(program, *CLIPS, env=k8s)) != want:
        fail("the shard from SLURM_ARRAY_TASK_* / JOB_COMPLETION_INDEX is not --shard 1/3")
    log("the shard defaults from SLURM_ARRAY_TASK_ID/MIN/COUNT and JOB_COMPLETION_INDEX/AVEMO_SHARD_COUNT")

    out = os.path.join(stack.tmp, "out")
    for i in range(2):
        classify(program, *CLIPS, "--shard", f"{i}/2", "--out", out)
    shard1 = os.path.join(out, "classify-00001-of-00002.jsonl")
    with open(shard1, "rb") as f:
        data = f.read()
    with open(shard1, "wb") as f:  # killed while writing its third line
        f.write(data[:data.index(b"\n", data.index(b"\n") + 1) + 40])
    classify(program, *CLIPS, "--shard", "1/2", "--out", out)
    merged = os.path.join(stack.tmp, "merged.jsonl")
    run([program, "merge", merged, shard1, os.path.join(out, "classify-00000-of-00002.jsonl")], what="avemo merge")
    with open(merged) as f:
        if lines(f.read()) != single:
            fail("a shard restarted after a kill, merged, is not the unsharded run")
    log("classify --out: a shard cut mid-line is resumed; avemo merge = the unsharded run")

    feats = os.path.join(stack.tmp, "features")
    inputs = [os.path.join(DATA, "cremad"), os.path.join(DATA, "audio")]
    run([program, "features", *inputs, "--shard", "0/1", "--out", os.path.join(feats, "one")], what="features 0/1")
    shards = []
    for i in range(3):
        run([program, "features", *inputs, "--shard", f"{i}/3", "--out", feats], what=f"features {i}/3")
        shards.append(os.path.join(feats, f"features-{i:05d}-of-00003.npy"))
    merged_npy = os.path.join(stack.tmp, "features.npy")
    run([program, "merge", merged_npy, *shards], what="avemo merge .npy")
    with open(merged_npy, "rb") as a, open(os.path.join(feats, "one", "features-00000-of-00001.npy"), "rb") as b:
        if a.read() != b.read():
            fail("features: the merged shards are not the one-process .npy")
    log("features --shard I/3: the merged .npy is the one-process .npy byte for byte")

    ev = os.path.join(stack.tmp, "eval")
    # Three CREMA-D clips (a CSV manifest: eval detects faces, slow under the sanitizers); not
    # the audio-only files: `avemo eval` of items without a face reads past a buffer under
    # AddressSanitizer (train_face_input then, now avemo_model_face_input in src/model/input.c), one process as well.
    # Two --data, so that the merged per_data has one entry each, as one process prints them.
    data = []
    for name, clips in (("eval-a.csv", CLIPS[:2]), ("eval-b.csv", CLIPS[2:3])):
        manifest = os.path.join(stack.tmp, name)
        with open(manifest, "w") as f:
            for clip in clips:
                f.write(f"{clip},{os.path.basename(clip).split('_')[2]},cremad:1001\n")
        data += ["--data", manifest]
    single_eval = run([program, "eval", MODEL, *data, "--json"], timeout=200, what="avemo eval (one process)")
    for i in range(2):
        run([program, "eval", MODEL, *data, "--shard", f"{i}/2", "--out", ev], timeout=200,
            what=f"avemo eval --shard {i}/2")
    merged_eval = run([program, "merge", "--metrics", "-", *(os.path.join(ev, f) for f in sorted(os.listdir(ev)))],
                      what="avemo merge --metrics")
    if merged_eval != single_eval[single_eval.index("{"):]:
        fail(f"eval: the merged metrics of 2 shards differ from one process:\n{merged_eval[:300]}\n{single_eval[:300]}")
    log("eval --shard I/2: avemo merge --metrics = avemo eval --json of one process")
    eval_av_pairs(stack, program)


FER_CODES = {"angry": "ANG", "disgust": "DIS", "fear": "FEA", "happy": "HAP", "neutral": "NEU", "sad": "SAD"}


def eval_av_pairs(stack, program):
    """The av model on label-matched pairs: audio files (no picture) each paired with a face
    image of its label.  The pairs are drawn over the whole item list, so shards whose blocks
    hold the sound but not the faces (or some of them) give the one-process metrics."""
    faces = os.path.join(stack.tmp, "faces.csv")
    with open(faces, "w") as f:
        for name in sorted(os.listdir(os.path.join(DATA, "faces"))):
            code = FER_CODES.get(name.split("_")[0])
            if code:
                f.write(f"{os.path.join(DATA, 'faces', name)},{code},fer:{name},test\n")
    model = os.path.join(os.path.dirname(MODEL), "avemo-av.avm")
    data = ["--data", os.path.join(DATA, "audio"), "--data", faces]
    single = run([program, "eval", model, *data, "--fusion", "head", "--json"], timeout=200, what="avemo eval av pairs (one process)")
    single = single[single.index("{"):]
    if '"n":\t4,' not in single:
        fail(f"eval av pairs: one process should pair all 4 audio files with a face:\n{single[:300]}")
    for n in (2, 3):
        out = os.path.join(stack.tmp, f"eval-av-{n}")
        for i in range(n):
            run([program, "eval", model, *data, "--shard", f"{i}/{n}", "--out", out], timeout=200,
                what=f"avemo eval av pairs --shard {i}/{n}")
        merged = run([program, "merge", "--metrics", "-", *(os.path.join(out, f) for f in sorted(os.listdir(out)))],
                     what="avemo merge --metrics (av pairs)")
        if merged != single:
            fail(f"eval av pairs: the merged metrics of {n} shards differ from one process:\n{merged[:400]}\n{single[:400]}")
    log("eval av on label-matched pairs --shard I/2 and I/3: avemo merge --metrics = one process")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    args = ap.parse_args()
    main(lambda stack: test(stack, os.path.abspath(args.program)), "scale_shard_cli")
