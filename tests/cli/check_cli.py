"""The avemo program as a user runs it: images, standard input, folders and manifests, CSV and
JSON lines with failed files, --quiet and --verbose, and the usage errors (exit 2, with the reason).

usage: check_cli.py CASE AVEMO TEST_DATA WORK_DIR
CASE: image stdin inputs csv json log usage eval long
Each check prints "ok: ..." or "FAIL: ..."; the exit status is 1 when one failed.
"""
import csv
import io
import json
import os
import pty
import shutil
import subprocess
import sys

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def run(args, stdin=None, timeout=120):
    p = subprocess.run([PROGRAM, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def close(a, b, tol=1e-6):
    return all(abs(a[k] - b[k]) <= tol for k in a) and a.keys() == b.keys()


def case_image():
    """`avemo classify face.png`: one picture, the face model, the same answer as its bytes on stdin."""
    rc, out, err = run(["classify", PNG])
    check(rc == 0 and out.startswith(PNG + ": "), "classify face.png -> exit 0 and a line for it (%d %r %r)"
          % (rc, out[:80], err[:200]))
    rc, out, err = run(["classify", PNG, "--json"])
    pred = json_lines(out)
    check(rc == 0 and len(pred) == 1, "classify face.png --json -> one JSON line (%d, %r)" % (rc, err[:200]))
    if not pred:
        return
    p = pred[0]
    check(p["mode"] == "face" and p["face_found"] and p["frames_sampled"] == 1 and p["frames_used"] == 1,
          "a PNG is one still image classified from its face (mode %s, faces %s/%s)"
          % (p["mode"], p["frames_used"], p["frames_sampled"]))
    check(abs(sum(p["probabilities"].values()) - 1) < 1e-4 and p["label"] in p["probabilities"],
          "probabilities sum to 1 and the label is one of the classes (%s)" % p["label"])


def case_stdin():
    """`cat clip.flv | avemo classify - --json` gives the file's own answer; so do probe and features."""
    clip_bytes = open(CLIP, "rb").read()
    rc, out, err = run(["classify", "-", "--json"], stdin=clip_bytes)
    piped = json_lines(out)
    check(rc == 0 and len(piped) == 1 and piped[0]["file"] == "-",
          "cat clip.flv | avemo classify - --json -> one line for '-' (%d %r)" % (rc, err[:200]))
    rc, out, _ = run(["classify", CLIP, "--json"])
    named = json_lines(out)
    check(piped and named and piped[0]["label"] == named[0]["label"]
          and close(piped[0]["probabilities"], named[0]["probabilities"])
          and piped[0]["frames_used"] == named[0]["frames_used"],
          "the clip on stdin gets the probabilities of the named clip (%s)"
          % (named[0]["probabilities"] if named else None))
    png_bytes = open(PNG, "rb").read()
    rc, out, err = run(["classify", "-", "--json"], stdin=png_bytes)
    check(rc == 0 and json_lines(out)[0]["mode"] == "face", "a PNG on stdin is a still face (%d %r)" % (rc, err[:200]))
    rc, out, err = run(["classify", "-"], stdin=b"")
    check(rc == 1 and "standard input is empty" in err, "empty stdin -> exit 1, said (%d %r)" % (rc, err.strip()))
    rc, out, err = run(["classify", "-", "--json"], stdin=b"not a clip at all" * 10)
    lines = json_lines(out)
    check(rc == 1 and lines and lines[0]["file"] == "-" and "error" in lines[0],
          "junk on stdin -> exit 1 and an error line for '-' (%d %r)" % (rc, out[:160]))
    # one '-' between files keeps the order of the command line
    rc, out, _ = run(["classify", PNG, "-", JPG, "--json"], stdin=clip_bytes)
    files = [p.get("file") for p in json_lines(out)]
    check(rc == 0 and files == [PNG, "-", JPG], "FILE - FILE: three lines in order (%s)" % files)
    rc, out, err = run(["probe", "-", "--json"], stdin=clip_bytes)
    check(rc == 0 and json.loads(out).get("container") == "flv", "probe - reads the FLV from stdin (%d %r)"
          % (rc, err[:200]))
    rc, out, err = run(["features", "-"], stdin=clip_bytes)
    rc2, out2, _ = run(["features", CLIP])
    check(rc == 0 and out.split(":", 1)[1] == out2.split(":", 1)[1],
          "features - prints the named clip's statistics (%r)" % out.strip()[:100])
    rc, out, err = run(["faces", "-", "--frames", "2", "--json"], stdin=clip_bytes)
    rc2, out2, _ = run(["faces", CLIP, "--frames", "2", "--json"])
    check(rc == 0 and json.loads(out)["frames"] == json.loads(out2)["frames"],
          "faces - finds the named clip's boxes (%d %r)" % (rc, err[:200]))


def case_inputs():
    """Folders and --manifest (any name, or '-') as classify's inputs, in order."""
    folder = os.path.join(WORK, "inputs")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "sub"))
    shutil.copy(PNG, os.path.join(folder, "b.png"))
    shutil.copy(JPG, os.path.join(folder, "sub", "a.jpg"))
    shutil.copy(PNG, os.path.join(folder, "c.png"))
    open(os.path.join(folder, "notes.md"), "w").write("not media\n")
    rc, out, err = run(["classify", folder, "--json", "--mode", "face"])
    files = [os.path.relpath(p["file"], folder) for p in json_lines(out)]
    check(rc == 0 and files == ["b.png", "c.png", "sub/a.jpg"],
          "a folder: its media files, sorted, recursively (%s %r)" % (files, err[:200]))
    manifest = os.path.join(folder, "clips.manifest")
    open(manifest, "w").write("# two faces, one relative, one absolute\nsub/a.jpg\n\n%s\n" % os.path.abspath(PNG))
    rc, out, err = run(["classify", "--manifest", manifest, "--json", "--mode", "face"])
    files = [p["file"] for p in json_lines(out)]
    check(rc == 0 and files == [os.path.join(folder, "sub/a.jpg"), os.path.abspath(PNG)],
          "--manifest F: its paths in order, relative to F's folder (%s %r)" % (files, err[:200]))
    rc, out, err = run(["classify", JPG, "--manifest", "-", "--json", "--mode", "face"],
                       stdin=(os.path.abspath(PNG) + "\n").encode())
    files = [p["file"] for p in json_lines(out)]
    check(rc == 0 and files == [JPG, os.path.abspath(PNG)], "--manifest - reads the list from stdin (%s)" % files)
    rc, out, err = run(["classify", "--manifest", "/nonexistent/list.txt"])
    check(rc == 1 and "/nonexistent/list.txt" in err, "a missing manifest -> exit 1 naming it (%d %r)" % (rc, err.strip()))


def csv_rows(text):
    return list(csv.reader(io.StringIO(text)))


def case_csv():
    """--csv: a header, one row per input, a failed file as a row with the error column."""
    missing = "/nonexistent/clip.flv"
    rc, out, err = run(["classify", PNG, missing, CLIP, "--csv"])
    rows = csv_rows(out)
    check(rc == 1, "a failed file among three -> exit 1 (%d)" % rc)
    check(len(rows) == 4, "a header and one row per input (%d lines)" % len(rows))
    if len(rows) != 4:
        return
    header = rows[0]
    check(header[:4] == ["file", "label", "emotion", "confidence"] and header[-1] == "error"
          and all(c in header for c in ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD", "mode", "fallback"]),
          "header: file, label, ..., one column per class, ..., error (%s)" % ",".join(header))
    check(all(len(r) == len(header) for r in rows), "every row has the header's %d fields" % len(header))
    rec = [dict(zip(header, r)) for r in rows[1:]]
    check([r["file"] for r in rec] == [PNG, missing, CLIP], "rows in the order of the inputs")
    check(rec[1]["error"].startswith(missing) and "No such file" in rec[1]["error"] and rec[1]["label"] == "",
          "the failed file's row: the error with its cause, no label (%r)" % rec[1]["error"])
    classes = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    for r in (rec[0], rec[2]):
        probs = [float(r[c]) for c in classes]
        check(r["error"] == "" and r["label"] in classes and abs(sum(probs) - 1) < 1e-4
              and float(r["confidence"]) == max(probs) and r[r["label"]] == r["confidence"],
              "%s: label, confidence = its probability, probabilities sum to 1" % os.path.basename(r["file"]))
    # the same values as --json, to the 6 digits a CSV keeps
    rc, out, _ = run(["classify", CLIP, "--json"])
    j = json_lines(out)[0]
    check(all(abs(float(rec[2][c]) - j["probabilities"][c]) <= 1e-6 * max(1, j["probabilities"][c]) * 10
              for c in classes) and rec[2]["mode"] == j["mode"] and rec[2]["model"] == j["model"],
          "the CSV row carries the JSON line's values")
    # windows as CSV rows, and --out DIR writes a .csv shard with its header
    rc, out, err = run(["classify", CLIP, "--csv", "--window", "1500ms", "--hop", "0:01"])
    rows = csv_rows(out)
    check(rc == 0 and rows[0][:2] == ["start_s", "end_s"] and len(rows) >= 2
          and float(rows[1][1]) - float(rows[1][0]) == 1.5 and float(rows[2][0]) == 1.0,
          "--window 1500ms --hop 0:01 --csv: rows of 1.5 s windows every second (%s)" % rows[1:3])
    out_dir = os.path.join(WORK, "csv-out")
    shutil.rmtree(out_dir, ignore_errors=True)
    rc, out, err = run(["classify", PNG, missing, "--csv", "--shard", "0/1", "--out", out_dir])
    path = os.path.join(out_dir, "classify-00000-of-00001.csv")
    rows = csv_rows(open(path).read()) if os.path.exists(path) else []
    check(rc == 1 and len(rows) == 3 and rows[0][0] == "file" and rows[2][-1].startswith(missing),
          "--csv --out DIR: DIR/classify-00000-of-00001.csv with header and an error row (%d rows)" % len(rows))


def case_json():
    """--json: a failed file gets a JSON line with "error"; --quiet leaves it at that."""
    missing = "/nonexistent/clip.flv"
    rc, out, err = run(["classify", missing, PNG, "--json"])
    lines = json_lines(out)
    check(rc == 1 and len(lines) == 2, "two inputs, one missing -> two JSON lines, exit 1 (%d, %d lines)"
          % (rc, len(lines)))
    if len(lines) == 2:
        e = lines[0]
        check(e["file"] == missing and e["error"]["code"] == "not_found" and missing in e["error"]["message"]
              and "label" not in e, "the failed file's line: {file, error: {code, message}} (%s)" % e)
        check(lines[1]["file"] == PNG and "error" not in lines[1], "the next file is still classified")
    check(missing in err, "without --quiet the error is also on stderr (%r)" % err.strip())
    rc, out, err = run(["classify", missing, PNG, "--json", "--quiet"])
    check(rc == 1 and len(json_lines(out)) == 2 and err == "", "--quiet: the same lines, nothing on stderr (%r)" % err)
    rc, out, err = run(["classify", missing, "--quiet"])
    check(rc == 1 and missing in err, "--quiet in text mode still names the failed file on stderr (%r)" % err.strip())


def case_log():
    """FFmpeg's own lines are silent by default and shown, marked, with --verbose."""
    clip = open(CLIP, "rb").read()
    cut = os.path.join(WORK, "cut.flv")
    open(cut, "wb").write(clip[:150000])  # cut inside the audio: FFmpeg complains about the packets
    rc, out, err = run(["classify", cut])
    check(rc == 0 and err == "", "a cut clip is classified, FFmpeg silent by default (%d %r)" % (rc, err[:200]))
    check("@ 0x" not in err and "[flv" not in err, "no raw FFmpeg line leaks")
    rc, out, err = run(["classify", cut, "--verbose"])
    lines = [l for l in err.splitlines() if l]
    check(rc == 0 and lines and all(l.startswith("avemo: ffmpeg: ") for l in lines) and "@ 0x" not in err,
          "--verbose: FFmpeg's lines, each 'avemo: ffmpeg: [...] ...' (%r)" % lines[:2])
    rc, out, err = run(["probe", cut, "--verbose"])
    check(rc == 0, "--verbose is taken by every command (probe: %d %r)" % (rc, err[:200]))


USAGE_CASES = [
    (["classify", "--mode", "xyz", "CLIP"], "xyz"),
    (["classify", "--window", "abc", "--hop", "1s", "CLIP"], "--window 'abc'"),
    (["classify", "--window", "1m", "CLIP"], "'1m'"),
    (["classify", "--window", "3s", "--mode", "face", "CLIP"], "--mode audio"),
    (["classify", "--hop", "1s", "CLIP"], "--hop needs --window"),
    (["classify", "--window", "3s", "--csv", "--out", "WORK", "CLIP"], "--window"),
    (["classify", "--json", "--csv", "CLIP"], "choose one"),
    (["classify", "--frames", "abc", "CLIP"], "--frames 'abc'"),
    (["classify", "--frames", "33", "CLIP"], "1..32"),
    (["classify"], "no input"),
    (["classify", "-", "-"], "once"),
    (["classify", "--bogus", "CLIP"], "--bogus"),
    (["classify", "--shard", "3/2", "CLIP"], "3/2"),
    (["features", "--feature", "bogus", "CLIP"], "bogus"),
    (["features", "--n-mfcc", "12x", "CLIP"], "12x"),
    (["features", "--input-format", "f32le", "--input-rate", "fast", "CLIP"], "--input-rate 'fast'"),
    (["faces", "--frames", "abc", "CLIP"], "--frames 'abc'"),
    (["faces", "--margin", "0.1.2", "CLIP"], "--margin '0.1.2'"),
    (["faces", "--draw", "CLIP"], "--out"),
    (["probe"], "no FILE"),
    (["eval", "m.avm"], "--data"),
    (["compare", "--data", "WORK"], "no MODEL"),
    (["train", "p.ini", "--data", "WORK"], "--out"),
    (["train", "p.ini", "--data", "WORK", "--out", "m.avm", "--set", "epochs"], "section.key=value"),
    (["eval", "m.avm", "--data", "WORK", "--set", "face.mirror_test"], "section.key=value"),
    (["eval", "m.avm", "--data", "WORK", "--fusion", "both"], "--fusion 'both'"),
    (["eval", "m.avm", "--data", "WORK", "--part", "dev"], "--part 'dev'"),
    (["eval", "m.avm", "--data", "WORK", "--shard", "1/2"], "--shard needs --out"),
    (["eval", "m.avm", "--data", "WORK", "--temperature", "2"], "--temperature"),
    (["compare", "m.avm", "--data", "WORK", "--shard", "1/2"], "--shard"),
    (["compare", "m.avm", "--data", "WORK", "--fusion", "late"], "--fusion"),
    (["calibrate", "m.avm", "--data", "WORK"], "--out"),
    (["calibrate", "m.avm", "--data", "WORK", "--json", "--out", "o.avm"], "--json"),
    (["calibrate", "m.avm", "--data", "WORK", "-j", "--out", "o.avm"], "-j"),
    (["calibrate", "m.avm", "--temperature", "0", "--out", "o.avm"], "--temperature '0'"),
    (["calibrate", "m.avm", "--late-weights", "1", "--out", "o.avm"], "WA,WF"),
    (["calibrate", "m.avm", "--data", "WORK", "--with", "a.avm", "--out", "o.avm"], "--with AUDIO.avm and --with FACE.avm"),
    (["explain", "CLIP"], "--out DIR"),
    (["explain", "CLIP", "--out", "WORK", "--frames", "0"], "--frames '0'"),
    (["split", "p.ini", "--out", "s.txt"], "--data"),
    (["split", "m.avm", "--record", "--data", "WORK", "--out", "s.txt"], "--record"),
    (["merge", "out.jsonl"], "SHARD"),
    (["merge", "--metrics", "out.json"], "EVAL_SHARD"),
    (["merge", "--bogus", "out.jsonl", "a.jsonl"], "--bogus"),
    (["version", "extra"], "extra"),
    (["export", "m.avm", "--onnx", "o.onnx", "--seed", "x"], "--seed 'x'"),
    (["serve", "--timeout", "1m"], "--timeout '1m'"),
    (["serve", "--port", "http"], "--port 'http'"),
    (["help", "nosuch"], "nosuch"),
    (["nosuch"], "nosuch"),
]


def case_usage():
    """Every usage error exits 2 and says why; help --help works; faces --out names errno's text."""
    for argv, reason in USAGE_CASES:
        argv = [CLIP if a == "CLIP" else WORK if a == "WORK" else a for a in argv]
        rc, out, err = run(argv, stdin=b"", timeout=30)
        check(rc == 2 and reason in err and out == "", "avemo %s -> exit 2, says %r (%d %r)"
              % (" ".join(argv), reason, rc, err.strip().splitlines()[0] if err.strip() else ""))
    master, slave = pty.openpty()  # '-' with a terminal on stdin: said, not waited on
    p = subprocess.run([PROGRAM, "classify", "-"], stdin=slave, capture_output=True, timeout=60)
    os.close(slave)
    os.close(master)
    check(p.returncode == 2 and b"terminal" in p.stderr, "classify - with a terminal on stdin -> exit 2, says so (%d %r)"
          % (p.returncode, p.stderr[:120]))
    rc, out, err = run(["help", "--help"])
    check(rc == 0 and out.startswith("usage: avemo help"), "avemo help --help -> its usage (%d %r)" % (rc, out[:40]))
    rc, out, err = run(["classify", "--help"])
    check(rc == 0 and "--csv" in out and "--manifest" in out, "avemo classify --help lists --csv and --manifest")
    rc, out, err = run(["faces", CLIP, "--out", "/nonexistent"])
    check(rc == 1 and "/nonexistent" in err and "No such file or directory" in err,
          "faces --out /nonexistent -> exit 1 with the system's reason (%r)" % err.strip())
    # avemo version names the BLAS kernels; a machine's OPENBLAS_CORETYPE, when set, decides them
    rc, out, err = run(["version"])
    kernels = [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("OpenBLAS kernels: ")]
    forced = os.environ.get("OPENBLAS_CORETYPE")
    check(rc == 0 and len(kernels) == 1 and kernels[0] not in ("", "unknown") and
          (not forced or kernels[0].lower() == forced.lower()),
          "avemo version names the OpenBLAS kernels (%r, OPENBLAS_CORETYPE %r)" % (kernels, forced))
    rc, out, err = run(["classify", "--window", "1.5", "--hop", "500ms", CLIP])
    w = json_lines(out)
    check(rc == 0 and len(w) >= 2 and w[0]["end_s"] - w[0]["start_s"] == 1.5 and w[1]["start_s"] == 0.5,
          "--window 1.5 --hop 500ms: 1.5 s windows every 0.5 s (%s)" % [(x["start_s"], x["end_s"]) for x in w[:2]])


def case_long():
    """A recording longer than the 300 s a clip may last: refused whole with a pointer to --window,
    followed in windows past that point, each window answered as the same stretch cut out alone."""
    ffmpeg = shutil.which("ffmpeg")
    rate, loops = 22050, 150
    long_wav, cut_wav = os.path.join(WORK, "long.wav"), os.path.join(WORK, "cut.wav")
    src = os.path.join(DATA, "cremad16k", "1001_DFA_DIS_XX.wav")
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-stream_loop", str(loops), "-i", src, "-ac", "1",
                    "-ar", str(rate), "-c:a", "pcm_s16le", long_wav], check=True)
    total_s = (os.path.getsize(long_wav) - 44) / 2 / rate  # 16-bit mono after a 44-byte header
    rc, out, err = run(["classify", long_wav])
    check(rc == 1 and "exceeds the limit of 300.0 s" in err and "--window" in err,
          "classify a %.0f s recording -> refused, naming the limit and --window (%r)" % (total_s, err.strip()))
    rc, out, err = run(["classify", long_wav, "--window", "3s", "--hop", "10s", "--json"], timeout=600)
    w = json_lines(out)
    starts = [x["start_s"] for x in w]
    want = [10.0 * k for k in range(int((total_s - 1.5) // 10) + 1)]
    check(rc == 0 and starts == want, "--window 3s --hop 10s over %.1f s: windows at 0, 10, ..., %s (%d, %r)"
          % (total_s, want[-1], rc, err[:200]))
    late = [x for x in w if x["start_s"] == 320.0]
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", long_wav, "-af",
                    "atrim=start_sample=%d:end_sample=%d" % (320 * rate, 323 * rate), "-c:a", "pcm_s16le", cut_wav],
                   check=True)
    rc, out, err = run(["classify", cut_wav, "--mode", "audio", "--json"])
    alone = json_lines(out)
    check(rc == 0 and len(late) == 1 and len(alone) == 1 and
          close(late[0]["probabilities"], alone[0]["probabilities"]) and late[0]["label"] == alone[0]["label"],
          "the window at 320-323 s is answered as those 3 s cut out alone (%s vs %s)"
          % (late[0]["label"] if late else None, alone[0]["label"] if alone else None))


def eval_json(args):
    rc, out, err = run(["eval", *args, "--json"], timeout=300)
    return rc, json.loads(out[out.index("{"):]) if rc == 0 and "{" in out else {}, err


def case_eval():
    """avemo eval measures an av model as classify answers with it (late fusion when the file
    selects it), and --json names what was measured."""
    models = os.environ.get("AVEMO_MODEL_DIR") or os.path.join(DATA, "..", "..", "models")
    av, clips = os.path.join(models, "avemo-av.avm"), os.path.join(DATA, "cremad")
    rc, auto, err = eval_json([av, "--data", clips])
    check(rc == 0 and auto.get("n") == 6 and auto.get("model") == "late(avemo-audio.avm,avemo-face.avm)",
          "eval avemo-av.avm: six clips, measured as late fusion by default (%r, %r)" % (auto.get("model"), err[-200:]))
    rc, same, _ = eval_json([av, "--data", clips, "--fusion", "auto"])
    check(rc == 0 and same == auto, "the default is --fusion auto")
    rc, head, _ = eval_json([av, "--data", clips, "--fusion", "head"])
    check(rc == 0 and head.get("model") == "avemo-av.avm" and head.get("n") == 6,
          "--fusion head measures the av network itself (%r)" % head.get("model"))
    rc, face, _ = eval_json([os.path.join(models, "avemo-face.avm"), "--data", clips])
    check(rc == 0 and face.get("model") == "avemo-face.avm", "a face model is measured as itself (%r)" % face.get("model"))
    fusion_priors(models, av, clips)


def fusion_priors(models, av, clips):
    """calibrate --prior stores the class shares a model learnt; late fusion fitted or stored with
    such models divides them out, and eval names the priors it used."""
    audio, face = os.path.join(models, "avemo-audio.avm"), os.path.join(models, "avemo-face.avm")
    face_p, av_p, av_plain = (os.path.join(WORK, n) for n in ("face-prior.avm", "av-prior.avm", "av-plain.avm"))
    if os.path.exists(face_p):
        os.remove(face_p)  # left by an earlier run of this case
    rc, _, err = run(["calibrate", face, "--prior", "1,2", "--out", face_p])
    check(rc != 0 and "expected 6 counts" in err and not os.path.exists(face_p), "--prior with 2 of 6 classes is refused (%r)" % err[-200:])
    shares = "4655,1486,4577,8415,4965,5190"
    rc, _, err = run(["calibrate", face, "--prior", shares, "--out", face_p])
    check(rc == 0, "calibrate --prior stores a face model's class shares (%r)" % err[-200:])
    weights = ["--late-weights", "1.035,0.895", "--fusion", "late"]
    rc, out, err = run(["calibrate", av, *weights, "--with", audio, "--with", face_p, "--out", av_p])
    check(rc == 0 and "divides out the class priors" in out, "late weights stored with the priors of the --with models (%r)" % (out + err)[-200:])
    face_u = os.path.join(WORK, "face-uniform.avm")  # (the shipped face model stores its own prior)
    rc, _, _ = run(["calibrate", face, "--prior", "1,1,1,1,1,1", "--out", face_u])
    rc, _, _ = run(["calibrate", av, *weights, "--with", audio, "--with", face_u, "--out", av_plain])
    with_models = ["--data", clips, "--with", audio, "--with", face_p]
    rc1, fused, _ = eval_json([av_p, *with_models])
    rc2, plain, _ = eval_json([av_plain, *with_models])
    cal, cal_plain = fused.get("calibration", {}), plain.get("calibration", {})
    prior_face = cal.get("prior_face") or [0]
    uniform = all(abs(x - 1 / 6) < 1e-6 for x in cal.get("prior_audio") or [0])
    plain_uniform = all(abs(x - 1 / 6) < 1e-6 for x in cal_plain.get("prior_face", [1 / 6]))
    check(rc1 == 0 and abs(prior_face[1] - 1486 / 29288) < 1e-6 and uniform and plain_uniform,
          "eval reports the priors late fusion divided out (face %r), uniform or none without them" % prior_face)
    check(rc2 == 0 and cal.get("nll") != cal_plain.get("nll"), "dividing out the face prior changes the fused answers (NLL %r against %r)"
          % (cal.get("nll"), cal_plain.get("nll")))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    case, PROGRAM, DATA, WORK = sys.argv[1:]
    os.makedirs(WORK, exist_ok=True)
    CLIP = os.path.join(DATA, "cremad", "1001_DFA_ANG_XX.flv")
    PNG = os.path.join(DATA, "ckplus", "happy", "S125_005_00000011.png")
    JPG = os.path.join(DATA, "faces", "happy_PublicTest_10130075.jpg")
    globals()["case_" + case]()
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
