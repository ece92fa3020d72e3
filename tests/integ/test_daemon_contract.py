# SPDX-License-Identifier: MIT
"""sluiced's HTTP contract against the real binary (SPEC section 5,
docs/http-api.md): status codes, JSON fields, every rate-limit header,
attribute matching, identity and trusted proxies, tiers, multi-limit and
shadow rules, deny_status, header modes, and leaky-bucket shaping."""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Sluiced, done, eq, test  # noqa: E402

CONFIG = """
workers: 2
headers: both
trusted_proxies: [127.0.0.1/32]
identify: [header:X-API-Key, header:X-User-Id, ip]
tier_header: X-User-Tier
rules:
  - name: login
    match: { method: POST, path: /api/auth/login }
    key: ip
    limits:
      - { algorithm: fixed_window, limit: 3, window: 1m }
  - name: multi
    match: { path: /api/multi }
    limits:
      - { algorithm: token_bucket, limit: 10, window: 1s, burst: 5 }
      - { algorithm: fixed_window, limit: 3, window: 1h }
  - name: shadowed
    match: { path: /api/shadow }
    shadow: true
    limits:
      - { algorithm: fixed_window, limit: 1, window: 1h }
  - name: shaped
    match: { path: /api/shaped }
    limits:
      - { algorithm: leaky_bucket, limit: 5, window: 1s, burst: 10 }
  - name: slowshaped
    match: { path: /api/slowshaped }
    limits:
      - { algorithm: leaky_bucket, limit: 2, window: 1s, burst: 10 }
  - name: unshaped
    match: { path: /api/unshaped }
    shape: false
    limits:
      - { algorithm: leaky_bucket, limit: 2, window: 1s, burst: 10 }
  - name: byuser
    match: { path: /api/user/* }
    key: header:X-User-Id
    limits:
      - { algorithm: fixed_window, limit: 2, window: 1h }
  - name: default
    match: { path: /api/* }
    tiers:
      free:    [ { algorithm: fixed_window, limit: 2, window: 1h } ]
      premium: [ { algorithm: fixed_window, limit: 5, window: 1h } ]
"""

D = Sluiced(CONFIG, workers=3)
DECISION_FIELDS = {"allowed", "limit", "remaining", "reset_after_ms", "retry_after_ms",
                   "delay_ms", "rule", "key", "limits"}


def ceil_s(ms):
    return (ms + 999) // 1000


def test_explicit_check_fields_and_headers():
    for i in range(3):
        st, h, j = D.check({"rule": "login", "key": "ip:192.0.2.1"})
        eq(st, 200, "status")
        assert DECISION_FIELDS <= set(j), j
        eq(j["allowed"], True)
        eq(j["limit"], 3)
        eq(j["remaining"], 2 - i, "remaining")
        eq(j["rule"], "login")
        eq(j["key"], "ip:192.0.2.1")
        eq(j["retry_after_ms"], 0)
        eq(j["delay_ms"], 0)
        assert 0 < j["reset_after_ms"] <= 60000
        eq(h["x-ratelimit-limit"], "3")
        eq(h["x-ratelimit-remaining"], str(2 - i))
        now = time.time()
        reset = int(h["x-ratelimit-reset"])
        assert now - 1 <= reset <= now + 61, (reset, now)
        eq(h["ratelimit-policy"], '"login";q=3;w=60')
        eq(h["ratelimit"], '"login";r=%d;t=%d' % (2 - i, ceil_s(j["reset_after_ms"])))
        assert "retry-after" not in h
        eq(h["content-type"], "application/json")
        eq(len(j["limits"]), 1)
        eq(j["limits"][0]["algorithm"], "fixed_window")
    st, h, j = D.check({"rule": "login", "key": "ip:192.0.2.1"})
    eq(st, 429, "denied status")
    eq(j["allowed"], False)
    eq(j["remaining"], 0)
    assert 0 < j["retry_after_ms"] <= 60000
    eq(h["retry-after"], str(ceil_s(j["retry_after_ms"])))
    eq(h["x-ratelimit-remaining"], "0")
    eq(h["ratelimit"], '"login";r=0;t=%d' % ceil_s(j["reset_after_ms"]))
    # cost 0 peeks: nothing consumed, says whether a unit request would pass
    st, h, j = D.check({"rule": "login", "key": "ip:192.0.2.2", "cost": 0})
    eq((st, j["remaining"]), (200, 3))
    st, h, j = D.check({"rule": "login", "key": "ip:192.0.2.2", "cost": 3})
    eq((st, j["remaining"]), (200, 0))
    st, h, j = D.check({"rule": "login", "key": "ip:192.0.2.3", "cost": 4})
    eq((st, j["retry_after_ms"]), (429, -1), "cost above capacity never passes")
    assert "retry-after" not in h


def test_matched_check_attributes():
    st, h, j = D.check({"method": "POST", "path": "/api/auth/login", "ip": "198.51.100.7"})
    eq((st, j["rule"], j["key"]), (200, "login", "ip:198.51.100.7"))
    # the method is part of the match: GET falls through to the default rule
    st, h, j = D.check({"method": "GET", "path": "/api/auth/login", "ip": "198.51.100.7"})
    eq((j["rule"], j["tier"], j["limit"]), ("default", "free", 2))
    # identify: X-API-Key beats the address
    st, h, j = D.check({"method": "GET", "path": "/api/x", "ip": "198.51.100.7",
                        "headers": {"x-api-key": "k1"}})
    eq(j["key"], "api_key:k1")
    st, h, j = D.check({"method": "GET", "path": "/api/x", "ip": "198.51.100.7",
                        "headers": {"X-User-Id": "u1"}})
    eq(j["key"], "user:u1")
    # no rule matches: allowed, nothing limits it
    st, h, j = D.check({"method": "GET", "path": "/elsewhere", "ip": "198.51.100.7"})
    eq((st, j["allowed"], j["rule"]), (200, True, None))
    assert "x-ratelimit-limit" not in h


def test_tiers():
    st, h, j = D.check({"method": "GET", "path": "/api/t", "ip": "203.0.113.1",
                        "headers": {"X-User-Tier": "premium"}})
    eq((j["tier"], j["limit"]), ("premium", 5))
    st, h, j = D.check({"method": "GET", "path": "/api/t", "ip": "203.0.113.2",
                        "tier": "premium"})
    eq((j["tier"], j["limit"]), ("premium", 5), "tier field")
    st, h, j = D.check({"method": "GET", "path": "/api/t", "ip": "203.0.113.3",
                        "headers": {"X-User-Tier": "gold"}})
    eq((j["tier"], j["limit"]), ("free", 2), "unknown tier falls back to free")
    st, h, j = D.check({"method": "GET", "path": "/api/t", "ip": "203.0.113.4"})
    eq((j["tier"], j["limit"]), ("free", 2), "no tier header: free")
    # authorize reads the tier header of the original request
    st, h, _ = D.authorize("/api/t", headers={"X-User-Tier": "premium", "X-API-Key": "tier-a"})
    eq((st, h["x-ratelimit-limit"]), (200, "5"))


def test_tier_change_never_resets():
    # issue 11: free 2/h and premium 5/h alternated (and an unknown tier,
    # which is free) must admit at most 2 + 5 in the hour, never 2, 5, 2, ...
    allowed = {"free": 0, "premium": 0, "gold": 0}
    for i in range(24):
        tier = ("free", "premium", "gold")[i % 3]
        st, h, j = D.check({"method": "GET", "path": "/api/t", "ip": "203.0.113.50",
                            "headers": {"X-User-Tier": tier}})
        allowed[tier] += j["allowed"]
    eq((allowed["free"] + allowed["gold"], allowed["premium"]), (2, 5), "per-tier totals")


def test_path_spellings_share_the_rule():
    # issue 11: nginx decodes %XX, merges slashes and resolves dot segments
    # before routing; a client spelling the login path otherwise must still
    # meet the login rule (3/min), not the looser /api/* rule
    spellings = ["/api/auth/login", "//api/auth/login/", "/api/./auth/%6cogin",
                 "/api/x/../auth/login?next=/", "/api%2fauth//login", "/api/auth/login/."]
    got = []
    for uri in spellings:
        st, h, _ = D.authorize(uri, "POST", {"X-Forwarded-For": "192.0.2.77"})
        got.append(st)
    eq(got, [200, 200, 200, 429, 429, 429], "statuses by spelling")
    st, h, j = D.check({"method": "POST", "path": "/api/auth//login/", "ip": "192.0.2.77"})
    eq((st, j["rule"]), (429, "login"), "/v1/check canonicalizes too")
    st, h, j = D.check({"method": "POST", "path": "/" + "a" * 20000, "ip": "192.0.2.77"})
    eq(st, 400, "a path over the bound is refused")


def test_multi_limit():
    seen = []
    for i in range(4):
        st, h, j = D.check({"rule": "multi", "key": "k"})
        seen.append(st)
        eq(h["ratelimit-policy"], '"multi-0";q=5;w=1, "multi-1";q=3;w=3600')
        eq(len(j["limits"]), 2)
    eq(seen, [200, 200, 200, 429])
    # denied by the hourly limit: top-level fields and RateLimit come from it
    eq(j["limit"], 3)
    assert h["ratelimit"].startswith('"multi-1";r=0;'), h["ratelimit"]
    eq(j["limits"][1]["allowed"], False)
    eq(j["limits"][0]["allowed"], True)
    # while allowed, the limit with the least remaining decides
    st, h, j = D.check({"rule": "multi", "key": "k2"})
    eq((j["limit"], j["remaining"]), (3, 2))
    assert h["ratelimit"].startswith('"multi-1";r=2;'), h["ratelimit"]


def test_shadow_rule():
    st, h, j = D.check({"rule": "shadowed", "key": "s"})
    eq((st, j["allowed"], j["shadow_denied"]), (200, True, False))
    st, h, j = D.check({"rule": "shadowed", "key": "s"})
    eq((st, j["allowed"], j["shadow_denied"]), (200, True, True), "shadow never denies")
    assert "retry-after" not in h
    st, h, _ = D.authorize("/api/shadow", headers={"X-API-Key": "sh"})
    st, h, _ = D.authorize("/api/shadow", headers={"X-API-Key": "sh"})
    eq(st, 200, "shadow authorize")
    assert "retry-after" not in h


def test_authorize_sources_and_denial():
    hdr = {"X-API-Key": "auth-1"}
    for i in range(2):
        st, h, body = D.authorize("/api/a?x=1", headers=hdr)
        eq(st, 200)
        eq(body, b"")
        eq(h["x-ratelimit-remaining"], str(1 - i))
    st, h, body = D.authorize("/api/a", headers=hdr)
    eq(st, 429, "deny_status default")
    p = json.loads(body)
    eq(h["content-type"], "application/problem+json")
    eq(p["type"], "https://iana.org/assignments/http-problem-types#quota-exceeded")
    eq(p["violated-policies"], ["default"])
    assert int(h["retry-after"]) >= 1
    eq(h["x-ratelimit-remaining"], "0")
    # Traefik ForwardAuth headers
    st, h, _ = D.request("GET", "/v1/authorize",
                         headers={"X-Forwarded-Uri": "/api/auth/login",
                                  "X-Forwarded-Method": "POST", "X-API-Key": "tr"})
    eq((st, h["ratelimit-policy"]), (200, '"login";q=3;w=60'))
    # Envoy ext_authz: path_prefix /v1/authorize + original path, original method
    st, h, _ = D.request("POST", "/v1/authorize/api/auth/login", body="")
    eq((st, h["ratelimit-policy"]), (200, '"login";q=3;w=60'))
    # nothing says what the original request was
    st, h, body = D.request("GET", "/v1/authorize")
    eq(st, 400)
    eq(json.loads(body)["error"], "missing_original_uri")
    # no rule matches: allowed without headers
    st, h, _ = D.authorize("/public")
    eq(st, 200)
    assert "ratelimit" not in h


def test_trusted_forwarded_for():
    # the peer 127.0.0.1 is trusted: X-Forwarded-For names the client
    for i in range(3):
        st, h, _ = D.authorize("/api/auth/login", "POST", {"X-Forwarded-For": "192.0.2.50"})
        eq(st, 200)
    st, h, _ = D.authorize("/api/auth/login", "POST", {"X-Forwarded-For": "192.0.2.50"})
    eq(st, 429, "same forwarded client exhausted")
    # the rightmost untrusted hop counts; a spoofed left entry does not
    st, h, _ = D.authorize("/api/auth/login", "POST",
                           {"X-Forwarded-For": "192.0.2.50, 192.0.2.51"})
    eq((st, h["x-ratelimit-remaining"]), (200, "2"))
    st, h, j = D.check({"method": "POST", "path": "/api/auth/login", "ip": "192.0.2.50",
                        "cost": 0})
    eq(j["remaining"], 0, "authorize counted the forwarded address")

    other = Sluiced(CONFIG.replace("[127.0.0.1/32]", "[10.0.0.0/8]"), workers=1)
    try:
        for i in range(3):
            st, h, _ = other.authorize("/api/auth/login", "POST",
                                       {"X-Forwarded-For": "192.0.2.%d" % (60 + i)})
            eq(st, 200)
        st, h, _ = other.authorize("/api/auth/login", "POST", {"X-Forwarded-For": "192.0.2.99"})
        eq(st, 429, "untrusted peer: X-Forwarded-For ignored, the peer address is the key")
    finally:
        other.stop()


def test_byuser_key_and_missing_identity():
    st, h, j = D.check({"method": "GET", "path": "/api/user/1", "headers": {"X-User-Id": "7"}})
    eq((st, j["rule"], j["key"]), (200, "byuser", "user:7"))
    st, h, j = D.check({"method": "GET", "path": "/api/user/1", "ip": "192.0.2.9"})
    eq(st, 400, "rule keyed by a header that is absent")
    eq(j["error"], "bad_key")


def test_deny_status_and_header_modes():
    cfg403 = CONFIG.replace("headers: both", "headers: legacy\ndeny_status: 403")
    a = Sluiced(cfg403, workers=1)
    try:
        for i in range(2):
            st, h, _ = a.authorize("/api/z", headers={"X-API-Key": "d"})
        st, h, body = a.authorize("/api/z", headers={"X-API-Key": "d"})
        eq(st, 403, "deny_status")
        eq(json.loads(body)["status"], 403)
        assert "x-ratelimit-limit" in h and "ratelimit" not in h and "ratelimit-policy" not in h
        assert "retry-after" in h
    finally:
        a.stop()
    b = Sluiced(CONFIG.replace("headers: both", "headers: ietf"), workers=1)
    try:
        st, h, j = b.check({"rule": "login", "key": "x"})
        assert "ratelimit" in h and "ratelimit-policy" in h and "x-ratelimit-limit" not in h, h
    finally:
        b.stop()
    c = Sluiced(CONFIG.replace("headers: both", "headers: none"), workers=1)
    try:
        st, h, j = c.check({"rule": "login", "key": "x"})
        assert not any(k.startswith("x-ratelimit") or k.startswith("ratelimit") for k in h), h
        eq(j["remaining"], 2, "the body still carries the decision")
    finally:
        c.stop()


def test_leaky_bucket_shaping():
    # /v1/check reports delay_ms and does not wait
    t0 = time.time()
    delays = [D.check({"rule": "shaped", "key": "chk"})[2]["delay_ms"] for _ in range(3)]
    elapsed = time.time() - t0
    eq(delays[0], 0)
    assert 0 < delays[1] <= 200 and delays[1] < delays[2] <= 400, delays
    assert elapsed < delays[2] / 1000.0, (elapsed, delays)
    # /v1/authorize holds the 200 for delay_ms (the second request waits ~500 ms)
    hdr = {"X-API-Key": "shape-1"}
    D.authorize("/api/slowshaped", headers=hdr)
    t0 = time.time()
    st, h, _ = D.authorize("/api/slowshaped", headers=hdr)
    waited = time.time() - t0
    eq(st, 200)
    assert waited >= 0.4, "authorize did not hold the reply: %.3f s" % waited
    # ?nodelay and shape: false answer at once
    hdr = {"X-API-Key": "shape-2"}
    D.authorize("/api/slowshaped", headers=hdr, path="/v1/authorize?nodelay")
    t0 = time.time()
    D.authorize("/api/slowshaped", headers=hdr, path="/v1/authorize?nodelay")
    assert time.time() - t0 < 0.3, "nodelay waited"
    hdr = {"X-API-Key": "shape-3"}
    D.authorize("/api/unshaped", headers=hdr)
    t0 = time.time()
    D.authorize("/api/unshaped", headers=hdr)
    assert time.time() - t0 < 0.3, "shape: false waited"
    # a held reply does not block the worker: other requests are answered meanwhile
    import threading
    hdr = {"X-API-Key": "shape-4"}
    for _ in range(5):
        D.authorize("/api/shaped", headers=hdr, path="/v1/authorize?nodelay")
    res = {}
    th = threading.Thread(target=lambda: res.update(r=D.authorize("/api/shaped", headers=hdr)))
    t0 = time.time()
    th.start()
    time.sleep(0.05)
    for _ in range(20):
        eq(D.request("GET", "/healthz")[0], 200)
    fast = time.time() - t0
    th.join()
    slow = time.time() - t0
    assert slow >= 0.8, "5 queued requests ahead: about 1 s of delay, got %.3f" % slow
    assert fast < slow, (fast, slow)


def test_keepalive_and_endpoints():
    c = D.conn()
    for _ in range(5):
        st, h, _ = D.request("GET", "/healthz", conn=c)
        eq(st, 200)
    c.close()
    st, h, body = D.request("GET", "/v1/check")
    eq((st, h.get("allow")), (405, "POST"))
    eq(json.loads(body)["error"], "method_not_allowed")
    st, h, body = D.request("GET", "/nope")
    eq(st, 404)
    eq(json.loads(body)["error"], "not_found")
    st, h, body = D.request("GET", "/readyz")
    eq((st, json.loads(body)["status"]), (200, "ready"))
    assert "workers=3" in D.logtext(), "--workers 3 not applied"


def test_pipelining_and_connection_close():
    import socket
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    req = (b"GET /v1/authorize HTTP/1.1\r\nHost: x\r\nX-Original-URI: /api/p\r\n"
           b"X-API-Key: pipe\r\n\r\n")
    s.sendall(req * 3 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    import re
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", data)
    eq(statuses, [b"200", b"200", b"429", b"200"], "four pipelined answers in order, then close")
    eq(re.findall(rb"X-RateLimit-Remaining: (\d+)", data), [b"1", b"0", b"0"])
    # HTTP/1.0 without keep-alive: answered, then closed
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"), data[:40]


def test_pipelining_halfclose_and_backpressure():
    """sluiced does the socket I/O of evhttp connections itself: EOF after
    pipelined requests still gets every answer; a client that does not read
    is throttled (input cap, partial writes) without losing or reordering
    answers; a client that leaves with answers unread harms nobody."""
    import re
    import socket
    import threading
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    def read_until_eof(s):
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return data
            data += chunk

    s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
    s.sendall(req * 50)
    s.shutdown(socket.SHUT_WR)
    data = read_until_eof(s)
    s.close()
    eq(len(re.findall(rb"HTTP/1.1 200 ", data)), 50, "50 pipelined answers before the close")

    n = 20000
    s = socket.create_connection(("127.0.0.1", D.port), timeout=20)
    sender = threading.Thread(target=s.sendall, args=(req * n,))
    sender.start()
    time.sleep(0.5)  # let sluiced fill the socket and stop reading
    data = b""
    while data.count(b"HTTP/1.1 200 ") < n:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    sender.join()
    s.close()
    eq(data.count(b"HTTP/1.1 200 "), n, "every pipelined answer of a slow reader")

    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(req * 2000)
    s.close()
    st, _, _ = D.request("GET", "/healthz")
    eq(st, 200)


try:
    for t in [test_explicit_check_fields_and_headers, test_matched_check_attributes, test_tiers,
              test_tier_change_never_resets, test_path_spellings_share_the_rule,
              test_multi_limit, test_shadow_rule, test_authorize_sources_and_denial,
              test_trusted_forwarded_for, test_byuser_key_and_missing_identity,
              test_deny_status_and_header_modes, test_leaky_bucket_shaping,
              test_keepalive_and_endpoints, test_pipelining_and_connection_close,
              test_pipelining_halfclose_and_backpressure]:
        test(t)
finally:
    D.stop()
done()
