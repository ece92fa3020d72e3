# SPDX-License-Identifier: MIT
"""sluiced on a real, private redis-server: two sluiced processes on one
Redis admit exactly the limit under concurrent load (every algorithm),
/readyz turns 503 while Redis is down and 200 when it is back, and store
failures follow on_store_error and show in /metrics."""
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Redis, Sluiced, done, eq, metric, test  # noqa: E402

if not shutil.which("redis-server"):
    print("SKIP: redis-server not installed")
    sys.exit(0)

CONFIG = """
timeout_ms: 2000   # exactness is the point here: no fail-open answers on a loaded machine
on_store_error: allow
rules:
  - name: fw
    match: { path: /fw }
    limits: [ { algorithm: fixed_window, limit: 100, window: 1h } ]
  - name: sw
    match: { path: /sw }
    limits: [ { algorithm: sliding_window, limit: 100, window: 1h } ]
  - name: sl
    match: { path: /sl }
    limits: [ { algorithm: sliding_log, limit: 100, window: 1h } ]
  - name: tb
    match: { path: /tb }
    limits: [ { algorithm: token_bucket, limit: 100, window: 1h, burst: 100 } ]
  - name: lb
    match: { path: /lb }
    limits: [ { algorithm: leaky_bucket, limit: 100, window: 1h, burst: 100 } ]
  - name: multi
    match: { path: /multi }
    limits:
      - { algorithm: token_bucket, limit: 1000, window: 1h, burst: 60 }
      - { algorithm: fixed_window, limit: 50, window: 1h }
"""

R = Redis()
A = Sluiced(CONFIG, store=R.url(), workers=2)
B = Sluiced(CONFIG, store=R.url(), workers=2)


def hammer(rule, key, total, limit):
    """total requests split over both daemons and 16 threads; returns allowed count."""
    allowed = [0]
    statuses = []
    lock = threading.Lock()

    def worker(d, n):
        c = d.conn()
        mine = 0
        for _ in range(n):
            st, h, body = d.request("POST", "/v1/check?nodelay",
                                    body={"rule": rule, "key": key}, conn=c)
            j = json.loads(body)
            assert not j.get("store_error"), j
            statuses.append(st)
            if st == 200:
                mine += 1
        c.close()
        with lock:
            allowed[0] += mine

    per = total // 16
    ths = [threading.Thread(target=worker, args=(A if i % 2 else B, per)) for i in range(16)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    eq(len(statuses), per * 16)
    assert set(statuses) <= {200, 429}, set(statuses)
    return allowed[0]


def test_two_daemons_admit_exactly_the_limit():
    for rule, limit in [("fw", 100), ("sw", 100), ("sl", 100), ("tb", 100), ("lb", 100),
                        ("multi", 50)]:
        got = hammer(rule, "shared-" + rule, 400, limit)
        eq(got, limit, "admitted by two sluiced for %s" % rule)
    ma, mb = A.metrics(), B.metrics()
    total_allowed = sum(metric(m, "sluice_decisions_total", rule="fw", result="allowed")
                        for m in (ma, mb))
    total_denied = sum(metric(m, "sluice_decisions_total", rule="fw", result="denied")
                       for m in (ma, mb))
    eq((total_allowed, total_denied), (100, 300), "metrics of both daemons")


def test_readyz_follows_redis():
    eq(A.request("GET", "/readyz")[0], 200)
    R.stop()
    try:
        deadline = time.time() + 5
        while A.request("GET", "/readyz")[0] != 503:
            assert time.time() < deadline, "/readyz stayed 200 with Redis down"
            time.sleep(0.05)
        st, h, body = A.request("GET", "/readyz")
        eq(json.loads(body)["error"], "store_unavailable")
        eq(A.request("GET", "/healthz")[0], 200, "healthz is about the process")
        # on_store_error: allow -> allowed, flagged, counted
        st, h, j = A.check({"rule": "fw", "key": "down"})
        eq((st, j["allowed"], j["store_error"]), (200, True, True))
        m = A.metrics()
        assert metric(m, "sluice_store_errors_total") >= 1
        assert metric(m, "sluice_store_fallbacks_total", mode="allow") >= 1
        assert "event=store_error on_store_error=allow" in A.logtext(), "store failure logged"
    finally:
        R.start()
    deadline = time.time() + 10
    while A.request("GET", "/readyz")[0] != 200:
        assert time.time() < deadline, "/readyz stayed 503 after Redis came back"
        time.sleep(0.1)
    deadline = time.time() + 10
    while True:
        st, h, j = A.check({"rule": "fw", "key": "back"})
        if not j["store_error"]:
            break
        assert time.time() < deadline, "decisions did not reconnect"
        time.sleep(0.1)
    eq(j["remaining"], 99)


try:
    for t in [test_two_daemons_admit_exactly_the_limit, test_readyz_follows_redis]:
        test(t)
finally:
    A.stop()
    B.stop()
    R.cleanup()
done()
