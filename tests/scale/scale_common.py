"""Shared parts of the scale-out tests (tests/scale): real engines on 127.0.0.1 only.

Every process a test starts is registered in `Stack` and stopped (by its pid) when the test
ends, passes or fails; every wait is bounded in tries and seconds.  A test that cannot start
an engine fails and says why: a skip is not a pass (docs/scale-out.md).
Standard library only (urllib, subprocess, threads).
"""
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(SOURCE, "tests", "data")
# The clips every scale test classifies: CREMA-D video (their audio) and audio files.
CLIPS = sorted(glob.glob(os.path.join(DATA, "cremad", "*.flv"))) + sorted(glob.glob(os.path.join(DATA, "audio", "*")))
MODEL = os.path.join(SOURCE, "models", "avemo-audio.avm")
MODE = "audio"


class TestFailure(Exception):
    pass


def fail(message):
    raise TestFailure(message)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_program(name, patterns=()):
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[-1]
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if not path:
        fail(f"{name} is not installed (setup.sh installs it: PACKAGES_TEST)")
    return path


def as_user(user):
    """The command prefix that runs a program as `user` when we are root (PostgreSQL and munged
    refuse root), nothing otherwise."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(user)
    except KeyError:
        fail(f"user {user} does not exist (its Debian package creates it)")
    return [find_program("runuser"), "-u", user, "--"]


def chown_to(path, user):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def run(cmd, timeout=60, what=None, **kw):
    """Run a command to its end; fail with its output when it fails."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        fail(f"{what or cmd[0]}: no end after {timeout} s")
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        fail(f"{what or ' '.join(cmd)}: exit status {r.returncode}\n{out[-3000:]}")
    return out


class Stack:
    """The processes and the temporary folder of one test, stopped and removed at the end."""

    def __init__(self, name):
        self.tmp = tempfile.mkdtemp(prefix=f"avemo-{name}-")
        os.chmod(self.tmp, 0o755)
        self.procs = []      # (name, Popen)
        self.cleanups = []   # callables, run last first

    def start(self, name, cmd, log_name=None, env=None):
        out = open(os.path.join(self.tmp, log_name or f"{name}.log"), "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        self.procs.append((name, p))
        return p

    def log_tail(self, name, lines=30):
        path = os.path.join(self.tmp, name if "." in name else f"{name}.log")
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, p, sig=signal.SIGTERM, wait_s=10):
        if p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def close(self, keep=False):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup goes on: everything we started must stop
                log(f"cleanup: {e}")
        for name, p in reversed(self.procs):
            self.stop(p)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(test, name):
    """Run test(stack); exit 0 on success, 1 with the reason on failure; always clean up."""
    stack = Stack(name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # ctest's timeout: clean up too
    ok = False
    try:
        test(stack)
        ok = True
    except TestFailure as e:
        print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
    finally:
        stack.close(keep=not ok and os.environ.get("AVEMO_KEEP_TMP") == "1")
    if ok:
        print(f"{name}: passed", flush=True)
    sys.exit(0 if ok else 1)


# ---- PostgreSQL ----

class Postgres:
    """A cluster made by initdb in the test's folder, on 127.0.0.1 and a free port."""

    def __init__(self, stack):
        self.stack = stack
        self.bindir = os.path.dirname(find_program("initdb", ["/usr/lib/postgresql/*/bin/initdb"]))
        self.dir = os.path.join(stack.tmp, "pg")
        os.mkdir(self.dir)
        chown_to(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.user = as_user("postgres")
        self.uri = f"postgresql://avemo@127.0.0.1:{self.port}/avemo"

    def ctl(self, *args, timeout=60):
        return run(self.user + [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, *args], timeout=timeout,
                   what="pg_ctl " + args[0])

    def start(self):
        run(self.user + [os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "avemo", "-A", "trust",
                         "--no-sync", "-E", "UTF8"], timeout=120, what="initdb")
        self.launch()
        self.stack.cleanups.append(self.stop)
        run([os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "avemo", "avemo"],
            what="createdb")
        version = self.sql("SHOW server_version")
        log(f"PostgreSQL {version} on 127.0.0.1:{self.port}")
        return self

    def launch(self):
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=on"
        self.ctl("start", "-w", "-t", "60", "-o", options, "-l", os.path.join(self.dir, "server.log"))

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.ctl("stop", "-m", "fast", "-w", "-t", "30")

    def restart(self):
        self.ctl("stop", "-m", "fast", "-w", "-t", "30")
        self.launch()

    def sql(self, query):
        out = run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "avemo",
                   "-d", "avemo", "-At", "-v", "ON_ERROR_STOP=1", "-c", query], what="psql")
        return out.strip()


# ---- avemo serve replicas ----

class Replica:
    def __init__(self, stack, program, db, name, threads=1):
        self.stack, self.name = stack, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        self.proc = stack.start(name, [program, "serve", "--model", MODEL, "--host", "127.0.0.1", "--port",
                                       str(self.port), "--db", db, "--threads", str(threads), "--queue", "64"],
                               env=env)

    def wait_ready(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s * 10)):
            if self.proc.poll() is not None:
                fail(f"{self.name} exited ({self.proc.returncode}):\n{self.stack.log_tail(self.name)}")
            try:
                status, _, _ = get(self.url + "/readyz", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        fail(f"{self.name} not ready after {timeout_s} s:\n{self.stack.log_tail(self.name)}")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body), e.headers
        except ValueError:
            return e.code, None, e.headers


def predict(base, path, key=None, request_id=None, timeout=60):
    """POST a clip as the raw body: (status, JSON or None, headers).  OSError when the
    connection fails (refused, reset)."""
    with open(path, "rb") as f:
        data = f.read()
    headers = {"Content-Type": "application/octet-stream"}
    if key:
        headers["Idempotency-Key"] = key
    if request_id:
        headers["X-Request-Id"] = request_id
    name = os.path.basename(path)
    req = urllib.request.Request(f"{base}/v1/predict?mode={MODE}&name={name}", data=data, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body), e.headers
        except ValueError:
            return e.code, None, e.headers


def reference_answers(program):
    """label and probabilities of every clip from one process (`avemo classify --json`)."""
    out = run([program, "classify", "--model", MODEL, "--mode", MODE, "--json", *CLIPS], timeout=120,
              what="avemo classify (reference)")
    answers = {}
    for line in out.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            answers[os.path.basename(j["file"])] = (j["label"], j["probabilities"])
    if len(answers) != len(CLIPS):
        fail(f"the reference run classified {len(answers)} of {len(CLIPS)} clips:\n{out[-2000:]}")
    return answers


def same_answer(reference, j):
    return j is not None and reference.get(j.get("file")) == (j.get("label"), j.get("probabilities"))
