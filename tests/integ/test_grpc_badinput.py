# SPDX-License-Identifier: MIT
"""Bad input to sluiced's gRPC listener, sent as real HTTP/2 frames with
Debian's python3-h2 (hyperframe + hpack where a client must break the
rules h2 enforces): malformed protobuf, a message over the size limit,
wrong content-type and method, unknown method, missing/bad grpc-timeout,
compressed and truncated messages, two messages on a unary call, huge
header lists, a bad preface, rapid reset, SETTINGS and PING floods, more
streams than SETTINGS_MAX_CONCURRENT_STREAMS, a slow reader, a request
that never completes, the server's own deadline, and connections that die
with decisions in flight.  Each is answered with a gRPC status or an
HTTP/2 error, and sluiced serves everyone else afterwards (checked with
grpcio after every case).  Also run under the ASan build (scripts/test.sh),
where any use of freed memory or a leak fails the run."""
import os
import shutil
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame, WindowUpdateFrame  # noqa: E402

import grpc_util as g  # noqa: E402
from daemon_util import Redis, Sluiced, done, eq, free_port, metric, test, wait_port  # noqa: E402

HAVE_REDIS = shutil.which("redis-server") is not None
DESC_DIR = None
CONFIG = """
timeout_ms: 5000
on_store_error: allow
descriptors_config: [ %s/*.yaml ]
rules:
  - name: default
    match: { path: /* }
    limits: [ { algorithm: fixed_window, limit: 1000, window: 1s } ]
"""
DESCRIPTORS = """domain: bad
descriptors:
  - key: user
    rate_limit: { unit: year, requests_per_unit: 1000000 }
"""


def frame(msg, flag=0):
    return bytes([flag]) + struct.pack(">I", len(msg)) + msg


RLS_MSG = g.request("bad", g.desc(("user", "u"))).SerializeToString()
HEALTH_MSG = g.health_pb2.HealthCheckRequest().SerializeToString()
# 64 descriptors: a reply several times the size of its request
WIDE_MSG = g.request("bad", *[g.desc(("user", "w%d" % i)) for i in range(64)]).SerializeToString()


class Daemon(g.CleanExit, Sluiced):
    def __init__(self, store="memory://", workers=2, extra=()):
        global DESC_DIR
        if DESC_DIR is None:
            import tempfile
            DESC_DIR = tempfile.mkdtemp(prefix="sluice-grpcbad-")
            with open(os.path.join(DESC_DIR, "bad.yaml"), "w") as f:
                f.write(DESCRIPTORS)
        self.gport = free_port()
        super().__init__(CONFIG % DESC_DIR, store=store, workers=workers,
                         extra=["--grpc-listen", "127.0.0.1:%d" % self.gport,
                                "--request-timeout-ms", "1000"] + list(extra))
        wait_port(self.gport, proc=self.proc)

    def serving(self, what):
        """A well-behaved grpcio client is served, on a new connection."""
        assert self.proc.poll() is None, "sluiced exited after " + what
        ch = g.channel(self.gport)
        try:
            rls, health = g.stubs(ch)
            r = rls(g.request("bad", g.desc(("user", "ok"))), timeout=20)
            eq(r.overall_code, g.OK, "served after " + what)
            eq(health(g.health_pb2.HealthCheckRequest(), timeout=20).status, g.SERVING)
        finally:
            ch.close()


    def asan(self):
        with open("/proc/%d/maps" % self.proc.pid) as f:
            return "libasan" in f.read()

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class H2:
    """An HTTP/2 client connection on h2 (which does all framing and HPACK)."""

    def __init__(self, port, settings=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams = {}
        self.terminated = None  # GOAWAY error code
        self.closed = False
        self.wclosed = False  # the server closed its side for our writes
        if settings:
            self.conn.initiate_connection()
            self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.wclosed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer a stream and close before the client
                # has written all of it (seen under load); what it answered is
                # still read by pump() and judged by the caller.
                self.wclosed = True

    def start(self, path=g.RLS_PATH, ctype="application/grpc", method="POST", extra=(),
              end=False):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", "sluice"),
                (":path", path)]
        if ctype:
            hdrs.append(("content-type", ctype))
        hdrs += [("te", "trailers")] + list(extra)
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False,
                             "reset": None}
        self.flush()
        return sid

    def send(self, sid, data, end=True):
        while data and not self.wclosed:
            w = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if w <= 0:
                self.pump(0.5)
                continue
            self.conn.send_data(sid, data[:w])
            data = data[w:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return
        for ev in events:
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st:
                st["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.TrailersReceived) and st:
                st["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                if st:
                    st["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st:
                st["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and st:
                st["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = ev.error_code
        try:
            self.flush()
        except OSError:
            self.closed = True

    def wait(self, sid, timeout=15):
        deadline = time.time() + timeout
        st = self.streams[sid]
        while not (st["ended"] or st["reset"] is not None or self.closed):
            assert time.time() < deadline, "stream %d not answered" % sid
            self.pump(0.2)
        return st

    def grpc_status(self, sid):
        st = self.streams[sid]
        h = dict(st["headers"] or {})
        h.update(st["trailers"] or {})
        gs = h.get("grpc-status")
        return h.get(":status"), int(gs) if gs is not None else None, h.get("grpc-message")

    def call(self, payload, **kw):
        sid = self.start(**kw)
        self.send(sid, payload)
        self.wait(sid)
        return sid

    def wait_closed(self, timeout=15):
        deadline = time.time() + timeout
        while not self.closed and self.terminated is None:
            assert time.time() < deadline, "connection neither closed nor GOAWAY"
            self.pump(0.2)

    def close(self, abort=False):
        if abort:  # RST instead of FIN: the connection dies
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def status_of(s, payload, **kw):
    c = H2(s.gport)
    try:
        sid = c.call(payload, **kw)
        return c.grpc_status(sid)
    finally:
        c.close()


def raw_preface(window=2**31 - 1):
    """The client preface with huge windows, so the server may send freely."""
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
            SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: window}).serialize() +
            WindowUpdateFrame(0, window_increment=window - 65535).serialize())


def raw_requests(enc, first_sid, n, path, payload):
    hdrs = [(":method", "POST"), (":scheme", "http"), (":authority", "sluice"), (":path", path),
            ("content-type", "application/grpc"), ("te", "trailers")]
    out = []
    for i in range(n):
        sid = first_sid + 2 * i
        h = HeadersFrame(sid)
        h.data = enc.encode(hdrs)
        h.flags.add("END_HEADERS")
        d = DataFrame(sid)
        d.data = payload
        d.flags.add("END_STREAM")
        out.append(h.serialize())
        out.append(d.serialize())
    return b"".join(out)


@test
def test_messages():
    s = Daemon()
    try:
        eq(status_of(s, frame(RLS_MSG))[:2], ("200", 0), "a good call")
        # malformed protobuf (a truncated length-delimited field)
        st = status_of(s, frame(b"\x0a\xff\xff\x01zz"))
        eq(st[:2], ("200", 3), "malformed protobuf: INVALID_ARGUMENT")
        s.serving("malformed protobuf")
        st = status_of(s, frame(b"\x12\x00"))  # a descriptor without entries
        eq(st[1], 3, "empty descriptor")
        # a message over the limit: refused at its prefix (not buffered)
        c = H2(s.gport)
        sid = c.start()
        c.send(sid, b"\x00" + struct.pack(">I", 70000) + b"x" * 1000, end=False)
        c.wait(sid)
        eq(c.grpc_status(sid)[1], 8, "oversized: RESOURCE_EXHAUSTED")
        c.close()
        # exactly the limit is read whole, then judged (a domain over 4096 bytes)
        big = g.request("x" * 65519, g.desc(("user", "u"))).SerializeToString()
        eq(len(big), 65536, "message size")
        eq(status_of(s, frame(big))[1], 3, "at the limit: read, then INVALID_ARGUMENT")
        # compressed flag without an encoding, a bad flag, truncated, none, two
        eq(status_of(s, frame(RLS_MSG, flag=1))[1], 12, "compressed: UNIMPLEMENTED")
        eq(status_of(s, frame(RLS_MSG, flag=7))[1], 3, "bad flag")
        eq(status_of(s, frame(RLS_MSG)[:-3])[1], 3, "truncated: INVALID_ARGUMENT")
        eq(status_of(s, b"\x00\x00")[1], 3, "truncated prefix")
        eq(status_of(s, b"")[1], 12, "no message: UNIMPLEMENTED")
        eq(status_of(s, frame(RLS_MSG) + frame(RLS_MSG))[1], 12, "two messages: UNIMPLEMENTED")
        s.serving("message errors")
        m = s.metrics()
        assert metric(m, "sluice_grpc_requests_total", method="ShouldRateLimit",
                      code="RESOURCE_EXHAUSTED") == 1
        assert metric(m, "sluice_grpc_requests_total", method="ShouldRateLimit",
                      code="INVALID_ARGUMENT") >= 5
    finally:
        s.stop()


@test
def test_headers():
    s = Daemon()
    try:
        eq(status_of(s, frame(RLS_MSG), ctype="application/json")[:2], ("415", 3),
           "wrong content-type: HTTP 415")
        # answered before the client finished sending: RST_STREAM(NO_ERROR) after the reply
        c = H2(s.gport)
        sid = c.start(ctype="text/plain")
        c.wait(sid)
        deadline = time.time() + 10
        while c.streams[sid]["reset"] is None:
            assert time.time() < deadline, "no RST_STREAM after an early reply"
            c.pump(0.2)
        eq((c.grpc_status(sid)[0], c.streams[sid]["reset"]), ("415", 0), "reply, then NO_ERROR")
        c.close()
        eq(status_of(s, frame(RLS_MSG), ctype=None)[0], "415", "no content-type")
        eq(status_of(s, frame(RLS_MSG), ctype="application/grpc+json")[0], "415", "+json")
        eq(status_of(s, frame(RLS_MSG), ctype="application/grpc+proto")[1], 0, "+proto is fine")
        eq(status_of(s, frame(RLS_MSG), method="PUT")[0], "405", "not POST")
        st = status_of(s, frame(RLS_MSG), path="/envoy.service.ratelimit.v3.RateLimitService/Nope")
        eq(st[:2], ("200", 12), "unknown method: UNIMPLEMENTED")
        eq(status_of(s, frame(RLS_MSG), path="/")[1], 12, "unknown path")
        eq(status_of(s, frame(RLS_MSG), extra=[("grpc-encoding", "gzip")])[1], 12, "gzip")
        # grpc-timeout: missing is infinite; malformed is refused; expired is DEADLINE_EXCEEDED
        eq(status_of(s, frame(RLS_MSG))[1], 0, "no grpc-timeout")
        eq(status_of(s, frame(RLS_MSG), extra=[("grpc-timeout", "5S")])[1], 0, "5S")
        for bad in ("abc", "10", "123456789S", "5x", "-5S", "S"):
            eq(status_of(s, frame(RLS_MSG), extra=[("grpc-timeout", bad)])[1], 3,
               "grpc-timeout " + bad)
        eq(status_of(s, frame(RLS_MSG), extra=[("grpc-timeout", "0m")])[1], 4, "0m: expired")
        # a header list over the limit: 431 (the stream), the connection lives on
        c = H2(s.gport)
        sid = c.call(frame(RLS_MSG), extra=[("x-big", "v" * 20000)])
        eq(c.grpc_status(sid)[0], "431", "huge header list")
        sid = c.call(frame(RLS_MSG))
        eq(c.grpc_status(sid)[1], 0, "same connection serves on")
        c.close()
        # a bad preface: HTTP/1.1 on the gRPC port
        sock = socket.create_connection(("127.0.0.1", s.gport), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        sock.close()
        s.serving("header errors")
    finally:
        s.stop()


@test
def test_floods():
    s = Daemon()
    try:
        # rapid reset: open streams and cancel them at once
        c = H2(s.gport)
        try:
            for i in range(5000):
                sid = c.start()
                c.conn.reset_stream(sid, 8)
                if i % 50 == 0:
                    c.flush()
                    c.pump(0.001)
                    if c.closed or c.terminated is not None:
                        break
            c.flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        c.wait_closed()
        c.close()
        s.serving("rapid reset")
        # SETTINGS flood, PING flood
        for name, act in (("SETTINGS", lambda c: c.conn.update_settings(
                {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})),
                          ("PING", lambda c: c.conn.ping(os.urandom(8)))):
            c = H2(s.gport)
            try:
                for i in range(20000):
                    act(c)
                    if i % 100 == 0:
                        c.flush()
                        c.pump(0.001)
                        if c.closed or c.terminated is not None:
                            break
                c.flush()
            except (OSError, h2.exceptions.ProtocolError):
                pass
            c.wait_closed()
            c.close()
            s.serving(name + " flood")
        assert metric(s.metrics(), "sluice_grpc_connections_aborted_total") >= 2
    finally:
        s.stop()


@test
def test_slow_reader():
    """A client that sends calls and never reads the replies: the server
    stops reading it once its own buffer holds a bounded backlog, its memory
    does not grow with the calls sent, and others are served meanwhile."""
    s = Daemon()
    try:
        rss0 = s.rss_kb()
        # a small receive buffer (set before connecting, so the window is small)
        # and replies of a few hundred bytes fill the path to the client soon
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", s.gport))
        enc = hpack.Encoder()
        sock.sendall(raw_preface())
        sock.settimeout(3)
        sid, blocked, sent = 1, False, 0
        while sent < 600000:
            batch = raw_requests(enc, sid, 1000, g.RLS_PATH, frame(WIDE_MSG))
            try:
                sock.sendall(batch)
            except socket.timeout:
                blocked = True
                break
            sid += 2000
            sent += 1000
        assert blocked, "the server kept reading a client that never reads"
        s.serving("a stalled reader")
        grew = s.rss_kb() - rss0
        print("  RSS grew by %d KiB" % grew)
        if not s.asan():  # ASan's quarantine holds freed memory: RSS means nothing there
            assert grew < 64 * 1024, "RSS grew by %d KiB for a stalled reader" % grew
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        s.serving("the stalled reader left")
    finally:
        s.stop()


@test
def test_incomplete_request():
    """Headers and half a message, then silence: DEADLINE_EXCEEDED after the
    request timeout (1 s here), from the server's sweep."""
    s = Daemon()
    try:
        c = H2(s.gport)
        sid = c.start()
        c.send(sid, frame(RLS_MSG)[:4], end=False)
        c.wait(sid, timeout=20)
        eq(c.grpc_status(sid)[1], 4, "request did not arrive in time")
        c.close()
        s.serving("an incomplete request")
    finally:
        s.stop()


@test
def test_in_flight():
    """Decisions pending on a stalled Redis: the server's own deadline,
    SETTINGS_MAX_CONCURRENT_STREAMS, resets and dead connections while the
    decisions are in flight (the late callbacks find their calls closed)."""
    if not HAVE_REDIS:
        raise AssertionError("redis-server not installed")
    r = Redis()
    s = Daemon(store=r.url())
    try:
        s.serving("start")
        r.proc.send_signal(signal.SIGSTOP)
        try:
            # the server's own deadline (no client-side cancel with raw h2)
            c = H2(s.gport)
            t0 = time.time()
            sid = c.call(frame(RLS_MSG), extra=[("grpc-timeout", "300m")])
            eq(c.grpc_status(sid)[1], 4, "server-side DEADLINE_EXCEEDED")
            assert time.time() - t0 < 4.5, "deadline not kept"
            # more streams than SETTINGS_MAX_CONCURRENT_STREAMS (sent before its SETTINGS
            # is read, as a hostile client would): the excess is refused
            c2 = H2(s.gport)
            sids = []
            for _ in range(150):
                sid = c2.start()
                c2.conn.send_data(sid, frame(RLS_MSG), end_stream=True)
                sids.append(sid)
            c2.flush()
            deadline = time.time() + 10
            while sum(1 for x in sids if c2.streams[x]["reset"] == 7) < 50:
                assert time.time() < deadline and not c2.closed, "no REFUSED_STREAM"
                c2.pump(0.2)
            # cancel some in-flight calls, kill connections with calls in flight
            for x in sids[:20]:
                if c2.streams[x]["reset"] is None:
                    c2.conn.reset_stream(x, 8)
            c2.flush()
            c3 = H2(s.gport)
            for _ in range(30):
                sid = c3.start()
                c3.send(sid, frame(RLS_MSG))
            time.sleep(0.3)
            c3.close(abort=True)
            c4 = H2(s.gport)
            sid = c4.start()
            c4.send(sid, frame(RLS_MSG)[:6], end=False)  # dies mid-message
            time.sleep(0.2)
            c4.close(abort=True)
            time.sleep(0.3)
            c.close(abort=True)
        finally:
            r.proc.send_signal(signal.SIGCONT)
        # the 100 admitted calls of c2 are answered once Redis is back
        deadline = time.time() + 20
        while True:
            left = [x for x in sids[20:] if c2.streams[x]["reset"] is None
                    and not c2.streams[x]["ended"]]
            if not left:
                break
            assert time.time() < deadline and not c2.closed, "%d calls unanswered" % len(left)
            c2.pump(0.2)
        answered = [x for x in sids if c2.streams[x]["ended"]]
        assert len(answered) >= 50, len(answered)
        for x in answered:
            eq(c2.grpc_status(x)[1], 0, "in-flight call")
        c2.close(abort=True)
        time.sleep(0.5)
        s.serving("connections died with decisions in flight")
        eq(metric(s.metrics(), "sluice_grpc_connections"), 0, "every connection freed")
    finally:
        s.stop()
        r.cleanup()


@test
def test_connection_cap():
    """At --max-connections (HTTP/1.1 and gRPC counted together) a new gRPC
    connection waits in the kernel's backlog, unanswered, and is served once
    another connection closes."""
    s = Daemon(workers=1, extra=["--max-connections", "2"])
    try:
        a, b = H2(s.gport), H2(s.gport)
        eq(a.grpc_status(a.call(frame(RLS_MSG)))[1], 0)
        eq(b.grpc_status(b.call(frame(RLS_MSG)))[1], 0)
        c = H2(s.gport)
        sid = c.start()
        c.send(sid, frame(RLS_MSG))
        c.pump(1.0)
        assert not c.streams[sid]["ended"], "served above the cap"
        a.close()
        c.wait(sid)
        eq(c.grpc_status(sid)[1], 0, "served once below the cap")
        b.close()
        c.close()
    finally:
        s.stop()


@test
def test_goaway_on_sigterm():
    """SIGTERM: an open gRPC connection is told GOAWAY(NO_ERROR) before the
    process exits 0."""
    s = Daemon()
    try:
        c = H2(s.gport)
        sid = c.call(frame(RLS_MSG))
        eq(c.grpc_status(sid)[1], 0)
        s.signal(signal.SIGTERM)
        deadline = time.time() + 15
        while c.terminated is None:
            assert time.time() < deadline and not c.closed, "closed without GOAWAY"
            c.pump(0.2)
        eq(c.terminated, 0, "GOAWAY NO_ERROR")
        c.close()
        eq(s.proc.wait(60), 0, "exit status after the drain")
    finally:
        s.stop()


if DESC_DIR:
    shutil.rmtree(DESC_DIR, ignore_errors=True)
g.cleanup()
done()
