# SPDX-License-Identifier: MIT
"""Every bad input of SPEC section 5 against the real sluiced: malformed
JSON, wrong types, unknown rule, empty/huge/binary keys, oversized bodies,
header floods, slow clients and too many connections each get the right
4xx (or 503) with a JSON error, while other clients keep being served."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import Sluiced, done, eq, test  # noqa: E402

CONFIG = """
rules:
  - name: held
    match: { path: /held }
    limits:
      - { algorithm: leaky_bucket, limit: 10, window: 1s, burst: 50 }
  - name: api
    match: { path: /api/* }
    limits:
      - { algorithm: fixed_window, limit: 100000000, window: 1m }
"""

D = Sluiced(CONFIG, workers=2, extra=["--request-timeout-ms", "1000", "--max-connections", "40"])


def err(st, body, status, code):
    eq(st, status, "status for %s" % code)
    j = json.loads(body)
    eq(j.get("error"), code, "error code")
    assert isinstance(j.get("message"), str) and j["message"], j


def post(body, headers=None):
    return D.request("POST", "/v1/check", body=body, headers=headers)


def still_serving():
    st, _, body = D.request("POST", "/v1/check", body={"rule": "api", "key": "ok"})
    eq(st, 200, "a well-behaved client is served")


def test_malformed_json():
    for body in ['{"rule": "api", ', "not json", "{'rule': 'api'}", '{"a":1}{"b":2}',
                 '{"rule":"api","rule":"api","key":"k"}']:
        st, _, b = post(body)
        err(st, b, 400, "malformed_json")
    st, _, b = post("")
    err(st, b, 400, "malformed_json")
    st, _, b = post(b"\xff\xfe\x00garbage")
    err(st, b, 400, "malformed_json")
    still_serving()


def test_wrong_types():
    cases = [([1, 2], "bad_type"), ('"str"', "bad_type"), ({"rule": 5, "key": "k"}, "bad_type"),
             ({"rule": "api", "key": 5}, "bad_type"), ({"rule": "api", "key": None}, "bad_type"),
             ({"rule": "api", "key": "k", "cost": "1"}, "bad_cost"),
             ({"rule": "api", "key": "k", "cost": 1.5}, "bad_cost"),
             ({"rule": "api", "key": "k", "cost": -1}, "bad_cost"),
             ({"rule": "api", "key": "k", "cost": 10 ** 12}, "bad_cost"),
             ({"rule": "api", "key": "k", "cost": True}, "bad_cost"),
             ({"path": "/api/x", "headers": ["a"]}, "bad_type"),
             ({"path": "/api/x", "headers": {"X-A": 1}}, "bad_type"),
             ({"path": "/api/x", "ip": "not-an-ip"}, "bad_ip"),
             ({"path": 7}, "bad_type"),
             ({"rule": "api"}, "bad_request"),
             ({}, "bad_request")]
    for body, code in cases:
        st, _, b = post(json.dumps(body) if not isinstance(body, str) else body)
        err(st, b, 400, code)
    still_serving()


def test_unknown_rule():
    st, _, b = post({"rule": "nope", "key": "k"})
    err(st, b, 404, "unknown_rule")


def test_keys():
    st, _, b = post({"rule": "api", "key": ""})
    err(st, b, 400, "bad_key")
    st, _, b = post({"rule": "api", "key": "k" * 513})
    err(st, b, 400, "bad_key")
    st, _, b = post({"rule": "api", "key": "k" * 512})
    eq(st, 200, "a 512-byte key is fine")
    st, _, b = post({"rule": "api", "key": "a\u0001b"})
    err(st, b, 400, "bad_key")
    st, _, b = post('{"rule": "api", "key": "a\\u0000b"}')
    eq(st, 400, "NUL in a key")
    st, _, b = post({"rule": "api", "key": "clé-ünicode-键"})
    eq(st, 200, "UTF-8 keys are fine")
    eq(json.loads(b)["key"], "clé-ünicode-键")
    still_serving()


def test_oversized_body():
    st, h, b = post('{"rule": "api", "key": "' + "x" * 70000 + '"}')
    err(st, b, 413, "body_too_large")
    # a declared length above the limit is refused before the body is read
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:80]
    still_serving()


def test_header_flood():
    hdrs = {"X-H%d" % i: "v" for i in range(150)}
    st, h, b = D.request("POST", "/v1/check", body={"rule": "api", "key": "k"}, headers=hdrs)
    err(st, b, 431, "headers_too_large")
    hdrs = {"X-Big": "v" * 20000}
    st, h, b = D.request("GET", "/healthz", headers=hdrs)
    err(st, b, 431, "headers_too_large")
    # far beyond the limit: refused as soon as the limit is crossed
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: " + b"a" * 100000 + b"\r\n\r\n")
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 "), data[:80]
    still_serving()


def test_slow_client_gets_408_while_others_served():
    s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
    s.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"ru")
    t0 = time.time()
    # others are served while the slow one trickles
    for _ in range(20):
        still_serving()
    data = b""
    s.settimeout(0.2)
    while time.time() - t0 < 5:
        try:
            s.sendall(b"l")
        except OSError:
            pass
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    elapsed = time.time() - t0
    assert data.startswith(b"HTTP/1.1 408"), data[:80]
    body = data.split(b"\r\n\r\n", 1)[1]
    eq(json.loads(body)["error"], "request_timeout")
    assert 0.8 <= elapsed < 4, elapsed
    # a slow header trickle too
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    t0 = time.time()
    data = b""
    s.settimeout(0.3)
    while time.time() - t0 < 5:
        try:
            s.sendall(b"X: y\r\n")
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:80]
    still_serving()


def test_connection_cap():
    socks = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection(("127.0.0.1", D.port), timeout=5))
        time.sleep(0.3)
        # the connections above the cap are refused with 503 (or wait in the backlog)
        answers = []
        for s in socks:
            s.settimeout(0.1)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answers.append(s.recv(4096).split(b" ")[1])
            except (socket.timeout, OSError, IndexError):
                answers.append(b"none")
        print("connection cap answers:", {a: answers.count(a) for a in set(answers)})
        ok = answers.count(b"200")
        assert ok <= 40, "more than --max-connections served at once: %d" % ok
        assert answers.count(b"503") >= 1 or answers.count(b"none") >= 1, answers
    finally:
        for s in socks:
            s.close()
    # once they are gone, new clients are served again
    deadline = time.time() + 5
    while True:
        try:
            still_serving()
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    m = D.metrics()
    assert m[("sluice_http_responses_total", frozenset({("code", "408")}))] >= 1


def test_concurrent_abuse_does_not_stall_others():
    stop = time.time() + 2
    errors = []

    def abuser():
        while time.time() < stop:
            try:
                post("{{{{")
                post({"rule": "nope", "key": "k"})
                post({"rule": "api", "key": ""})
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    ths = [threading.Thread(target=abuser) for _ in range(4)]
    for t in ths:
        t.start()
    n = 0
    while time.time() < stop:
        still_serving()
        n += 1
    for t in ths:
        t.join()
    assert n > 10, n
    assert not errors, errors[:3]
    assert D.proc.poll() is None, "sluiced died"


def test_client_gone_while_reply_held():
    hdr = "X-Original-URI: /held\r\nX-API-Key: gone\r\n"
    for _ in range(5):  # queue up: the next authorize is held ~500 ms
        D.request("GET", "/v1/authorize?nodelay", headers={"X-Original-URI": "/held",
                                                          "X-API-Key": "gone"})
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
        s.sendall(("GET /v1/authorize HTTP/1.1\r\nHost: x\r\n" + hdr + "\r\n").encode())
        socks.append(s)
    time.sleep(0.05)
    for s in socks:
        s.close()  # gone before sluiced answers
    # the held replies fire within ~1.5 s; each finds its client gone
    deadline = time.time() + 10
    while D.metrics()[("sluice_http_connections", frozenset())] != 1:
        assert time.time() < deadline, "connections of departed clients not released"
        time.sleep(0.1)
    still_serving()
    assert D.proc.poll() is None, "sluiced died"


def read_replies(s, n, timeout=10):
    """Reads until n complete replies (headers + Content-Length body) or EOF."""
    s.settimeout(timeout)
    data, out = b"", []
    while len(out) < n:
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = data[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            if len(data) < head_end + 4 + length:
                break
            out.append((head, data[head_end + 4:head_end + 4 + length]))
            data = data[head_end + 4 + length:]
        if len(out) >= n:
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return out


def test_pipelined_replies_keep_request_order():
    # the first request is held ~500 ms by leaky-bucket shaping, the two
    # behind it are answered at once: their replies must wait their turn.
    # 5 admitted ahead of it (T = 100 ms): its reply cannot come before
    # 500 ms after the first of them, however slow the machine.
    t0 = time.time()
    for _ in range(5):
        D.request("GET", "/v1/authorize?nodelay", headers={"X-Original-URI": "/held",
                                                          "X-API-Key": "order"})
    s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
    s.sendall(b"GET /v1/authorize HTTP/1.1\r\nHost: x\r\nX-Original-URI: /held\r\n"
              b"X-API-Key: order\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    replies = read_replies(s, 3)
    elapsed = time.time() - t0
    s.close()
    eq([h.split(" ")[1] for h, _ in replies], ["200", "200", "404"], "statuses in request order")
    assert "X-RateLimit-Limit" in replies[0][0], replies[0][0]
    eq(json.loads(replies[1][1]), {"status": "ok"})
    assert elapsed >= 0.49, "the held reply was not first: %.3f s" % elapsed


def test_chunked_body_and_tiny_writes():
    body = b'{"rule": "api", "key": "chunky"}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5])
                       for i in range(0, len(body), 5)) + b"0\r\n\r\n"
    req = (b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(req)
    for b in req:  # the same request again, one byte per write
        s.send(bytes([b]))
        time.sleep(0.0005)
    replies = read_replies(s, 2)
    s.close()
    eq(len(replies), 2, "two replies")
    for head, data in replies:
        assert head.startswith("HTTP/1.1 200 "), head
        j = json.loads(data)
        eq((j["rule"], j["key"]), ("api", "chunky"))
    eq(json.loads(replies[1][1])["remaining"], json.loads(replies[0][1])["remaining"] - 1)
    # a chunked body above 64 KiB is refused once it grows past the limit
    s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
    s.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(20):
            s.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
    except OSError:
        pass
    head, data = read_replies(s, 1)[0]
    s.close()
    assert head.startswith("HTTP/1.1 413 "), head
    eq(json.loads(data)["error"], "body_too_large")
    still_serving()


def test_malformed_http_and_expect():
    for raw in [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                b"POST /v1/check HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]:
        s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
        s.sendall(raw)
        replies = read_replies(s, 1)
        s.close()
        assert replies and replies[0][0].startswith("HTTP/1.1 400 "), (raw, replies)
        eq(json.loads(replies[0][1])["error"], "bad_request")
        assert "Connection: close" in replies[0][0]
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    body = b'{"rule": "api", "key": "expect"}'
    s.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    eq(s.recv(4096), b"HTTP/1.1 100 Continue\r\n\r\n", "interim reply")
    s.sendall(body)
    head, data = read_replies(s, 1)[0]
    s.close()
    assert head.startswith("HTTP/1.1 200 "), head
    eq(json.loads(data)["key"], "expect")
    still_serving()


def test_client_closing_mid_reply():
    # many large replies pipelined, the client reads a little and leaves
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 300)
        s.recv(1000)
        s.close()
    time.sleep(0.2)
    still_serving()
    assert D.proc.poll() is None, "sluiced died"


try:
    for t in [test_client_gone_while_reply_held, test_malformed_json, test_wrong_types, test_unknown_rule, test_keys,
              test_oversized_body, test_header_flood,
              test_slow_client_gets_408_while_others_served, test_connection_cap,
              test_concurrent_abuse_does_not_stall_others,
              test_pipelined_replies_keep_request_order, test_chunked_body_and_tiny_writes,
              test_malformed_http_and_expect, test_client_closing_mid_reply]:
        test(t)
finally:
    D.stop()
done()
