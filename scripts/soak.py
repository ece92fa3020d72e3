# SPDX-License-Identifier: MIT
"""soak.py - one phase of scripts/soak.sh: sluiced on a private Redis
(standalone, or a master + replica behind three Sentinels) under steady wrk
load from many keys, while this script injects faults in a loop:

  freeze     SIGSTOP the Redis master for a few seconds, then SIGCONT
  kill       SIGKILL it; restart it on the same port a little later
  failover   (sentinel) SENTINEL FAILOVER while the master stays up
  reload     SIGHUP with a good config, then with a broken one
  slowloris  connections that send a request one byte per second
  abandon    connections that send half a request and then never read or
             close; and connections reset (RST) in the middle of a request

Meanwhile it samples sluiced's RSS and open descriptors once a second, and
a probe thread sends one /v1/check every 50 ms on a keep-alive connection,
recording each response's latency, status and store_error.  After every
Redis fault it waits for the store to answer again and checks exact
admission on a fresh key (limit 5: exactly 5 allowed, remaining 4..0, the
6th denied, no store_error).  At the end it prints the figures and one
PASS/FAIL line per criterion, and exits 1 when any failed.

Only processes this script started are signalled; all of them are stopped
on exit.  Standard library only (/usr/bin/python3)."""
import argparse
import bisect
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

EXACT_LIMIT = 5

CONFIG = """\
timeout_ms: {timeout_ms}
on_store_error: allow
identify: [header:X-API-Key, ip]
rules:
  - name: exact
    match: {{ path: /exact }}
    limits: [ {{ algorithm: token_bucket, limit: {exact}, window: 1h }} ]
  - name: probe
    match: {{ path: /probe }}
    limits: [ {{ algorithm: token_bucket, limit: 1000000, window: 1s }} ]
  - name: soak
    match: {{ path: /* }}
    limits:
      - {{ algorithm: {algo}, limit: {limit}, window: 10s }}
"""
# A broken config for the refused reload: a YAML syntax error on line 3.
BAD_CONFIG = "timeout_ms: {timeout_ms}\nrules:\n  - name: [unclosed\n"

PROCS = []  # every process this script started, stopped on exit


def now():
    return time.monotonic()


def log(msg):
    print("# %7.1fs %s" % (now() - T0, msg), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def spawn(args, logpath):
    f = open(logpath, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
    f.close()
    PROCS.append(p)
    return p


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
            except OSError:
                pass
    for p in PROCS:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def rcli(port, *args, timeout=5):
    try:
        r = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout.strip()
    except subprocess.TimeoutExpired:
        return ""


def wait_for(fn, seconds, step=0.05):
    end = now() + seconds
    while now() < end:
        if fn():
            return True
        time.sleep(step)
    return False


class Redis:
    """One redis-server on a fixed loopback port, restartable."""

    def __init__(self, name, d, port=None, extra=()):
        self.name, self.port, self.extra = name, port or free_port(), list(extra)
        self.dir = os.path.join(d, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.start()

    def start(self, extra=None):
        if extra is not None:
            self.extra = list(extra)
        self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", self.dir] + self.extra,
                          os.path.join(self.dir, "log"))
        if not wait_for(lambda: rcli(self.port, "PING", timeout=1) == "PONG", 10):
            raise RuntimeError("redis %s does not answer" % self.name)

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.proc.wait()


class Topology:
    """standalone: one Redis.  sentinel: master + replica + 3 sentinels."""

    def __init__(self, mode, d):
        self.mode, self.d = mode, d
        self.nodes = [Redis("m", d)]
        self.sentinels = []
        if mode == "sentinel":
            m = self.nodes[0]
            self.nodes.append(Redis("r", d, extra=["--replicaof", "127.0.0.1", str(m.port)]))
            for i in range(3):
                port = free_port()
                sd = os.path.join(d, "s%d" % i)
                os.makedirs(sd)
                conf = os.path.join(sd, "sentinel.conf")
                with open(conf, "w") as f:
                    f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                            "sentinel monitor soak 127.0.0.1 %d 2\n"
                            "sentinel down-after-milliseconds soak 1000\n"
                            "sentinel failover-timeout soak 4000\n"
                            "sentinel parallel-syncs soak 1\n" % (port, sd, m.port))
                spawn(["redis-sentinel", conf], os.path.join(sd, "log"))
                self.sentinels.append(port)
            for p in self.sentinels:
                if not wait_for(lambda: rcli(p, "PING", timeout=1) == "PONG", 10):
                    raise RuntimeError("sentinel does not answer")
            if not wait_for(self.stable, 60, 0.2):
                raise RuntimeError("sentinels never agreed on the topology")

    def url(self):
        if self.mode == "standalone":
            return "redis://127.0.0.1:%d" % self.nodes[0].port
        return "redis+sentinel://" + ",".join("127.0.0.1:%d" % p for p in self.sentinels) + "/soak"

    def master(self):
        if self.mode == "standalone":
            return self.nodes[0]
        out = rcli(self.sentinels[0], "SENTINEL", "get-master-addr-by-name", "soak").split("\n")
        port = int(out[-1]) if out and out[-1].isdigit() else -1
        for n in self.nodes:
            if n.port == port:
                return n
        return self.nodes[0]

    def stable(self):
        """Every node up; in sentinel mode all sentinels name the same
        master, it says it is master, the other is its replica with the
        link up, and the sentinels know each other and the replica."""
        for n in self.nodes:
            if rcli(n.port, "PING", timeout=1) != "PONG":
                return False
        if self.mode == "standalone":
            return True
        masters = {rcli(p, "SENTINEL", "get-master-addr-by-name", "soak").split("\n")[-1]
                   for p in self.sentinels}
        if len(masters) != 1:
            return False
        m = self.master()
        if "role:master" not in rcli(m.port, "INFO", "replication"):
            return False
        for n in self.nodes:
            if n is not m and "master_link_status:up" not in rcli(n.port, "INFO", "replication"):
                return False
        info = rcli(self.sentinels[0], "SENTINEL", "master", "soak").split("\n")
        kv = dict(zip(info[0::2], info[1::2]))
        return kv.get("num-slaves") == "1" and kv.get("num-other-sentinels") == "2" \
            and "o_down" not in kv.get("flags", "") and "failover" not in kv.get("flags", "")


class Sluiced:
    def __init__(self, binary, d, url, workers, cfg):
        self.dir, self.port = d, free_port()
        self.config = os.path.join(d, "sluice.yaml")
        self.write(cfg)
        self.log = os.path.join(d, "sluiced.log")
        self.proc = spawn([binary, "--config", self.config, "--listen",
                           "127.0.0.1:%d" % self.port, "--store", url, "--workers",
                           str(workers)], self.log)
        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        if not wait_for(up, 10) or self.proc.poll() is not None:
            raise RuntimeError("sluiced did not start: " + self.logtext()[-500:])

    def write(self, text):
        with open(self.config + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config + ".tmp", self.config)

    def logtext(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def check(self, rule, key, cost=1, conn=None, timeout=5):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", "/v1/check", body=json.dumps({"rule": rule, "key": key, "cost": cost}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            return r.status, json.loads(body) if body else None
        finally:
            if conn is None:
                c.close()

    def sample(self):
        """(rss_kb, open fds), or None when the process is gone."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            return rss, len(os.listdir("/proc/%d/fd" % self.proc.pid))
        except (OSError, StopIteration):
            return None


class Probe(threading.Thread):
    """One /v1/check every 50 ms on a keep-alive connection; every
    response's (time, latency, status, store_error) is kept."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s, self.stop, self.rows, self.errors = s, False, [], []

    def run(self):
        conn = None
        i = 0
        while not self.stop:
            t = now()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=10)
                st, j = self.s.check("probe", "p%d" % (i % 1000), conn=conn)
                self.rows.append((t, now() - t, st, bool(j and j.get("store_error"))))
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors.append((t - T0, repr(e)))
                if conn:
                    conn.close()
                conn = None
            i += 1
            time.sleep(max(0.0, 0.05 - (now() - t)))


class Sampler(threading.Thread):
    def __init__(self, s):
        super().__init__(daemon=True)
        self.s, self.stop, self.rows, self.died_at = s, False, [], None

    def run(self):
        while not self.stop:
            v = self.s.sample()
            if v is None or self.s.proc.poll() is not None:
                self.died_at = now() - T0
                return
            self.rows.append((now(), v[0], v[1]))
            time.sleep(1)


class Watchdog(threading.Thread):
    """How long this driver could not run: the oversleep of a 5 ms sleep,
    worst per second of CLOCK_MONOTONIC.  On a shared machine no deadline
    fires while a process cannot run; a response slower than the bound is
    explained by the machine only if the driver was starved as long around
    it (the same rule as the hammer's starve_us in the Redis tests)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.worst = False, {}

    def run(self):
        while not self.stop:
            t = now()
            time.sleep(0.005)
            late = now() - t - 0.005
            sec = int(t)
            if late > self.worst.get(sec, 0.0):
                self.worst[sec] = late

    def around(self, t0, t1):
        """The worst oversleep in the seconds from t0 - 1 to t1 + 1."""
        return max((self.worst.get(sec, 0.0) for sec in range(int(t0) - 1, int(t1) + 2)),
                   default=0.0)


class SchedWatch(threading.Thread):
    """How long one process's threads (sluiced's, or wrk's, which times the
    responses) waited for a CPU: the kernel's run_delay (second field of
    /proc/PID/task/TID/schedstat, ns spent runnable but not running), sampled
    every 10 ms.  A response slower than the bound is explained by the
    machine if one of these threads waited at least the excess for a CPU
    while that response was in flight; a stall of sluiced's own making (a
    blocking call, a lost timer) shows no such wait."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, False
        self.times = []    # sample times (monotonic)
        self.cum = {}      # tid -> run_delay in seconds at each sample (aligned with times)
        self.worst = 0.0   # the most one thread waited within one second

    def _read(self):
        out = {}
        base = "/proc/%d/task" % self.pid
        try:
            tids = os.listdir(base)
        except OSError:
            return out
        for tid in tids:
            try:
                with open("%s/%s/schedstat" % (base, tid)) as f:
                    out[tid] = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                pass
        return out

    def run(self):
        while not self.stop:
            cur = self._read()
            if not cur:
                return
            n = len(self.times)
            self.times.append(now())
            for tid, v in cur.items():
                col = self.cum.setdefault(tid, [v] * n)  # a new thread: no wait before
                col.append(v)
            for tid, col in self.cum.items():
                if len(col) <= n:
                    col.append(col[-1] if col else 0.0)  # a thread gone: no more wait
            time.sleep(0.01)

    def waited(self, t0, t1):
        """The most any one thread waited for a CPU between t0 and t1 (from
        the last sample at or before t0 to the first at or after t1)."""
        if not self.times:
            return 0.0
        i = max(0, bisect.bisect_right(self.times, t0) - 1)
        j = min(len(self.times) - 1, bisect.bisect_left(self.times, t1))
        return max((col[j] - col[i] for col in self.cum.values()), default=0.0)

    def worst_second(self):
        best, i = 0.0, 0
        for j, t in enumerate(self.times):
            while self.times[i] < t - 1.0:
                i += 1
            for col in self.cum.values():
                best = max(best, col[j] - col[i])
        return best


class Soak:
    def __init__(self, a):
        self.a = a
        self.d = tempfile.mkdtemp(prefix="sluice-soak-")
        self.fail = []
        self.away = []         # (start, end) monotonic windows while Redis was unavailable
        self.exact_ok = 0
        self.exact_timeouts = 0  # store_error answers met by the exact checks
        self.exact_bad = []
        self.recover_s = []
        self.quiet_fds = []    # fd count at quiet points (fault connections closed)
        self.reloads = [0, 0]  # good accepted, bad refused
        self.slow_closed = [0, 0]  # closed by sluiced, opened
        self.n = 0
        self.faults = {}

    def cfg(self, algo="token_bucket", limit=3):
        return CONFIG.format(timeout_ms=self.a.timeout_ms, exact=EXACT_LIMIT, algo=algo,
                             limit=limit)

    # --- checks ---------------------------------------------------------------------------
    def wait_recovered(self):
        """After a fault: the topology is whole again and sluiced decides
        on the store: peeks (cost 0) on fresh connections, so on every
        worker, answer without store_error for 1.5 s in a row, longer than
        a worker's reconnect backoff (at most 1 s, src/store/redis*.c)."""
        t = now()
        if not wait_for(self.topo.stable, 60, 0.2):
            self.fail.append("topology not whole 60 s after a fault")
            return False
        since = [None]

        def decided():
            try:
                st, j = self.s.check("exact", "ready", cost=0)
                good = st == 200 and not j["store_error"]
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                good = False
            if not good:
                since[0] = None
            elif since[0] is None:
                since[0] = now()
            return since[0] is not None and now() - since[0] >= 1.5
        if not wait_for(decided, 60, 0.1):
            self.fail.append("sluiced did not decide on the store 60 s after a fault")
            return False
        self.recover_s.append(now() - t)
        return True

    def exact(self, why):
        """A fresh key of the limit-5 rule: exactly 5 allowed, remaining
        4..0, then denied, no store_error.  A decision can still time out
        on a loaded machine (timeout_ms is short) and be answered fail-open:
        such an attempt is counted and repeated on another fresh key, up to
        3 attempts; a wrong answer without store_error fails at once."""
        want = [(200, True, EXACT_LIMIT - 1 - i, False) for i in range(EXACT_LIMIT)] + \
            [(429, False, 0, False)] * 2
        for attempt in range(3):
            self.n += 1
            key = "fresh-%s-%d-%d" % (self.a.mode, os.getpid(), self.n)
            got = []
            for _ in range(EXACT_LIMIT + 2):
                try:
                    st, j = self.s.check("exact", key)
                    got.append((st, j["allowed"], j["remaining"], j["store_error"]))
                except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                    got.append(repr(e))
            if got == want:
                self.exact_ok += 1
                return
            timeouts = sum(1 for g in got if isinstance(g, tuple) and g[3])
            self.exact_timeouts += timeouts
            log("exact admission after %s, attempt %d: %s" % (why, attempt + 1, got))
            if not timeouts:
                break
        self.exact_bad.append((why, got))
        log("exact admission WRONG after %s" % why)

    def quiet_point(self):
        v = self.s.sample()
        if v:
            self.quiet_fds.append(v[1])

    # --- faults ---------------------------------------------------------------------------
    def away_begin(self):
        self._away = now()

    def away_end(self):
        self.away.append((self._away, now()))

    def f_freeze(self):
        m = self.topo.master()
        self.away_begin()
        m.signal(signal.SIGSTOP)
        time.sleep(self.a.freeze_s)
        m.signal(signal.SIGCONT)
        self.away_end()

    def f_kill(self):
        m = self.topo.master()
        self.away_begin()
        m.kill()
        time.sleep(2)
        # Standalone: the same server comes back empty.  Sentinel: the old
        # master comes back as a plain server and the sentinels turn it
        # into a replica of the promoted one.
        m.start(extra=[])
        if self.topo.mode == "sentinel":
            wait_for(lambda: self.topo.master() is not m or self.topo.stable(), 30, 0.2)
        self.away_end()

    def f_failover(self):
        old = self.topo.master()
        self.away_begin()
        for _ in range(30):
            if rcli(self.topo.sentinels[0], "SENTINEL", "FAILOVER", "soak") == "OK":
                break
            time.sleep(1)  # NOGOODSLAVE until the replica is judged ready
        wait_for(lambda: self.topo.master() is not old, 30, 0.2)
        self.away_end()

    def f_reload(self):
        gen = self.s.logtext().count("config_reloaded")
        ref = self.s.logtext().count("config_reload_refused")
        self.s.write(self.cfg("sliding_window", 3 + self.n % 3))  # changes only rule soak
        self.s.proc.send_signal(signal.SIGHUP)
        if wait_for(lambda: self.s.logtext().count("config_reloaded") > gen, 10):
            self.reloads[0] += 1
        else:
            self.fail.append("a good config was not reloaded within 10 s")
        self.s.write(BAD_CONFIG.format(timeout_ms=self.a.timeout_ms))
        self.s.proc.send_signal(signal.SIGHUP)
        if wait_for(lambda: self.s.logtext().count("config_reload_refused") > ref, 10):
            self.reloads[1] += 1
        else:
            self.fail.append("a bad config was not refused within 10 s")
        self.s.write(self.cfg())  # the file is good again for the next reload
        self.exact("a refused reload")  # the old config still decides

    def f_slow(self):
        """Slowloris and abandoned connections, all at once; then waits
        for sluiced to close every one itself (request timeout 408, idle
        timeout) and counts those it closed."""
        socks = []
        req = (b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n"
               b'{"rule":"exact","key":"slow"')
        for i in range(self.a.slow_conns):
            s = socket.create_connection(("127.0.0.1", self.s.port), 5)
            s.setblocking(False)
            socks.append([s, 0 if i % 2 == 0 else -1])  # even: slowloris; odd: abandoned
            if i % 2:
                s.send(req[:40])  # half a request, then nothing, never read
        # Others reset in the middle of a request.
        for i in range(self.a.slow_conns // 2):
            s = socket.create_connection(("127.0.0.1", self.s.port), 5)
            s.send(req[: 20 + i % 40])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        end = now() + self.a.slow_wait_s
        open_ = len(socks)
        while open_ and now() < end:
            for e in socks:
                s, pos = e
                if s is None:
                    continue
                try:
                    if s.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    e[0] = None
                    open_ -= 1
                    continue
                if pos >= 0:  # slowloris: one byte a second, looping the request
                    try:
                        s.send(req[pos % len(req): pos % len(req) + 1])
                        e[1] = pos + 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close()
                        e[0] = None
                        open_ -= 1
            time.sleep(1)
        self.slow_closed[0] += len(socks) - open_
        self.slow_closed[1] += len(socks)
        for e in socks:
            if e[0] is not None:
                e[0].close()
        if open_:
            self.fail.append("%d slow/abandoned connections still open after %d s"
                             % (open_, self.a.slow_wait_s))

    # --- the run --------------------------------------------------------------------------
    def run(self):
        a = self.a
        log("mode %s, %d s, tmp %s" % (a.mode, a.seconds, self.d))
        self.topo = Topology(a.mode, self.d)
        self.s = Sluiced(a.sluiced, self.d, self.topo.url(), a.workers, self.cfg())
        self.sampler = Sampler(self.s)
        self.sampler.start()
        self.probe = Probe(self.s)
        self.probe.start()
        self.dog = Watchdog()
        self.dog.start()
        self.series_path = os.path.join(self.d, "wrk.series")
        env = dict(os.environ, SOAK_KEYS=str(a.keys), SOAK_WRK_SERIES=self.series_path,
                   SOAK_BOUND_US=str((a.timeout_ms + a.margin_ms) * 1000))
        wrk_out = os.path.join(self.d, "wrk.out")
        with open(wrk_out, "wb") as f:
            # one connection per thread: soak_wrk.lua pairs request and response
            wrk = subprocess.Popen(["wrk", "-t", str(a.conns), "-c", str(a.conns),
                                    "-d", "%ds" % a.seconds, "--timeout", "5s", "-s", a.lua,
                                    "http://127.0.0.1:%d/v1/authorize" % self.s.port],
                                   stdout=f, stderr=subprocess.STDOUT, env=env)
        PROCS.append(wrk)
        # the server's threads and the client's, which times every response
        self.sched = SchedWatch(self.s.proc.pid)
        self.sched.start()
        self.wsched = SchedWatch(wrk.pid)
        self.wsched.start()
        t_end = now() + a.seconds
        self.warm_end = now() + a.warmup
        self.exact("start")
        faults = ["freeze", "reload", "kill", "slow"]
        if a.mode == "sentinel":
            faults = ["freeze", "reload", "failover", "kill", "slow"]
        i = 0
        while now() < t_end - 45:  # room for one more fault and its recovery
            if self.s.proc.poll() is not None:
                break
            f = faults[i % len(faults)]
            i += 1
            log("fault %s (master %s)" % (f, self.topo.master().name))
            getattr(self, "f_" + f)()
            self.faults[f] = self.faults.get(f, 0) + 1
            if f in ("freeze", "kill", "failover"):
                if self.wait_recovered():
                    self.exact(f)
            if now() > self.warm_end:
                self.quiet_point()  # while wrk's connections are open, like the others
            time.sleep(a.pause_s)
        wrk.wait()
        self.probe.stop = True
        self.probe.join()
        if self.s.proc.poll() is None:
            self.exact("end")
        self.sampler.stop = True
        self.sampler.join()
        self.dog.stop = True
        self.dog.join()
        for w in (self.sched, self.wsched):
            w.stop = True
            w.join()
        with open(wrk_out) as f:
            self.wrk = f.read()
        self.series = []  # (second, max_us, responses, over the bound)
        if os.path.exists(self.series_path):
            with open(self.series_path) as f:
                self.series = sorted(tuple(int(x) for x in l.split()) for l in f if l.strip())
        with open(os.path.join(self.d, "probe.txt"), "w") as f:
            for r in self.probe.rows:
                f.write("%.3f %.1f %d %d\n" % (r[0], r[1] * 1000, r[2], r[3]))
        with open(os.path.join(self.d, "starve.txt"), "w") as f:
            for sec in sorted(self.dog.worst):
                f.write("%d %.1f\n" % (sec, self.dog.worst[sec] * 1000))
        with open(os.path.join(self.d, "sched.txt"), "w") as f:
            for k, t in enumerate(self.sched.times):
                f.write("%.3f %s\n" % (t, " ".join("%.1f" % (c[k] * 1000)
                                                    for c in self.sched.cum.values())))
        crashed = self.s.proc.poll()
        if crashed is None:
            self.s.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.s.proc.wait(20)
            except subprocess.TimeoutExpired:
                rc = "hung on SIGTERM"
        else:
            rc = "died during the soak with %s" % crashed
        return self.report(rc)

    def starved(self, t0, t1):
        """How long the machine kept the driver (around [t0, t1]) or one of
        sluiced's or wrk's threads (within it) off a CPU: a response late by no more
        than that is the machine's, not sluiced's."""
        return max(self.dog.around(t0, t1), self.sched.waited(t0, t1),
                   self.wsched.waited(t0, t1))

    def report(self, rc):
        a = self.a
        ok = True

        def crit(passed, text):
            nonlocal ok
            ok = ok and passed
            print("%s [%s] %s" % ("PASS" if passed else "FAIL", a.mode, text), flush=True)

        w = {}
        for line in self.wrk.splitlines():
            if line.startswith("soak_wrk:"):
                w = dict(kv.split("=") for kv in line.split()[1:])
        w = {k: int(v) for k, v in w.items()}
        bound_ms = a.timeout_ms + a.margin_ms
        print("# [%s] faults: %s; sluiced log: %s" % (a.mode, self.faults, self.s.log))
        if self.wrk and not w:
            print(self.wrk[-2000:])
        # every response: wrk's histogram, and the probe's own rows
        in_away = [r for r in self.probe.rows
                   if any(s - 0.001 <= r[0] <= e + 0.5 for s, e in self.away)]
        p_max = max((r[1] for r in self.probe.rows), default=0) * 1000
        a_max = max((r[1] for r in in_away), default=0) * 1000
        p_bad = [r for r in self.probe.rows if r[2] not in (200, 429)]
        print("# [%s] wrk: %d responses (%d allowed, %d denied, %d other) in %.0f s, "
              "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms; errors: connect %d read %d "
              "write %d timeout %d" % (
                  a.mode, w.get("responses", 0), w.get("s200", 0), w.get("s429", 0),
                  w.get("other", 0), w.get("duration_us", 0) / 1e6, w.get("p50_us", 0) / 1e3,
                  w.get("p99_us", 0) / 1e3, w.get("p999_us", 0) / 1e3, w.get("max_us", 0) / 1e3,
                  w.get("connect_err", 0), w.get("read_err", 0), w.get("write_err", 0),
                  w.get("timeout_err", 0)))
        print("# [%s] probe: %d responses, max %.1f ms; %d while Redis was away (%d with "
              "store_error), max %.1f ms; %d connection errors" % (
                  a.mode, len(self.probe.rows), p_max, len(in_away),
                  sum(1 for r in in_away if r[3]), a_max, len(self.probe.errors)))
        # how long sluiced kept failing after Redis was back: the probe's last
        # store_error answer after each outage, until the next fault
        rec = []
        starts = [w[0] for w in self.away[1:]] + [float("inf")]
        for (s0, e0), nxt in zip(self.away, starts):
            errs = [r[0] + r[1] for r in self.probe.rows if s0 <= r[0] < nxt and r[3]]
            rec.append(max(0.0, max(errs, default=e0) - e0))
        if rec:
            print("# [%s] the probe's last store_error answer (timeouts under load included) came "
                  "%.2f s (mean) / %.2f s (max) after Redis was back, over %d outages" % (
                      a.mode, sum(rec) / len(rec), max(rec), len(rec)))
        crit(rc == 0, "no crash: sluiced ran the whole soak and exited %s on SIGTERM" % rc)
        # Every response against timeout_ms + margin, allowing only for the
        # driver's own starvation around it (Watchdog): wrk's per-second
        # series (each response timed by soak_wrk.lua) and the probe's rows.
        def away_at(t0, t1):
            return any(s0 - 0.001 <= t1 and t0 <= e0 + 0.5 for s0, e0 in self.away)
        over = unexplained = 0
        worst_unexp = 0.0
        away_max = 0.0
        for sec, mx, n, ov in self.series:
            lat = mx / 1e6
            if away_at(sec, sec + 1 + lat):
                away_max = max(away_max, lat)
            if ov:
                over += ov
                if lat * 1000 > bound_ms + self.starved(sec, sec + 1 + lat) * 1000:
                    unexplained += ov
                    worst_unexp = max(worst_unexp, lat)
        p_over = p_unexp = 0
        for t, lat, st, se in self.probe.rows:
            if lat * 1000 > bound_ms:
                p_over += 1
                if lat * 1000 > bound_ms + self.starved(t, t + lat) * 1000:
                    p_unexp += 1
                    worst_unexp = max(worst_unexp, lat)
        starve_max = max(self.dog.worst.values(), default=0.0) * 1000
        print("# [%s] driver starvation (5 ms sleep overslept): worst %.0f ms; seconds with "
              "more than 100 ms: %d" % (a.mode, starve_max,
                                        sum(1 for v in self.dog.worst.values() if v > 0.1)))
        print("# [%s] run-queue wait (schedstat run_delay) of one thread within one second: "
              "sluiced worst %.0f ms, wrk worst %.0f ms" % (
                  a.mode, self.sched.worst_second() * 1000, self.wsched.worst_second() * 1000))
        print("# [%s] responses over %d ms: wrk %d (in %d of %d seconds), probe %d; not "
              "explained by the driver's starvation or sluiced's or wrk's run-queue wait around them: "
              "wrk %d, probe %d" % (
                  a.mode, bound_ms, over, sum(1 for x in self.series if x[3]), len(self.series),
                  p_over, unexplained, p_unexp))
        crit(bool(self.series) and unexplained == 0 and p_unexp == 0,
             "every response within timeout_ms %d + margin %d = %d ms, plus only the "
             "driver's starvation or sluiced's or wrk's run-queue wait measured around it (wrk max %.1f ms, probe max %.1f ms, "
             "while Redis away: wrk %.1f ms, probe %.1f ms; worst unexplained %.1f ms)" % (
                 a.timeout_ms, a.margin_ms, bound_ms, w.get("max_us", 0) / 1e3, p_max,
                 away_max * 1000, a_max, worst_unexp * 1000))
        crit(bool(w) and w["other"] == 0 and w["timeout_err"] == 0 and w["connect_err"] == 0
             and w["read_err"] == 0 and w["write_err"] == 0 and not p_bad
             and not self.probe.errors,
             "every response 200 or 429, no socket errors (wrk other %s, probe other %d, "
             "probe errors %s)" % (w.get("other"), len(p_bad), self.probe.errors[:3]))
        rows = [r for r in self.sampler.rows if r[0] >= self.warm_end]
        rss = [r[1] for r in rows]
        fds = [r[2] for r in rows]
        if rss:
            print("# [%s] after warm-up (%d s): %d samples, RSS %d..%d KiB (first %d, last %d), "
                  "fds %d..%d" % (a.mode, a.warmup, len(rows), min(rss), max(rss), rss[0],
                                  rss[-1], min(fds), max(fds)))
            crit(max(rss) - min(rss) <= a.rss_slack_kb,
                 "RSS flat after warm-up: max-min %d KiB <= %d KiB" % (max(rss) - min(rss),
                                                                        a.rss_slack_kb))
        else:
            crit(False, "no RSS samples after warm-up")
        q = self.quiet_fds
        crit(bool(q) and max(q) - min(q) <= a.fd_slack,
             "fd count flat after warm-up: at %d quiet points %s..%s (%s), max-min <= %d; "
             "peak %s during the slow-connection faults" % (
                 len(q), min(q, default="-"), max(q, default="-"), q[:40], a.fd_slack,
                 max(fds, default="-")))
        crit(self.slow_closed[0] == self.slow_closed[1],
             "sluiced closed %d of %d slow/abandoned connections itself" % tuple(self.slow_closed))
        crit(self.reloads[0] == self.reloads[1] == self.faults.get("reload", 0) and self.reloads[0] > 0,
             "SIGHUP: %d good configs reloaded, %d bad ones refused" % tuple(self.reloads))
        crit(not self.exact_bad and self.exact_ok > 1,
             "exact admission restored after Redis returned: %d of %d fresh keys got exactly %d "
             "allowed (recovery %.1f..%.1f s; %d decisions of these checks timed out under "
             "load and were repeated on a fresh key)" % (
                 self.exact_ok, self.exact_ok + len(self.exact_bad), EXACT_LIMIT,
                 min(self.recover_s, default=0), max(self.recover_s, default=0),
                 self.exact_timeouts))
        for why, got in self.exact_bad[:5]:
            print("#   wrong after %s: %s" % (why, got))
        for f in self.fail:
            crit(False, f)
        return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("standalone", "sentinel"), required=True)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--lua", required=True)
    ap.add_argument("--timeout-ms", type=int, default=50)
    ap.add_argument("--margin-ms", type=int, default=250)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--rss-slack-kb", type=int, default=4096)
    ap.add_argument("--fd-slack", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--slow-conns", type=int, default=40)
    ap.add_argument("--slow-wait-s", type=int, default=45)
    ap.add_argument("--freeze-s", type=float, default=3)
    ap.add_argument("--pause-s", type=float, default=3)
    a = ap.parse_args()
    global T0
    T0 = now()
    s = Soak(a)
    try:
        ok = s.run()
    finally:
        cleanup()
    shutil.rmtree(s.d, ignore_errors=True) if ok else None
    return 0 if ok else 1


T0 = now()
if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
