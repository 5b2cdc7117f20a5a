#!/usr/bin/python3
"""scale_nginx: Debian's nginx with deploy/nginx/avemo.conf as it is (only its ports and log
path replaced) in front of three `avemo serve` replicas sharing a PostgreSQL history.

300 predictions from 8 clients; one replica is killed with SIGKILL a third of the way:
no client sees a failure (every answer 200, no retry by the client), every answer equals
one process's (`avemo classify`), and the history has exactly 300 rows (nginx's retries of
a request the dead replica had committed are answered from its Idempotency-Key).
Also: `nginx -t`, X-Request-Id through nginx, and nginx refuses an upload over avemo's limit.

  tests/scale/scale_nginx.py --program build/avemo [--requests 300 --clients 8]
  (--replicas 1|2|3 --no-kill --keep-db: the throughput figures of docs/scale-out.md)
"""
import argparse
import os
import re
import threading
import time
import urllib.request

from scale_common import (CLIPS, SOURCE, Postgres, Replica, fail, find_program, log, main, predict,
                          reference_answers, run, same_answer)

CONF = os.path.join(SOURCE, "deploy", "nginx", "avemo.conf")
UPSTREAM_PORTS = (8081, 8082, 8083)


def nginx_config(stack, replicas, port):
    """avemo.conf with the test's ports and log path, in a main config of the test's own."""
    with open(CONF) as f:
        conf = f.read()
    ports = re.findall(r"server 127\.0\.0\.1:(\d+) ", conf)
    if tuple(int(p) for p in ports) != UPSTREAM_PORTS:
        fail(f"{CONF}: upstream servers {ports}, the test expects {UPSTREAM_PORTS}")
    for i, p in enumerate(UPSTREAM_PORTS):
        # with fewer replicas the rest point at the first (throughput runs)
        conf = conf.replace(f"server 127.0.0.1:{p} ", f"server 127.0.0.1:{replicas[min(i, len(replicas) - 1)].port} ")
    conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/var/log/nginx/avemo.access.log", os.path.join(stack.tmp, "access.log"))
    site = os.path.join(stack.tmp, "avemo.conf")
    with open(site, "w") as f:
        f.write(conf)
    temp = os.path.join(stack.tmp, "nginx-temp")
    os.mkdir(temp)
    os.chmod(temp, 0o777)  # nginx's workers (nobody when started as root) write uploads here
    main_conf = os.path.join(stack.tmp, "nginx.conf")
    with open(main_conf, "w") as f:
        f.write(f"""worker_processes 1;
pid {stack.tmp}/nginx.pid;
error_log {stack.tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
""")
    return main_conf


def start_nginx(stack, replicas):
    nginx = find_program("nginx")
    port = __import__("scale_common").free_port()
    conf = nginx_config(stack, replicas, port)
    base = [nginx, "-p", stack.tmp, "-e", os.path.join(stack.tmp, "error.log"), "-c", conf]
    log(run(base + ["-t"], what="nginx -t").strip().replace("\n", " | "))
    proc = stack.start("nginx", base + ["-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):  # at most 10 s
        if proc.poll() is not None:
            fail(f"nginx exited ({proc.returncode}):\n{stack.log_tail('error.log')}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            time.sleep(0.1)
    fail(f"nginx does not answer on {url}:\n{stack.log_tail('error.log')}")


def load(url, reference, total, clients, on_progress):
    answered, errors, lock = [], [], threading.Lock()

    def client(c):
        for i in range(c, total, clients):
            clip = CLIPS[i % len(CLIPS)]
            try:
                status, j, headers = predict(url, clip, timeout=120)
            except OSError as e:
                status, j, headers = -1, str(e), {}
            with lock:
                if status != 200 or not same_answer(reference, j):
                    errors.append(f"request {i} ({os.path.basename(clip)}): {status} {j}")
                elif not headers.get("X-Request-Id"):
                    errors.append(f"request {i}: no X-Request-Id")
                else:
                    answered.append(j["id"])
                on_progress(len(answered) + len(errors))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        if t.is_alive():
            fail("a client did not finish in 600 s")
    return answered, errors, time.monotonic() - t0


def check_upload_limit(url):
    """nginx refuses a body over avemo's 50 MiB limit (413) before reading it."""
    body = b"\0" * ((50 << 20) + 1)
    req = urllib.request.Request(url + "/v1/predict?mode=audio", data=body, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = -1  # nginx may close while we still send: also a refusal
    if status not in (413, -1):
        fail(f"an upload of 50 MiB + 1 byte through nginx answered {status}, not 413")
    log(f"upload of 50 MiB + 1 byte refused by nginx ({status})")


def test(stack, program, args):
    pg = Postgres(stack).start()
    reference = reference_answers(program)
    replicas = [Replica(stack, program, pg.uri, f"replica-{i + 1}", threads=args.threads)
                for i in range(args.replicas)]
    for r in replicas:
        r.wait_ready()
    url = start_nginx(stack, replicas)
    killed = []

    def on_progress(done):
        if not args.no_kill and not killed and done >= args.requests // 3:
            killed.append(done)
            replicas[1].kill9()
            log(f"replica-2 killed (SIGKILL) after {done} answers")

    answered, errors, seconds = load(url, reference, args.requests, args.clients, on_progress)
    if errors:
        fail(f"{len(errors)} client-visible failures, e.g. {errors[:3]}\n{stack.log_tail('error.log')}")
    if not args.no_kill and not killed:
        fail("the replica was never killed")
    rows = int(pg.sql("SELECT count(*) FROM avemo_predictions"))
    if rows != args.requests or len(set(answered)) != args.requests:
        fail(f"{args.requests} requests, {len(set(answered))} distinct ids answered, {rows} rows in the history")
    retried = sum(1 for line in open(os.path.join(stack.tmp, "access.log")) if ", " in line.split("upstream=")[-1])
    log(f"{args.requests} predictions from {args.clients} clients through nginx in {seconds:.1f} s "
        f"({args.requests / seconds:.1f} requests/s, {args.replicas} replicas x {args.threads} workers): "
        f"all 200, equal to one process, {rows} rows; {retried} requests were retried on another replica")
    if not args.no_kill:
        check_upload_limit(url)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=3, choices=(1, 2, 3))
    ap.add_argument("--threads", type=int, default=1, help="inference workers per replica")
    ap.add_argument("--no-kill", action="store_true", help="measure only: kill no replica")
    args = ap.parse_args()
    if not args.no_kill and args.replicas < 3:
        ap.error("the kill test needs 3 replicas")
    main(lambda stack: test(stack, os.path.abspath(args.program), args), "scale_nginx")
