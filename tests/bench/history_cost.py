#!/usr/bin/python3
"""What the history costs per prediction: SQLite file vs PostgreSQL (docs/scale-out.md).

One `avemo serve` replica per back end (the same model, one worker), one client sending the
same clip N times in a row.  Per request, the server's access log gives the whole request and
the answer's latency_ms the classification; the difference is the rest (hash, JSON, history
insert + commit).  Also GET /v1/history/{id}: a read of one row.  Prints medians in ms.
PostgreSQL is a cluster made by initdb in a temporary folder (tests/scale/scale_common.py).

  tests/bench/history_cost.py --program build/avemo [--requests 100]
"""
import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scale"))
from scale_common import CLIPS, Postgres, Replica, Stack, get, predict  # noqa: E402


def measure(stack, replica, n):
    latency, reads = [], []
    for _ in range(n):
        status, j, _ = predict(replica.url, CLIPS[0])
        assert status == 200, j
        latency.append(j["latency_ms"])
        t0 = time.perf_counter()
        status, _, _ = get(f"{replica.url}/v1/history/{j['id']}")
        reads.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.5)  # the access log line is written after the answer
    with open(os.path.join(stack.tmp, replica.name + ".log")) as f:
        totals = [float(m.group(1)) for m in re.finditer(r"POST /v1/predict 200 ([\d.]+) ms", f.read())]
    rest = [t - c for t, c in zip(totals[-n:], latency)]
    return statistics.median(totals[-n:]), statistics.median(latency), statistics.median(rest), statistics.median(reads)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    stack = Stack("history-cost")
    try:
        pg = Postgres(stack).start()
        program = os.path.abspath(args.program)
        for name, db in (("sqlite", os.path.join(stack.tmp, "h.sqlite")), ("postgresql", pg.uri)):
            r = Replica(stack, program, db, name).wait_ready()
            total, classify, rest, read = measure(stack, r, args.requests)
            print(f"{name:10s} request {total:6.2f} ms  classification {classify:6.2f} ms  "
                  f"rest (history insert, hash, JSON) {rest:5.2f} ms  GET /v1/history/id {read:5.2f} ms "
                  f"(medians of {args.requests})", flush=True)
            stack.stop(r.proc)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
