# SPDX-License-Identifier: MIT
"""Operations of the real sluiced: SIGHUP reload (a bad config is refused
and the old one stays; counters survive), SIGTERM drain (in-flight requests
finish, exit 0), /metrics parsed and counting correctly, structured logs
without secrets."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Sluiced, done, eq, metric, test  # noqa: E402

CONFIG_A = """
rules:
  - name: r1
    match: { path: /r1 }
    limits:
      - { algorithm: fixed_window, limit: 3, window: 1h }
"""
CONFIG_B = CONFIG_A + """
  - name: r2
    match: { path: /r2 }
    limits:
      - { algorithm: fixed_window, limit: 7, window: 1h }
"""


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def test_reload():
    d = Sluiced(CONFIG_A, workers=2)
    try:
        eq(d.check({"rule": "r1", "key": "k"})[2]["remaining"], 2)
        eq(d.check({"rule": "r2", "key": "k"})[0], 404)
        d.write_config(CONFIG_B)
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.check({"rule": "r2", "key": "k"})[0] == 200, what="reload")
        # every worker sees the new config, and r1's counter survived the reload
        for _ in range(4):
            eq(d.check({"rule": "r2", "key": "x"})[0], 200)
        st, h, j = d.check({"rule": "r1", "key": "k"})
        eq((st, j["remaining"]), (200, 1), "counter survives reload")
        # a bad config is refused and logged; the running one stays
        d.write_config(CONFIG_B + "\n  - name: broken\n    limits: [ { algorithm: nope } ]\n")
        d.signal(signal.SIGHUP)
        wait_for(lambda: "config_reload_refused" in d.logtext(), what="refusal log")
        eq(d.check({"rule": "r2", "key": "y"})[0], 200, "old config still serves")
        log = d.logtext()
        line = [ln for ln in log.splitlines() if "config_reload_refused" in ln][0]
        assert "sluice.yaml" in line and "level=error" in line, line
        m = d.metrics()
        eq(metric(m, "sluice_config_reloads_total", result="ok"), 1)
        eq(metric(m, "sluice_config_reloads_total", result="refused"), 1)
        d.write_config("rules: [")  # syntax error
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.logtext().count("config_reload_refused") == 2, what="second refusal")
        eq(d.check({"rule": "r1", "key": "z"})[0], 200)
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_drain_on_sigterm():
    cfg = """
rules:
  - name: q
    match: { path: /q }
    limits:
      - { algorithm: leaky_bucket, limit: 2, window: 1s, burst: 10 }
"""
    d = Sluiced(cfg, workers=2)
    try:
        hdr = {"X-API-Key": "drain"}
        for _ in range(2):
            d.authorize("/q", headers=hdr, path="/v1/authorize?nodelay")
        res = {}
        # this one is held ~1 s by shaping: it is in flight when SIGTERM arrives
        th = threading.Thread(target=lambda: res.update(r=d.authorize("/q", headers=hdr)))
        th.start()
        time.sleep(0.2)
        d.signal(signal.SIGTERM)
        th.join(10)
        eq(res["r"][0], 200, "the in-flight request finished")
        eq(d.proc.wait(10), 0, "exit status")
        log = d.logtext()
        assert "event=shutdown" in log and "event=drained abandoned_requests=0" in log, log
        try:
            d.request("GET", "/healthz")
            raise AssertionError("still accepting after drain")
        except OSError:
            pass
    finally:
        d.stop()


def test_metrics_count():
    cfg = """
store: memory://
rules:
  - name: m1
    match: { path: /m1 }
    limits:
      - { algorithm: fixed_window, limit: 4, window: 1h }
  - name: m2
    match: { path: /m2 }
    shadow: true
    limits:
      - { algorithm: fixed_window, limit: 1, window: 1h }
"""
    d = Sluiced(cfg, workers=2)
    try:
        for _ in range(6):
            d.check({"rule": "m1", "key": "a"})
        for _ in range(3):
            d.authorize("/m2", headers={"X-API-Key": "b"})
        d.check({"rule": "nope", "key": "a"})
        d.check({"rule": "m1", "key": ""})
        m = d.metrics()
        eq(metric(m, "sluice_decisions_total", rule="m1", result="allowed"), 4)
        eq(metric(m, "sluice_decisions_total", rule="m1", result="denied"), 2)
        eq(metric(m, "sluice_decisions_total", rule="m2", result="allowed"), 1)
        eq(metric(m, "sluice_decisions_total", rule="m2", result="shadow_denied"), 2)
        eq(metric(m, "sluice_decisions_total", rule="m2", result="denied"), 0)
        eq(metric(m, "sluice_decision_duration_seconds_count"), 9)
        eq(metric(m, "sluice_decision_duration_seconds_bucket", le="+Inf"), 9)
        assert metric(m, "sluice_decision_duration_seconds_sum") > 0
        eq(metric(m, "sluice_keys_held"), 2)
        eq(metric(m, "sluice_http_responses_total", code="429"), 2)
        eq(metric(m, "sluice_http_responses_total", code="404"), 1)
        eq(metric(m, "sluice_http_responses_total", code="400"), 1)
        eq(metric(m, "sluice_store_errors_total"), 0)
        # buckets are cumulative and non-decreasing
        les = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == "sluice_decision_duration_seconds_bucket")
        vals = [v for _, v in les]
        eq(vals, sorted(vals), "cumulative buckets")
        st, h, _ = d.request("GET", "/metrics")
        assert h["content-type"].startswith("text/plain; version=0.0.4"), h["content-type"]
    finally:
        d.stop()


def test_logs_redact_password():
    d = Sluiced(CONFIG_A, workers=1, store="redis://user:s3cret@127.0.0.1:1")
    try:
        log = d.logtext()
        assert "s3cret" not in log, log
        assert "user:***@127.0.0.1" in log, log
        for line in log.splitlines():
            assert line.startswith("ts=") and " level=" in line and " event=" in line, line
    finally:
        d.stop()


try:
    for t in [test_reload, test_drain_on_sigterm, test_metrics_count, test_logs_redact_password]:
        test(t)
finally:
    pass
done()
