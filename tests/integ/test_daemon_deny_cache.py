# SPDX-License-Identifier: MIT
"""sluiced's deny cache on a real, private redis-server: two sluiced, one
with the default deny_cache=on and one with deny_cache=off, are flooded on
one hot key each.  Both admit exactly the limit and answer the same
statuses; the one with the cache ran a handful of EVALSHA (INFO
commandstats) where the other ran one per request, and its /metrics count
the local answers (sluice_deny_cache_hits_total) and the entries held."""
import json
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Redis, Sluiced, done, eq, metric, test  # noqa: E402

if not shutil.which("redis-server"):
    print("SKIP: redis-server not installed")
    sys.exit(0)

CONFIG = """
timeout_ms: 2000
on_store_error: deny
rules:
  - name: hot
    match: { path: /hot }
    limits: [ { algorithm: token_bucket, limit: 10, window: 1h } ]
  - name: multi
    match: { path: /multi }
    limits:
      - { algorithm: token_bucket, limit: 5, window: 1h, burst: 5 }
      - { algorithm: fixed_window, limit: 1000, window: 1h }
"""

R = Redis()
ON = Sluiced(CONFIG, store=R.url(), workers=2)
OFF = Sluiced(CONFIG, store=R.url() + "?deny_cache=off", workers=2)


def evalsha_calls():
    out = subprocess.run(["redis-cli", "-p", str(R.port), "INFO", "commandstats"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def flood(d, rule, key, total):
    """total /v1/check requests from 8 threads; returns (allowed, denied)."""
    counts = {200: 0, 429: 0}
    lock = threading.Lock()

    def worker(n):
        c = d.conn()
        mine = {200: 0, 429: 0}
        for _ in range(n):
            st, h, body = d.request("POST", "/v1/check?nodelay",
                                    body={"rule": rule, "key": key}, conn=c)
            j = json.loads(body)
            assert not j.get("store_error"), j
            mine[st] += 1
        c.close()
        with lock:
            for k in mine:
                counts[k] += mine[k]

    ths = [threading.Thread(target=worker, args=(total // 8,)) for _ in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return counts[200], counts[429]


def test_hot_key_answered_locally():
    redis_decisions = 0
    for rule, limit in [("hot", 10), ("multi", 5)]:
        subprocess.run(["redis-cli", "-p", str(R.port), "CONFIG", "RESETSTAT"],
                       capture_output=True, check=True)
        got_on = flood(ON, rule, "k-on", 400)
        calls_on = evalsha_calls()
        subprocess.run(["redis-cli", "-p", str(R.port), "CONFIG", "RESETSTAT"],
                       capture_output=True, check=True)
        got_off = flood(OFF, rule, "k-off", 400)
        calls_off = evalsha_calls()
        eq(got_on, (limit, 400 - limit), "cache on, %s: admitted exactly the limit" % rule)
        eq(got_off, (limit, 400 - limit), "cache off, %s" % rule)
        eq(calls_off, 400, "cache off: one EVALSHA per decision")
        assert calls_on * 5 <= calls_off, "cache on: %d EVALSHA for 400 decisions" % calls_on
        redis_decisions += calls_on
        print("  %s: EVALSHA %d with the cache, %d without" % (rule, calls_on, calls_off))
    m_on, m_off = ON.metrics(), OFF.metrics()
    # every decision was either one EVALSHA or one local answer
    eq(metric(m_on, "sluice_deny_cache_hits_total"), 800.0 - redis_decisions, "hits")
    assert metric(m_on, "sluice_deny_cache_entries") >= 1
    eq(metric(m_off, "sluice_deny_cache_hits_total"), 0.0, "no cache, no hits")
    eq(metric(m_off, "sluice_deny_cache_entries"), 0.0)


try:
    test(test_hot_key_answered_locally)
finally:
    ON.stop()
    OFF.stop()
    R.cleanup()
done()
