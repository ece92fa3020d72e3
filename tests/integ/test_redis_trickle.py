# SPDX-License-Identifier: MIT
"""The blocking Redis path keeps its deadline when replies arrive in pieces:
a real redis-server behind a loopback proxy that passes the server's bytes
on one at a time, 10 ms apart (a starved server or a bad network).  Each
byte comes well within timeout_ms, so a client that bounds every read()
but not the whole reply waits for all of them (about a second); with
timeout_ms 50 the decision must instead give up after 50 ms and follow
on_store_error.  With a timeout long enough for the trickle the same
decision succeeds, so the proxy itself is sound."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from daemon_util import BIN, Redis, done, eq, test  # noqa: E402

if not shutil.which("redis-server"):
    print("SKIP: redis-server not installed")
    sys.exit(0)

BYTE_GAP_S = 0.010


class Trickle:
    """Loopback proxy to port: client bytes pass at once, server bytes one
    per BYTE_GAP_S."""

    def __init__(self, port):
        self.port, self.stop = port, False
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.listen_port = self.ls.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self.pipe, args=(c, u, 0), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, BYTE_GAP_S), daemon=True).start()

    def pipe(self, src, dst, gap):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not gap:
                    dst.sendall(data)
                    continue
                for i in range(len(data)):
                    dst.sendall(data[i:i + 1])
                    time.sleep(gap)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.ls.close()


R = Redis()
P = Trickle(R.port)
TMP = os.path.join(R.dir, "cfg")
os.makedirs(TMP, exist_ok=True)


def config(timeout_ms):
    path = os.path.join(TMP, "c%d.yaml" % timeout_ms)
    with open(path, "w") as f:
        f.write("timeout_ms: %d\non_store_error: allow\nrules:\n"
                "  - name: r\n    match: { path: /r }\n"
                "    limits: [ { algorithm: token_bucket, limit: 100, window: 1h } ]\n"
                % timeout_ms)
    return path


def check(timeout_ms, key):
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(BIN, "sluice"), "check", "--json", "--config",
                        config(timeout_ms), "--rule", "r", "--key", key, "--store",
                        "redis://127.0.0.1:%d" % P.listen_port],
                       capture_output=True, text=True, timeout=120)
    return time.monotonic() - t0, r.returncode, json.loads(r.stdout) if r.stdout else None


def test_slow_reply_within_timeout_succeeds():
    elapsed, rc, j = check(20000, "patient")
    print("# timeout_ms 20000 through the trickle: %.0f ms" % (elapsed * 1000))
    eq((rc, j["allowed"], j["store_error"], j["remaining"]), (0, True, False, 99))
    # the trickle really is slow: far beyond the 50 ms of the next test
    assert elapsed > 0.5, elapsed


def test_slow_reply_keeps_the_deadline():
    # the process start is part of the time: 50 ms + a margin far below
    # the trickle's second
    elapsed, rc, j = check(50, "hasty")
    print("# timeout_ms 50 through the trickle: %.0f ms" % (elapsed * 1000))
    eq((rc, j["allowed"], j["store_error"]), (0, True, True), "fail open on the deadline")
    assert elapsed < 0.4, "the decision waited %.0f ms for a 50 ms deadline" % (elapsed * 1000)


try:
    for t in [test_slow_reply_within_timeout_succeeds, test_slow_reply_keeps_the_deadline]:
        test(t)
finally:
    P.close()
    R.cleanup()
done()
