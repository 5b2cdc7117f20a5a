#!/usr/bin/python3
"""scale_slurm: a single-node Slurm (Debian slurm-wlm + munge) on 127.0.0.1, made in a
temporary folder: munged as the munge user with its own key, slurmctld and slurmd (-D) as
root with a generated slurm.conf (SlurmUser=root, proctrack/linuxproc, task/none).

1. `sbatch --array=0-3 --wait deploy/slurm/classify.sbatch CLIPS...`: `avemo merge` of the
   four shards is the output of one process (`avemo classify CLIPS... --json`), line for
   line, apart from each line's time_ms (measured per run); the wall times are printed.
2. `sbatch --array=0-1 --wait deploy/slurm/cv.sbatch tests/scale/cv-tiny.ini ...`: two folds
   (split files made here) train and are evaluated as array tasks; each fold's metrics count
   its test part; `avemo compare` reads the two fold models.

  tests/scale/scale_slurm.py --program build/avemo
"""
import argparse
import pwd
import glob
import json
import os
import re
import subprocess
import time

from scale_common import (CLIPS, DATA, MODE, MODEL, SOURCE, as_user, chown_to, fail, find_program, free_port,
                          log, main, run)

NODE = "avemotest"


def start_munge(stack):
    munged = find_program("munged")
    d = os.path.join(stack.tmp, "munge")
    os.mkdir(d)
    os.chmod(d, 0o711)  # munged: the socket folder must be searchable by all, writable by it only
    key = os.path.join(d, "munge.key")
    with open(key, "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(key, 0o400)
    for path in (d, key):
        chown_to(path, "munge")
    socket = os.path.join(d, "munge.socket")
    stack.start("munged", as_user("munge") + [munged, "-F", "--socket", socket, "--key-file", key,
                                               "--log-file", os.path.join(d, "munged.log"),
                                               "--pid-file", os.path.join(d, "munged.pid"),
                                               "--seed-file", os.path.join(d, "munged.seed")])
    for _ in range(100):  # at most 10 s
        if os.path.exists(socket):
            return socket
        time.sleep(0.1)
    fail(f"munged did not start:\n{stack.log_tail('munged')}")


def memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024 * 9 // 10
    return 1000


def slurm_conf(stack, socket):
    t = stack.tmp
    for sub in ("state", "spool"):
        os.mkdir(os.path.join(t, sub))
    conf = os.path.join(t, "slurm.conf")
    with open(conf, "w") as f:
        f.write(f"""ClusterName=avemotest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={pwd.getpwuid(os.getuid()).pw_name}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.pid
SlurmctldLogFile={t}/slurmctld.log
SlurmdLogFile={t}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def start_slurm(stack):
    socket = start_munge(stack)
    conf = slurm_conf(stack, socket)
    env = dict(os.environ, SLURM_CONF=conf)
    stack.start("slurmctld-out", [find_program("slurmctld"), "-D", "-f", conf], env=env)
    stack.start("slurmd-out", [find_program("slurmd"), "-D", "-N", NODE, "-f", conf], env=env)
    sinfo = find_program("sinfo")
    state = ""
    for _ in range(60):  # at most ~60 s
        try:
            state = run([sinfo, "-h", "-n", NODE, "-o", "%T"], env=env, timeout=10, what="sinfo").strip()
        except Exception:
            state = "no answer"
        if state == "idle":
            log(f"Slurm {run([sinfo, '-V'], env=env).strip()}: node {NODE} idle")
            return env
        time.sleep(1)
    fail(f"the Slurm node is not idle after 60 s ({state}):\n{stack.log_tail('slurmctld.log')}\n"
         f"{stack.log_tail('slurmd.log')}")


def sbatch(stack, env, args, timeout):
    """sbatch --wait; the job is cancelled at cleanup should the test fail before its end."""
    out_pattern = os.path.join(stack.tmp, "job-%A_%a.out")
    cmd = [find_program("sbatch"), "--wait", "--output", out_pattern, "--chdir", stack.tmp, *args]
    t0 = time.monotonic()
    try:
        out = run(cmd, env=env, timeout=timeout, what="sbatch " + os.path.basename(args[-1] if "/" in args[-1]
                                                                                  else args[0]))
    except Exception:
        logs = "".join(stack.log_tail(os.path.basename(p)) for p in sorted(os.listdir(stack.tmp))
                       if p.startswith("job-"))
        run([find_program("scancel"), "--user", str(os.getuid())], env=env, timeout=30, what="scancel")
        raise type(__import__("sys").exc_info()[1])(f"{__import__('sys').exc_info()[1]}\n{logs}")
    seconds = time.monotonic() - t0
    job = re.search(r"Submitted batch job (\d+)", out)
    return (job.group(1) if job else "?"), seconds


def job_span(env, job):
    """Seconds from the first task's start to the last task's end (scontrol, 1 s resolution):
    sbatch --wait itself polls the controller at growing intervals."""
    out = run([find_program("scontrol"), "show", "job", "-o", job], env=env, what="scontrol show job")
    starts = re.findall(r"StartTime=(\S+)", out)
    ends = re.findall(r"EndTime=(\S+)", out)
    parse = lambda t: time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))  # noqa: E731
    try:
        return max(map(parse, ends)) - min(map(parse, starts))
    except ValueError:
        return float("nan")


def strip_times(text):
    return [re.sub(r',"time_ms":\{[^}]*\}', "", line) for line in text.splitlines() if line.strip()]


def check_classify(stack, env, program, clips):
    out_dir = os.path.join(stack.tmp, "classify")
    job_env = dict(env, AVEMO=program, AVEMO_OUT=out_dir, AVEMO_MODEL=MODEL, AVEMO_MODE=MODE,
                   OPENBLAS_NUM_THREADS="1")
    script = os.path.join(SOURCE, "deploy", "slurm", "classify.sbatch")
    job, array_s = sbatch(stack, job_env, ["--array=0-3", "--cpus-per-task=1", "--mem=500M", script, *clips], 600)
    shards = sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))
    if [os.path.basename(s) for s in shards] != [f"classify-{i:05d}-of-00004.jsonl" for i in range(4)]:
        fail(f"the array wrote {shards}")
    merged = os.path.join(stack.tmp, "merged.jsonl")
    run([program, "merge", merged, *reversed(shards)], what="avemo merge")
    t0 = time.monotonic()
    single = run([program, "classify", "--model", MODEL, "--mode", MODE, "--json", *clips], timeout=600,
                 what="avemo classify (one process)", env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    single_s = time.monotonic() - t0
    with open(merged) as f:
        got = strip_times(f.read())
    want = strip_times(single)
    if got != want or len(want) != len(clips):
        fail(f"merged shards differ from one process: {len(got)} vs {len(want)} lines\n{got[:2]}\n{want[:2]}")
    log(f"classify.sbatch --array=0-3 (job {job}): {len(clips)} clips, merged = one process; wall time "
        f"{array_s:.1f} s (sbatch --wait), tasks ran {job_span(env, job):.0f} s (first start to last end), "
        f"one process {single_s:.1f} s")


def write_folds(stack):
    """Two folds over the fixture clips: even items test fold 0, odd fold 1."""
    d = os.path.join(stack.tmp, "splits")
    os.mkdir(d)
    tests = []
    for k in range(2):
        test = [p for i, p in enumerate(CLIPS) if i % 2 == k]
        rest = [p for i, p in enumerate(CLIPS) if i % 2 != k]
        with open(os.path.join(d, f"fold-{k}.split"), "w") as f:
            f.writelines(f"train {p}\n" for p in rest[:-1])
            f.write(f"validation {rest[-1]}\n")
            f.writelines(f"test {p}\n" for p in test)
        tests.append(test)
    return d, tests


def test_part(split_path):
    with open(split_path) as f:
        return sorted(os.path.basename(line.split(" ", 1)[1].strip()) for line in f if line.startswith("test "))


def check_cv(stack, env, program):
    splits, tests = write_folds(stack)
    out_dir = os.path.join(stack.tmp, "cv")
    job_env = dict(env, AVEMO=program, AVEMO_OUT=out_dir, AVEMO_SPLITS=splits, OPENBLAS_NUM_THREADS="1")
    script = os.path.join(SOURCE, "deploy", "slurm", "cv.sbatch")
    data = ["--data", os.path.join(DATA, "cremad"), "--data", os.path.join(DATA, "audio")]
    job, seconds = sbatch(stack, job_env, ["--array=0-1", "--cpus-per-task=1", "--mem=1G", script,
                                           os.path.join(HERE_SCALE, "cv-tiny.ini"), *data], 240)
    for k in range(2):
        with open(os.path.join(out_dir, f"fold-{k}.metrics.json")) as f:
            metrics = json.load(f)
        if test_part(os.path.join(out_dir, f"fold-{k}.split")) != sorted(os.path.basename(p) for p in tests[k]):
            fail(f"fold {k}: its split's test part is not the one given")
        if metrics["n"] != len(tests[k]) or not 0 <= metrics["accuracy"] <= 1:
            fail(f"fold {k}: metrics of {metrics['n']} units, its test part has {len(tests[k])}")
    # Fold 0's test part is fold 1's training data: compare reads both models' training records
    # and refuses to score fold 1 on files it trained on.
    r = subprocess.run([program, "compare", os.path.join(out_dir, "fold-0.avm"), os.path.join(out_dir, "fold-1.avm"),
                        *data, "--split", os.path.join(out_dir, "fold-0.split"), "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 1 or f"trained or validated on ({len(tests[0])}," not in out:
        fail(f"avemo compare of the two folds on fold 0's test part: exit {r.returncode}\n{out[-2000:]}")
    log(f"cv.sbatch --array=0-1 (job {job}): two folds trained and evaluated in {seconds:.1f} s; "
        f"avemo compare read both models' training records and left out fold 0's test part (fold 1 trained on it)")


HERE_SCALE = os.path.dirname(os.path.abspath(__file__))


def test(stack, program, args):
    env = start_slurm(stack)
    clips = sorted(glob.glob(args.clips))[:args.limit] if args.clips else CLIPS
    check_classify(stack, env, program, clips)
    if not args.clips:
        check_cv(stack, env, program)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    ap.add_argument("--clips", help="measure: classify these (a glob) instead of the fixtures, no cv")
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    main(lambda stack: test(stack, os.path.abspath(args.program), args), "scale_slurm")
