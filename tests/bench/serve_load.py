#!/usr/bin/python3
"""Load test of `avemo serve`: C concurrent clients send N predictions in total.

Starts the server on a free 127.0.0.1 port (or uses --url and --pid), asks once per clip for
the reference answer, then runs the clients (half the uploads multipart, half raw bodies) and
checks that every answer has the reference probabilities, that the server is still up, and
that its memory (VmRSS) after the last hundred requests is not above the one after the first
hundred (by more than --rss-slack-mib).  Prints one JSON object; exit status 1 on any failure.

  tests/bench/serve_load.py --program build/avemo --clients 8 --requests 500 --mode av

Standard library only (urllib + threads), so it runs with any python3.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    """User + system CPU time of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def multipart(path, data):
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def predict(base, path, data, mode, use_multipart, timeout=300):
    """One prediction: (status, parsed JSON or None, seconds)."""
    name = os.path.basename(path)
    if use_multipart:
        body, ctype = multipart(path, data)
        url = f"{base}/v1/predict?mode={mode}"
    else:
        body, ctype = data, "video/x-flv" if name.endswith(".flv") else "application/octet-stream"
        url = f"{base}/v1/predict?mode={mode}&name={name}"
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            payload = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        payload, status = e.read(), e.code
    except OSError as e:
        return 0, {"error": str(e)}, time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    try:
        return status, json.loads(payload), seconds
    except ValueError:
        return status, None, seconds


def same_answer(answer, ref, tol=1e-6):
    if not answer or "classes" not in answer:
        return False
    a, b = answer["classes"], ref["classes"]
    return (len(a) == len(b) and answer["label"] == ref["label"] and
            all(x["label"] == y["label"] and abs(x["probability"] - y["probability"]) <= tol for x, y in zip(a, b)))


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def start_server(args, db):
    cmd = [args.program, "serve", "--host", "127.0.0.1", "--port", "0", "--db", db, "--quiet",
           "--threads", str(args.threads), "--queue", str(max(64, 2 * args.clients))]
    model_dir = args.model_dir or os.environ.get("AVEMO_MODEL_DIR") or os.path.join(SOURCE, "models")
    if not os.path.exists(os.path.join(model_dir, "avemo-av.avm")):
        print(f"SKIPPED: {model_dir}/avemo-av.avm does not exist yet")
        sys.exit(77)
    cmd += ["--model", os.path.join(model_dir, "avemo-av.avm")]
    for extra in ("avemo-audio.avm", "avemo-face.avm"):
        if os.path.exists(os.path.join(model_dir, extra)):
            cmd += ["--extra-model", os.path.join(model_dir, extra)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        sys.exit(f"serve_load: the server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{m.group(1)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--program", help="the avemo program: start a server for the run")
    ap.add_argument("--url", help="an already running server (then --pid for its memory)")
    ap.add_argument("--pid", type=int, help="the running server's process id")
    ap.add_argument("--model-dir", help="folder of avemo-av.avm (default $AVEMO_MODEL_DIR or models/)")
    ap.add_argument("--threads", type=int, default=2, help="inference workers of the started server")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--mode", default="av", choices=["av", "audio", "face"])
    ap.add_argument("--files", nargs="*", help="clips to send (default tests/data/cremad/*.flv)")
    ap.add_argument("--rss-slack-mib", type=float, default=8.0,
                    help="allowed VmRSS growth from the first to the last hundred requests")
    a = ap.parse_args()
    if not a.program and not a.url:
        ap.error("give --program or --url")
    files = a.files or sorted(glob.glob(os.path.join(SOURCE, "tests/data/cremad/*.flv")))
    clips = [(p, open(p, "rb").read()) for p in files]

    tmp = tempfile.mkdtemp(prefix="avemo-serve-load-")
    proc = None
    if a.program:
        proc, base = start_server(a, os.path.join(tmp, "history.sqlite"))
        pid = proc.pid
    else:
        base, pid = a.url.rstrip("/"), a.pid

    failures = []
    try:
        # reference answers, one request at a time
        # reference answers, one request at a time (three rounds: the last two time the overhead,
        # i.e. the client's latency minus the worker's decode + inference: HTTP, upload, history)
        refs, overhead = [], []
        for round_ in range(3):
            for k, (path, data) in enumerate(clips):
                status, ans, seconds = predict(base, path, data, a.mode, True)
                if status != 200:
                    sys.exit(f"serve_load: reference prediction of {path} failed: {status} {ans}")
                if round_ == 0:
                    refs.append(ans)
                else:
                    overhead.append(1000 * seconds - ans["latency_ms"])
                    if not same_answer(ans, refs[k]):
                        failures.append(f"{path}: two sequential answers differ")
        overhead.sort()
        single = sorted(r["latency_ms"] for r in refs)

        lock = threading.Lock()
        next_index = [0]
        done = [0]
        latencies, wrong = [], []
        rss = {}

        def client():
            while True:
                with lock:
                    i = next_index[0]
                    if i >= a.requests:
                        return
                    next_index[0] += 1
                path, data = clips[i % len(clips)]
                status, ans, seconds = predict(base, path, data, a.mode, i % 2 == 0)
                ok = status == 200 and same_answer(ans, refs[i % len(clips)])
                with lock:
                    latencies.append(seconds)
                    if not ok:
                        wrong.append({"request": i, "status": status, "answer": str(ans)[:300]})
                    done[0] += 1
                    if done[0] == min(100, a.requests) and pid:
                        rss["after_first_100_kib"] = vmrss_kib(pid)

        cpu0 = cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu_used = cpu_seconds(pid) - cpu0 if pid else None
        if pid:
            rss["after_last_kib"] = vmrss_kib(pid)

        alive = proc is None or proc.poll() is None
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
                healthy = r.status == 200
        except OSError:
            healthy = False
        lat = sorted(latencies)
        growth_kib = rss.get("after_last_kib", 0) - rss.get("after_first_100_kib", 0)
        report = {
            "clients": a.clients, "requests": a.requests, "mode": a.mode, "server_threads": a.threads,
            "correct": a.requests - len(wrong), "wrong_or_failed": len(wrong),
            "seconds": round(elapsed, 3), "requests_per_s": round(a.requests / elapsed, 2),
            # the server's CPU time (all threads) per request: steadier than requests/s on a shared machine
            "server_cpu_ms_per_request": round(1000 * cpu_used / a.requests, 1) if pid else None,
            "latency_p50_ms": round(1000 * percentile(lat, 50), 1),
            "latency_p99_ms": round(1000 * percentile(lat, 99), 1),
            "latency_max_ms": round(1000 * lat[-1], 1) if lat else None,
            "sequential_worker_latency_p50_ms": round(percentile(single, 50), 1),
            "sequential_http_overhead_p50_ms": round(percentile(overhead, 50), 2),
            "vmrss_after_first_100_kib": rss.get("after_first_100_kib"),
            "vmrss_after_last_kib": rss.get("after_last_kib"),
            "vmrss_growth_kib": growth_kib,
            "server_alive": alive and healthy,
        }
        print(json.dumps(report, indent=2))
        if wrong:
            failures.append(f"{len(wrong)} wrong or failed answers, first: {wrong[0]}")
        if not (alive and healthy):
            failures.append("the server is not up after the run")
        if pid and growth_kib > a.rss_slack_mib * 1024:
            failures.append(f"VmRSS grew by {growth_kib} KiB between the first and the last hundred requests")
    finally:
        if proc:
            proc.terminate()
            if proc.wait(timeout=120) != 0:
                failures.append(f"the server exited with {proc.returncode}")
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)
    for f in failures:
        print("serve_load: FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
