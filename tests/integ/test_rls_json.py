# SPDX-License-Identifier: MIT
"""POST /json (envoyproxy/ratelimit's JSON ShouldRateLimit) against a real
sluiced, on memory:// and on a private redis-server: upstream's reply shape
and status codes, descriptor semantics over HTTP, exact counts admitted by
two sluiced on one Redis, store keys disjoint from rule keys, descriptor
counters in /metrics, SIGHUP reloading the descriptor files with the config
(a bad descriptor file keeps the old set), and bad input (malformed JSON,
wrong types, oversized bodies, too many descriptors) answered with a 4xx
while the daemon keeps serving."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Redis, Sluiced, done, eq, metric, test  # noqa: E402

SRC = os.path.abspath(os.environ.get("SLUICE_SRC", os.path.join(os.path.dirname(__file__), "../..")))
UPSTREAM = os.path.join(SRC, "tests/rls/upstream")
HAVE_REDIS = shutil.which("redis-server") and shutil.which("redis-cli")

DESC_DIR = tempfile.mkdtemp(prefix="sluice-rls-")
# year windows: a window boundary cannot fall inside the test
OWN = """domain: itest
descriptors:
  - key: user
    rate_limit: { unit: year, requests_per_unit: %d }
  - key: shadowed
    shadow_mode: true
    rate_limit: { unit: year, requests_per_unit: 1 }
"""


def write_own(limit):
    tmp = os.path.join(DESC_DIR, "own.yaml.tmp")
    with open(tmp, "w") as f:
        f.write(OWN % limit)
    os.replace(tmp, os.path.join(DESC_DIR, "own.yaml"))


write_own(5)
CONFIG = """
timeout_ms: 2000
descriptors_config:
  - %s/*.yaml
  - %s/test-config/basic_config.yaml
  - %s/readme/example7.yaml
rules:
  - name: user
    match: { path: /x }
    limits: [ { algorithm: fixed_window, limit: 1, window: 1h } ]
""" % (DESC_DIR, UPSTREAM, UPSTREAM)


def rls(d, domain, *descs, hits=None, raw=None):
    body = raw if raw is not None else {"domain": domain, "descriptors": [
        {"entries": [{"key": k, "value": v} for k, v in e]} if isinstance(e, list) else e
        for e in descs]}
    if hits is not None and raw is None:
        body["hitsAddend"] = hits
    st, h, data = d.request("POST", "/json", body=body if raw is None else raw,
                            headers={"Content-Type": "application/json"})
    return st, h, json.loads(data) if data else None


def semantics(d, tag):
    """Upstream's reply for a fresh store, key by key (tag keeps stores apart)."""
    # 5 per year on user=<tag>: 5 OK with remaining 4..0, then OVER_LIMIT
    for i in range(5):
        st, h, j = rls(d, "itest", [("user", tag)])
        eq(st, 200, "status")
        eq(j["overallCode"], "OK")
        s = j["statuses"][0]
        eq(s["currentLimit"], {"requestsPerUnit": 5, "unit": "YEAR"})
        eq(s.get("limitRemaining", 0), 4 - i, "limitRemaining")
        assert s["durationUntilReset"].endswith("s"), s
        eq(h.get("x-ratelimit-limit"), "5")
        eq(h.get("x-ratelimit-remaining"), str(4 - i))
    st, h, j = rls(d, "itest", [("user", tag)])
    eq((st, j["overallCode"], j["statuses"][0]["code"]), (429, "OVER_LIMIT", "OVER_LIMIT"))
    assert "limitRemaining" not in j["statuses"][0], j  # 0 is omitted, as protojson
    assert "retry-after" in h, h
    assert {"key": "X-RateLimit-Remaining", "value": "0"} in j["responseHeadersToAdd"], j
    # shadow_mode: counted, never over
    for _ in range(3):
        st, _, j = rls(d, "itest", [("shadowed", tag)])
        eq((st, j["statuses"][0]["code"]), (200, "OK"))
    # hitsAddend > 1, check-only (descriptor hitsAddend 0, as a uint64 string)
    st, _, j = rls(d, "test-domain", [("key2", tag)], hits=7)
    eq(j["statuses"][0]["limitRemaining"], 13)
    st, _, j = rls(d, "test-domain", {"entries": [{"key": "key2", "value": tag}],
                                      "hitsAddend": "0"})
    eq(j["statuses"][0]["limitRemaining"], 13, "check only")
    # several descriptors, one over: 429, the others still reported
    st, _, j = rls(d, "test-domain", [("key2", tag)], [("key4", tag)], [("key6", tag)])
    eq(st, 200)
    st, _, j = rls(d, "test-domain", [("key2", tag)], [("key4", tag)], [("key6", tag)])
    eq(st, 429)
    eq([s["code"] for s in j["statuses"]], ["OK", "OVER_LIMIT", "OK"])
    eq(j["statuses"][0]["limitRemaining"], 11)
    eq(j["statuses"][1]["currentLimit"]["name"], "key4_rate_limit")
    eq(j["statuses"][2], {"code": "OK", "limitRemaining": 4294967295}, "unlimited")
    # replaces (README example 7)
    st, _, j = rls(d, "example7", [("key_1", "value_1"), ("user", "bkthomps")],
                   [("key_2", "value_2"), ("user", "bkthomps")])
    eq(j["statuses"][0], {"code": "OK"}, "replaced")
    eq(j["statuses"][1]["currentLimit"]["requestsPerUnit"], 10)
    # limit override (lowerCamel and original names both read)
    for i in range(3):
        st, _, j = rls(d, "test-domain", {"entries": [{"key": "key3", "value": tag}],
                                          "limit": {"requests_per_unit": 2, "unit": "MINUTE"}})
        eq(st, 200 if i < 2 else 429, "override")
        eq(j["statuses"][0]["currentLimit"], {"requestsPerUnit": 2, "unit": "MINUTE"})
    # an unknown domain is not an error: OK without limits
    st, _, j = rls(d, "nope", [("user", tag)])
    eq((st, j), (200, {"overallCode": "OK", "statuses": [{"code": "OK"}]}))


def bad_input(d):
    cases = [
        (b"{bad", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"[1]", 400, "bad_type"),
        (b'{"domain": 5, "descriptors": []}', 400, "bad_type"),
        (b'{"domain": "d", "descriptors": {}}', 400, "bad_type"),
        (b'{"domain": "", "descriptors": [{"entries": [{"key": "a"}]}]}', 400, "bad_request"),
        (b'{"domain": "d", "descriptors": []}', 400, "bad_request"),
        (b'{"domain": "d", "descriptors": [{"entries": []}]}', 400, "bad_request"),
        (b'{"domain": "d", "descriptors": [{"entries": [{"key": 1}]}]}', 400, "bad_type"),
        (b'{"domain": "d", "descriptors": [{"entries": [{"key": "a", "value": 2}]}]}', 400,
         "bad_type"),
        (b'{"domain": "d", "descriptors": [{"entries": [{"key": "a"}]}], "hitsAddend": -1}',
         400, "bad_request"),
        (b'{"domain": "d", "descriptors": [{"entries": [{"key": "a"}]}], "extra": 1}', 400,
         "bad_request"),
        (b'{"domain": "d", "descriptors": [{"entries": [{"key": "a"}], '
         b'"limit": {"requestsPerUnit": 1, "unit": "FORTNIGHT"}}]}', 400, "bad_request"),
        (json.dumps({"domain": "d", "descriptors": [{"entries": [{"key": "a"}]}] * 65}).encode(),
         400, "bad_request"),
        (json.dumps({"domain": "d", "descriptors": [{"entries": [{"key": "a"}] * 33}]}).encode(),
         400, "bad_request"),
        (json.dumps({"domain": "d", "descriptors": [{"entries": [{"key": "a", "value":
                     "v" * 5000}]}]}).encode(), 400, "bad_request"),
    ]
    for body, want_st, want_code in cases:
        st, _, data = d.request("POST", "/json", body=body)
        j = json.loads(data)
        eq((st, j.get("error")), (want_st, want_code), "body %r" % body[:60])
    st, _, _ = d.request("POST", "/json", body=b'{"domain":"' + b"x" * 70000 + b'"}')
    eq(st, 413, "oversized")
    st, h, _ = d.request("GET", "/json")
    eq((st, h.get("allow")), (405, "POST"))
    # still serving everyone
    st, _, j = rls(d, "test-domain", [("key1", "value1"), ("subkey1", "x")])
    eq((st, j["statuses"][0]["currentLimit"]["requestsPerUnit"]), (200, 5))


def test_memory():
    d = Sluiced(CONFIG, workers=2)
    try:
        semantics(d, "mem")
        bad_input(d)
        m = d.metrics()
        eq(metric(m, "sluice_rls_hits_total", domain="itest", descriptor="user",
                  result="total_hits"), 6)
        eq(metric(m, "sluice_rls_hits_total", domain="itest", descriptor="user",
                  result="over_limit"), 1)
        eq(metric(m, "sluice_rls_hits_total", domain="itest", descriptor="shadowed",
                  result="shadow_mode"), 2)
        eq(metric(m, "sluice_rls_domain_not_found_total"), 1)
    finally:
        d.stop()
    eq(d.proc.returncode, 0, "sluiced drained and exited 0 (no leak report under ASan)")


def test_reload():
    write_own(5)
    d = Sluiced(CONFIG, workers=2)
    try:
        st, _, j = rls(d, "itest", [("user", "r")])
        eq(j["statuses"][0]["currentLimit"]["requestsPerUnit"], 5)
        write_own(7)
        d.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            st, _, j = rls(d, "itest", [("user", "r")])
            if j["statuses"][0]["currentLimit"]["requestsPerUnit"] == 7:
                break
            time.sleep(0.05)
        eq(j["statuses"][0]["currentLimit"]["requestsPerUnit"], 7, "reloaded limit")
        # the counter survived: 2 charged so far at most (one per poll above) -> remaining < 7
        assert j["statuses"][0]["limitRemaining"] < 6, j
        # a bad descriptor file: refused, the old set stays
        with open(os.path.join(DESC_DIR, "broken.yaml"), "w") as f:
            f.write("domain: broken\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight}\n")
        d.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "broken.yaml:4" not in d.logtext():
            time.sleep(0.05)
        assert "broken.yaml:4" in d.logtext(), d.logtext()
        st, _, j = rls(d, "itest", [("user", "r")])
        eq(j["statuses"][0]["currentLimit"]["requestsPerUnit"], 7, "old set kept")
        eq(metric(d.metrics(), "sluice_config_reloads_total", result="refused"), 1)
    finally:
        os.unlink(os.path.join(DESC_DIR, "broken.yaml"))
        write_own(5)
        d.stop()
    eq(d.proc.returncode, 0, "sluiced exited 0 after the reloads")


def test_redis():
    if not HAVE_REDIS:
        print("SKIP: redis-server not installed")
        return
    r = Redis()
    a = b = None
    try:
        a = Sluiced(CONFIG, store=r.url(), workers=2)
        b = Sluiced(CONFIG, store=r.url(), workers=2)
        semantics(a, "redis")
        # 16 threads over two sluiced on one Redis: exactly the limit admitted
        write_own(5)  # the file holds 5 per year for "user"; 400 requests, 5 admitted
        allowed, statuses, lock = [0], [], threading.Lock()

        def worker(d, n):
            c = d.conn()
            mine = 0
            for _ in range(n):
                body = json.dumps({"domain": "itest", "descriptors": [
                    {"entries": [{"key": "user", "value": "shared"}]}]})
                c.request("POST", "/json", body=body)
                resp = c.getresponse()
                resp.read()
                with lock:
                    statuses.append(resp.status)
                if resp.status == 200:
                    mine += 1
            c.close()
            with lock:
                allowed[0] += mine

        ths = [threading.Thread(target=worker, args=(a if i % 2 else b, 25)) for i in range(16)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        eq(len(statuses), 400)
        assert set(statuses) <= {200, 429}, set(statuses)
        eq(allowed[0], 5, "admitted by two sluiced")
        # envoy semantics: every hit counted in Redis, refused ones too
        keys = subprocess.run(["redis-cli", "-p", str(r.port), "--scan", "--pattern",
                               "sluice:{rls/*"], capture_output=True, text=True).stdout.split()
        shared = [k for k in keys if "user6:shared" in k]
        eq(len(shared), 1, "one key for user=shared: %r" % keys)
        eq(shared[0], "sluice:{rls/6/5:itest/4:user6:shared}:0")
        # a rule named like the descriptor key has its own key
        st, _, _ = a.check({"rule": "user", "key": "shared"})
        eq(st, 200, "the rule 'user' is not touched by the descriptor user=shared")
        # on_store_error: Redis gone, allow decides OK (fail open, as Envoy expects)
        r.stop()
        st, _, j = rls(a, "itest", [("user", "after-outage")])
        eq((st, j["overallCode"]), (200, "OK"), "fail open")
    finally:
        for d in (a, b):
            if d:
                d.stop()
        r.cleanup()


def test_exact_and_deny_on_redis():
    """descriptors_semantics: exact on Redis: a refused request charges no
    descriptor; on_store_error: deny answers OVER_LIMIT while Redis is down."""
    if not HAVE_REDIS:
        print("SKIP: redis-server not installed")
        return
    r = Redis()
    d = None
    try:
        cfg = CONFIG.replace("timeout_ms: 2000", "timeout_ms: 2000\ndescriptors_semantics: exact"
                             "\non_store_error: deny")
        d = Sluiced(cfg, store=r.url(), workers=2)
        both = ([("key2", "ex")], [("key3", "ex")])  # 20/min and 1/hour
        st, _, j = rls(d, "test-domain", *both)
        eq((st, [s.get("limitRemaining", 0) for s in j["statuses"]]), (200, [19, 0]))
        for _ in range(3):  # refused by key3: key2 is not charged
            st, _, j = rls(d, "test-domain", *both)
            eq((st, j["statuses"][1]["code"]), (429, "OVER_LIMIT"))
            eq(j["statuses"][0].get("limitRemaining"), 19, "exact: nothing consumed")
        st, _, j = rls(d, "test-domain", [("key2", "ex")])
        eq((st, j["statuses"][0]["limitRemaining"]), (200, 18))
        m = d.metrics()
        eq(metric(m, "sluice_rls_refused_uncharged_total"), 3)
        # concurrent requests under exact: still exactly the limit admitted (5 per year)
        admitted, lock = [0], threading.Lock()

        def worker():
            c = d.conn()
            mine = 0
            for _ in range(25):
                c.request("POST", "/json", body=json.dumps({"domain": "itest", "descriptors": [
                    {"entries": [{"key": "user", "value": "exact-shared"}]}]}))
                resp = c.getresponse()
                resp.read()
                mine += resp.status == 200
            c.close()
            with lock:
                admitted[0] += mine

        ths = [threading.Thread(target=worker) for _ in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        eq(admitted[0], 5, "exact under concurrency")
        r.stop()
        st, _, j = rls(d, "test-domain", [("key2", "ex")])
        eq((st, j["overallCode"]), (429, "OVER_LIMIT"), "on_store_error: deny")
        assert metric(d.metrics(), "sluice_store_errors_total") >= 1
    finally:
        if d:
            d.stop()
        r.cleanup()


test(test_memory)
test(test_reload)
test(test_redis)
test(test_exact_and_deny_on_redis)
shutil.rmtree(DESC_DIR, ignore_errors=True)
done()
