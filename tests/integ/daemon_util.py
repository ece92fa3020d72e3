# SPDX-License-Identifier: MIT
"""Helpers for the sluiced integration tests: start the real binary on a
free loopback port with a temporary config, talk HTTP/1.1 to it with
http.client, start a private redis-server.  Standard library only."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SLUICE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SLUICED = os.path.join(BIN, "sluiced")

_failures = 0
_passed = 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not ready" % port)


class Sluiced:
    """A sluiced process with its own config file, log file and port."""

    def __init__(self, config, store="memory://", workers=2, extra=(), port=None):
        self.dir = tempfile.mkdtemp(prefix="sluiced-test-")
        self.config_path = os.path.join(self.dir, "sluice.yaml")
        self.write_config(config)
        self.port = port or free_port()
        self.log_path = os.path.join(self.dir, "sluiced.log")
        self.log = open(self.log_path, "wb")
        args = [SLUICED, "--config", self.config_path, "--listen", "127.0.0.1:%d" % self.port,
                "--store", store, "--workers", str(workers)] + list(extra)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        c = conn or self.conn()
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def check(self, body, **kw):
        st, h, data = self.request("POST", "/v1/check", body=body, **kw)
        return st, h, json.loads(data) if data else None

    def authorize(self, uri, method="GET", headers=None, path="/v1/authorize", **kw):
        hdrs = {"X-Original-URI": uri, "X-Original-Method": method}
        hdrs.update(headers or {})
        return self.request("GET", path, headers=hdrs, **kw)

    def metrics(self):
        st, h, data = self.request("GET", "/metrics")
        assert st == 200, st
        return parse_prometheus(data.decode())

    def logtext(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def terminate(self, timeout):
        """SIGTERM (unless it exited already), then up to timeout seconds for
        the exit: its status, or None while it still runs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.poll()

    def stop(self):
        if self.terminate(10) is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A private redis-server on a free loopback port (no persistence)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sluiced-redis-")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_prometheus(text):
    """Parses text format 0.0.4 into {(name, frozenset(labels)): value};
    checks the structure (HELP/TYPE before samples, one group per family,
    final newline)."""
    assert text.endswith("\n"), "exposition must end with a newline"
    out = {}
    typed = {}
    seen_families = []
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in typed, "duplicate TYPE " + name
            typed[name] = kind
            seen_families.append(name)
            continue
        if line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_s, value = rest.rsplit("} ", 1)
            labels = []
            for part in labels_s.split('",'):
                if not part:
                    continue
                k, v = part.split("=", 1)
                labels.append((k, v.strip('"')))
        else:
            name, value = line.split(" ", 1)
            labels = []
        family = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and name[: -len(suf)] in typed:
                family = name[: -len(suf)]
        assert family in typed, "sample before TYPE: " + line
        assert seen_families[-1] == family, "family not contiguous: " + name
        key = (name, frozenset(labels))
        assert key not in out, "duplicate sample " + line
        out[key] = float(value)
    return out


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def test(fn):
    """Runs one test function, recording a failure without stopping the file."""
    global _failures, _passed
    t0 = time.time()
    try:
        fn()
        _passed += 1
        print("ok %s (%.2fs)" % (fn.__name__, time.time() - t0), flush=True)
    except Exception as e:  # noqa: BLE001 - report every failure
        _failures += 1
        import traceback
        traceback.print_exc()
        print("FAIL %s: %s" % (fn.__name__, e), flush=True)


def done():
    print("%d passed, %d failed" % (_passed, _failures))
    sys.exit(1 if _failures else 0)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))
