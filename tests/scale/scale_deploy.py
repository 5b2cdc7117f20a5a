#!/usr/bin/python3
"""scale_deploy: the deploy/ files that the engine tests do not run are parsed and checked.

- nginx/avemo.conf: `nginx -t`; its upload limit is avemo serve's default (--max-upload-mb).
- k8s/*.yaml (python3-yaml): Deployment probes /readyz and /healthz on the container's port,
  the Service selects the Deployment's pods, the Indexed Job's AVEMO_SHARD_COUNT equals its
  completions; every avemo option in the manifests is one `avemo CMD --help` lists.
- prometheus/prometheus.yml: scrapes /metrics of the replicas nginx balances.
- systemd/avemo.service: `systemd-analyze verify` (with the built program as ExecStart);
  its avemo options exist.
- slurm/*.sbatch: `bash -n`.

  tests/scale/scale_deploy.py --program build/avemo
"""
import argparse
import os
import re
import shutil
import subprocess

import yaml

from scale_common import SOURCE, Stack, fail, find_program, log, main, run

DEPLOY = os.path.join(SOURCE, "deploy")


def options_known(program, command, args, where):
    usage = run([program, command, "--help"], what=f"avemo {command} --help")
    for a in args:
        if a.startswith("--") and not re.search(re.escape(a) + r"\b", usage):
            fail(f"{where}: avemo {command} has no option {a}")


def check_nginx(stack, program):
    import scale_nginx

    class Fake:
        port = 18081

    main_conf = scale_nginx.nginx_config(stack, [Fake(), Fake(), Fake()], 18080)
    nginx = find_program("nginx")
    run([nginx, "-t", "-p", stack.tmp, "-e", os.path.join(stack.tmp, "error.log"), "-c", main_conf], what="nginx -t")
    with open(scale_nginx.CONF) as f:
        conf = f.read()
    limit = re.search(r"client_max_body_size (\d+)m;", conf)
    default = re.search(r"--max-upload-mb N +largest accepted upload in MiB \(default (\d+)\)",
                        run([program, "serve", "--help"]))
    if not limit or not default or limit.group(1) != default.group(1):
        fail(f"nginx client_max_body_size {limit and limit.group(1)}m, avemo's limit {default and default.group(1)} MiB")
    for directive in ("proxy_next_upstream error timeout http_502 http_503 non_idempotent", "max_fails=",
                      "proxy_set_header Idempotency-Key", "proxy_set_header X-Request-Id"):
        if directive not in conf:
            fail(f"{scale_nginx.CONF}: no '{directive}'")
    log(f"nginx -t: ok; upload limit {limit.group(1)} MiB = avemo's")
    return sorted(int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+) ", conf))


def container(manifest):
    return manifest["spec"]["template"]["spec"]["containers"][0]


def check_k8s(program):
    with open(os.path.join(DEPLOY, "k8s", "avemo.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    dep, svc = docs.get("Deployment"), docs.get("Service")
    if not dep or not svc:
        fail(f"k8s/avemo.yaml: kinds {list(docs)}, expected Deployment and Service")
    c = container(dep)
    args = c["args"]
    port = int(args[args.index("--port") + 1])
    if args[0] != "serve" or "--db" not in args:
        fail(f"k8s Deployment args {args}")
    options_known(program, "serve", args, "k8s Deployment")
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c[probe]["httpGet"]
        if get["path"] != path or named.get(get["port"], get["port"]) != port:
            fail(f"k8s {probe}: {get}, expected {path} on port {port}")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    if int(annotations["prometheus.io/port"]) != port or annotations["prometheus.io/path"] != "/metrics":
        fail(f"k8s prometheus annotations {annotations}")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()) or dep["spec"]["replicas"] < 2:
        fail("k8s Service selects no pod of the Deployment, or fewer than 2 replicas")
    if svc["spec"]["ports"][0]["targetPort"] not in named:
        fail("k8s Service targetPort is not a container port name")
    with open(os.path.join(DEPLOY, "k8s", "classify-job.yaml")) as f:
        job = yaml.safe_load(f)
    spec = job["spec"]
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    if job["kind"] != "Job" or spec["completionMode"] != "Indexed" or int(env["AVEMO_SHARD_COUNT"]) != spec["completions"]:
        fail(f"k8s Job: {spec.get('completionMode')}, completions {spec.get('completions')}, "
             f"AVEMO_SHARD_COUNT {env.get('AVEMO_SHARD_COUNT')}")
    job_args = container(job)["args"]
    options_known(program, job_args[0], job_args, "k8s Job")
    log(f"k8s: Deployment ({dep['spec']['replicas']} replicas, probes /readyz /healthz on {port}), Service, "
        f"Indexed Job of {spec['completions']} shards: ok")


def check_prometheus(upstream_ports):
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    avemo = jobs.get("avemo")
    if not avemo or avemo.get("metrics_path", "/metrics") != "/metrics":
        fail(f"prometheus.yml: no avemo job scraping /metrics: {list(jobs)}")
    targets = sorted(int(t.rsplit(":", 1)[1]) for sc in avemo["static_configs"] for t in sc["targets"])
    if targets != upstream_ports:
        fail(f"prometheus.yml scrapes {targets}, nginx balances {upstream_ports}")
    log(f"prometheus.yml: scrapes every replica nginx balances ({targets})")


def check_systemd(stack, program):
    path = os.path.join(DEPLOY, "systemd", "avemo.service")
    with open(path) as f:
        unit = f.read()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", unit, re.M)
    options_known(program, "serve", exec_start.group(2).split(), "avemo.service")
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        log("systemd-analyze is not installed: avemo.service checked for its options only")
        return
    copy = os.path.join(stack.tmp, "avemo.service")
    with open(copy, "w") as f:
        f.write(unit.replace(exec_start.group(1), program, 1))
    r = subprocess.run([analyze, "verify", copy], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    # Only lines about our unit count: a container without a running systemd also complains
    # about the machine's own units.
    ours = [line for line in out.splitlines() if "avemo.service" in line]
    if ours:  # it warns (exit 0) about a bad line: a warning is a failure here
        fail(f"systemd-analyze verify avemo.service:\n{out[-2000:]}")
    log("systemd-analyze verify avemo.service: ok")


def check_slurm():
    for name in ("classify.sbatch", "cv.sbatch"):
        path = os.path.join(DEPLOY, "slurm", name)
        run(["bash", "-n", path], what=f"bash -n {name}")
        if not os.access(path, os.X_OK):
            fail(f"{path} is not executable")
    log("slurm/*.sbatch: bash -n ok")


def test(stack, program):
    ports = check_nginx(stack, program)
    check_k8s(program)
    check_prometheus(ports)
    check_systemd(stack, program)
    check_slurm()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    args = ap.parse_args()
    main(lambda stack: test(stack, os.path.abspath(args.program)), "scale_deploy")
