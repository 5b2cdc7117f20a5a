#!/usr/bin/python3
"""scale_postgres: two `avemo serve` replicas sharing a PostgreSQL history (a real cluster made
by initdb in a temporary folder, as the postgres user when run as root).

1. A prediction through either replica is in both histories, with its X-Request-Id.
2. Idempotency-Key: a retry through the other replica gets the first answer and adds no row;
   the key with another upload is refused (422).
3. 8 concurrent clients, each prediction with its own key, retried on the other replica when
   the connection fails; replica A is killed with SIGKILL midway: every prediction answered
   200 is in the table exactly once, and the table has no other row.
4. The database restarts under replica B: B answers 503 + Retry-After (or 200) meanwhile,
   never crashes, and reconnects.
5. Another session holds the history table locked for 30 s: a prediction gets 503 +
   Retry-After once lock_timeout passes (not an answer 30 s later), /healthz is answered
   meanwhile, and predictions succeed again once the lock is gone.

  tests/scale/scale_postgres.py --program build/avemo
"""
import argparse
import json
import os
import subprocess
import threading
import time
import uuid

from scale_common import (CLIPS, Postgres, Replica, fail, get, log, main, predict, reference_answers,
                          same_answer)

CLIENTS = 8
PER_CLIENT = 12


def check_shared_history(a, b, reference):
    ids = []
    for replica, clip in ((a, CLIPS[0]), (b, CLIPS[1])):
        rid = "test-" + uuid.uuid4().hex
        status, j, headers = predict(replica.url, clip, request_id=rid)
        if status != 200 or not same_answer(reference, j):
            fail(f"{replica.name}: prediction answered {status}: {j}")
        if headers.get("X-Request-Id") != rid or j.get("request_id") != rid:
            fail(f"{replica.name}: X-Request-Id {rid} not echoed: {headers.get('X-Request-Id')}")
        ids.append((j["id"], rid))
    for replica in (a, b):
        status, page, _ = get(replica.url + "/v1/history?limit=10")
        listed = {item["id"]: item["request_id"] for item in page["items"]} if status == 200 else {}
        for id_, rid in ids:
            if listed.get(id_) != rid:
                fail(f"{replica.name}: history lacks row {id_} with request id {rid}: {page}")
    log(f"shared history: rows {[i for i, _ in ids]} seen by both replicas, request ids stored")


def check_idempotency(pg, a, b):
    key = "key-" + uuid.uuid4().hex
    before = int(pg.sql("SELECT count(*) FROM avemo_predictions"))
    s1, j1, _ = predict(a.url, CLIPS[2], key=key)
    s2, j2, h2 = predict(b.url, CLIPS[2], key=key)
    if s1 != 200 or s2 != 200 or j1 != j2:
        fail(f"Idempotency-Key retry: {s1} {j1} / {s2} {j2}")
    if h2.get("Idempotent-Replayed") != "true":
        fail("the retry is not marked Idempotent-Replayed")
    s3, j3, _ = predict(a.url, CLIPS[3], key=key)
    if s3 != 422 or j3["error"]["code"] != "idempotency_key_reused":
        fail(f"the key with another upload answered {s3}: {j3}")
    after = int(pg.sql("SELECT count(*) FROM avemo_predictions"))
    if after != before + 1:
        fail(f"Idempotency-Key: {after - before} rows added for one key")
    log("Idempotency-Key: retry through the other replica answered the first answer, one row")


def client(replicas, reference, n, acked, errors, lock, seed):
    for i in range(n):
        clip = CLIPS[(seed + i) % len(CLIPS)]
        key = f"load-{seed}-{i}-{uuid.uuid4().hex[:8]}"
        done = False
        for attempt in range(6):  # the first replica, then the other: a client behind no balancer
            replica = replicas[(seed + i + attempt) % 2]
            try:
                status, j, headers = predict(replica.url, clip, key=key, timeout=60)
            except OSError:
                continue  # refused or reset: the replica died
            if status == 200:
                if not same_answer(reference, j):
                    with lock:
                        errors.append(f"{key}: wrong answer {j}")
                with lock:
                    acked.append((key, j["id"]))
                done = True
                break
            if status != 503:
                with lock:
                    errors.append(f"{key}: HTTP {status} {j}")
                break
            time.sleep(float(headers.get("Retry-After", "1")))
        if not done:
            with lock:
                errors.append(f"{key}: never acknowledged")


def check_kill(pg, a, b, reference):
    acked, errors, lock = [], [], threading.Lock()
    threads = [threading.Thread(target=client, args=([a, b], reference, PER_CLIENT, acked, errors, lock, c))
               for c in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    total = CLIENTS * PER_CLIENT
    for _ in range(600):  # kill A once a third is answered (at most 60 s)
        with lock:
            if len(acked) >= total // 3:
                break
        time.sleep(0.1)
    a.kill9()
    log(f"replica A killed (SIGKILL) after {len(acked)} of {total} answers")
    for t in threads:
        t.join(timeout=240)
        if t.is_alive():
            fail("a client did not finish in 240 s")
    if errors:
        fail(f"{len(errors)} client errors, e.g. {errors[:3]}")
    rows = pg.sql("SELECT idempotency_key || ' ' || id FROM avemo_predictions WHERE idempotency_key LIKE 'load-%'")
    table = {}
    for line in rows.splitlines():
        key, id_ = line.split()
        if key in table:
            fail(f"key {key} is in the table twice")
        table[key] = int(id_)
    for key, id_ in acked:
        if table.get(key) != id_:
            fail(f"acknowledged {key} -> id {id_}, the table has {table.get(key)}")
    if len(table) != len(acked) or len(acked) != total:
        fail(f"{total} predictions, {len(acked)} acknowledged, {len(table)} rows")
    log(f"{total} predictions from {CLIENTS} clients in {time.monotonic() - t0:.1f} s with replica A killed: "
        f"every acknowledged prediction is in the table once, no other row")


def check_readyz_database_down(pg, b):
    """/readyz needs no key: with the database down it says 503 database_unavailable without
    the database's address or libpq's text, which go to the replica's log."""
    pg.stop()
    try:
        status, j, _ = get(b.url + "/readyz")
        text = json.dumps(j)
        if status != 503 or (j or {}).get("error", {}).get("code") != "database_unavailable":
            fail(f"/readyz with the database down: {status} {j}")
        if str(pg.port) in text or "127.0.0.1" in text:
            fail(f"/readyz shows where the database is: {text}")
        if "/readyz: " not in b.stack.log_tail(b.name, 200) or str(pg.port) not in b.stack.log_tail(b.name, 200):
            fail(f"the replica's log does not say why /readyz failed:\n{b.stack.log_tail(b.name)}")
    finally:
        pg.launch()
    log(f"database down: /readyz {status} {text}")


def check_reconnect(pg, b):
    pg.restart()
    statuses = []
    for _ in range(40):  # at most ~40 s
        status, j, headers = predict(b.url, CLIPS[0])
        statuses.append(status)
        if status == 503 and not headers.get("Retry-After"):
            fail("503 without Retry-After")
        if status not in (200, 503):
            fail(f"after the database restart: HTTP {status} {j}")
        if status == 200:
            break
        time.sleep(1)
    if statuses[-1] != 200 or b.proc.poll() is not None:
        fail(f"replica B did not come back after the database restart: {statuses}")
    status, j, _ = get(b.url + "/readyz")
    if status != 200 or j.get("database") != "postgresql":
        fail(f"/readyz after the restart: {status} {j}")
    log(f"database restarted: replica B answered {statuses} (503 + Retry-After until it reconnected)")


def check_locked_table(pg, b):
    holder = subprocess.Popen([os.path.join(pg.bindir, "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "avemo",
                               "-d", "avemo", "-Atq", "-c", "BEGIN; LOCK TABLE avemo_predictions IN ACCESS EXCLUSIVE "
                               "MODE; SELECT pg_sleep(30); COMMIT"], stdout=subprocess.DEVNULL)
    try:
        locked = "SELECT count(*) FROM pg_locks WHERE relation = 'avemo_predictions'::regclass AND granted"
        for _ in range(100):
            if pg.sql(locked) != "0":
                break
            time.sleep(0.1)
        else:
            fail("the test's psql session never locked the table")
        # the client gives up at 20 s: an insert waiting for the 30 s lock fails this
        status, j, headers = predict(b.url, CLIPS[0], timeout=20)
        if status != 503 or not headers.get("Retry-After") or "did not answer in time" not in json.dumps(j):
            fail(f"a prediction while the table is locked: HTTP {status} {j}")
        status, _, _ = get(b.url + "/healthz")
        if status != 200:
            fail(f"/healthz while the table is locked: HTTP {status}")
    finally:
        holder.kill()
        holder.wait()
        pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
               "AND pid <> pg_backend_pid()")
    for _ in range(20):
        status, j, _ = predict(b.url, CLIPS[0])
        if status == 200:
            break
        time.sleep(0.5)
    if status != 200:
        fail(f"after the lock was released: HTTP {status} {j}")
    log("table locked by another session: 503 + Retry-After after lock_timeout, /healthz answered, then 200")


def test(stack, program):
    pg = Postgres(stack).start()
    reference = reference_answers(program)
    a = Replica(stack, program, pg.uri, "replica-a")
    # B's URI has a password (trust authentication ignores it): it must not reach the log
    b = Replica(stack, program, pg.uri.replace("avemo@", "avemo:pw-not-logged@"), "replica-b")
    a.wait_ready()
    b.wait_ready()
    if "pw-not-logged" in stack.log_tail("replica-b", 1000) or "avemo@127.0.0.1" not in stack.log_tail("replica-b"):
        fail(f"replica B's log shows the database password, or not the database:\n{stack.log_tail('replica-b')}")
    version = pg.sql("SELECT max(version) FROM avemo_schema")
    if version != "1":
        fail(f"schema version {version}")
    check_shared_history(a, b, reference)
    check_idempotency(pg, a, b)
    check_kill(pg, a, b, reference)
    check_reconnect(pg, b)
    check_readyz_database_down(pg, b)
    check_reconnect(pg, b)
    check_locked_table(pg, b)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    args = ap.parse_args()
    main(lambda stack: test(stack, os.path.abspath(args.program)), "scale_postgres")
