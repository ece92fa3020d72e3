#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""model.py - an independent reference model of sluice's decisions.

It shares no code and no formulas with src/core: every algorithm is written
the straightforward way from SPEC.md sections 1-2 (the sliding log is a list
of timestamps, GCRA keeps its theoretical arrival time as a
fractions.Fraction, the sliding window weighs with Fractions), and
retry_after is found by a binary search for the earliest instant at which the
same request would pass, not by a closed formula.  So when the C code and
this model agree, both are probably right.

Commands (stdlib only, /usr/bin/python3):
  model.py gen   [NAME...]  write tests/vectors/NAME.yaml and NAME.out from
                            the SCENARIOS table below and the hand-written NAME.in
  model.py check [NAME...]  exit 1 if a committed .yaml or .out differs
  model.py single ALGO LIMIT WINDOW_MS [BURST]
                            read 'TIME_MS COST' lines on stdin, print the fields
  model.py ctable FILE      check the vector table of tests/unit/core/test_algo.c
  model.py random NAME SEED COUNT
                            write a seeded random trace NAME.in over NAME's rules
"""

import math
import os
import re
import sys
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- the algorithms, straight from the SPEC definitions -------------------

class FixedWindow:
    """Window i = floor(t/W); counts[i] = cost admitted in it."""

    def __init__(self, L, W, B):
        self.L, self.W, self.cap = L, W, L
        self.counts = {}

    def n(self, t):
        return self.counts.get(t // self.W, 0)

    def allows(self, t, cq):
        return self.n(t) + cq <= self.L

    def admit(self, t, c):
        self.counts[t // self.W] = self.n(t) + c

    def remaining(self, t):
        return self.L - self.n(t)

    def reset_after(self, t):
        end = (t // self.W + 1) * self.W
        return end - t if self.n(t) > 0 else 0

    def horizon(self, t):
        return self.W


class SlidingLog:
    """Every admitted unit of cost is one timestamp in a list."""

    def __init__(self, L, W, B):
        self.L, self.W, self.cap = L, W, L
        self.times = []

    def inside(self, t):
        return [x for x in self.times if t - self.W < x <= t]

    def allows(self, t, cq):
        return len(self.inside(t)) + cq <= self.L

    def admit(self, t, c):
        self.times.extend([t] * c)

    def remaining(self, t):
        return self.L - len(self.inside(t))

    def reset_after(self, t):
        live = self.inside(t)
        return max(live) + self.W - t if live else 0

    def horizon(self, t):
        return self.W


class SlidingWindow:
    """The weighted counter: p*(W-e)/W + n + c <= L, in Fractions."""

    def __init__(self, L, W, B):
        self.L, self.W, self.cap = L, W, L
        self.counts = {}

    def pne(self, t):
        j = t // self.W
        return self.counts.get(j - 1, 0), self.counts.get(j, 0), t - j * self.W

    def weighted_prev(self, t):
        p, _, e = self.pne(t)
        return Fraction(p * (self.W - e), self.W)

    def allows(self, t, cq):
        _, n, _ = self.pne(t)
        return self.weighted_prev(t) + n + cq <= self.L

    def admit(self, t, c):
        j = t // self.W
        self.counts[j] = self.counts.get(j, 0) + c

    def remaining(self, t):
        _, n, _ = self.pne(t)
        return max(0, math.floor(self.L - self.weighted_prev(t)) - n)

    def reset_after(self, t):
        # the end of the last window whose count still weighs
        p, n, _ = self.pne(t)
        j = t // self.W
        if n > 0:
            return (j + 2) * self.W - t
        if p > 0:
            return (j + 1) * self.W - t
        return 0

    def horizon(self, t):
        return 2 * self.W


class Gcra:
    """GCRA with an exact rational theoretical arrival time (ms)."""

    def __init__(self, L, W, B, leaky=False):
        self.L, self.W, self.cap = L, W, B
        self.T = Fraction(W, L)
        self.tat = Fraction(0)
        self.leaky = leaky

    def q(self, t):
        return max(Fraction(0), self.tat - t) / self.T

    def allows(self, t, cq):
        return self.q(t) + cq <= self.cap

    def admit(self, t, c):
        self.tat = max(self.tat, Fraction(t)) + c * self.T

    def remaining(self, t):
        return math.floor(self.cap - self.q(t))

    def reset_after(self, t):
        return math.ceil(max(Fraction(0), self.tat - t))

    def delay(self, t):
        return math.ceil(self.q(t) * self.T) if self.leaky else 0

    def horizon(self, t):
        return max(1, math.ceil(self.tat - t))


ALGOS = {
    "fixed_window": FixedWindow,
    "sliding_log": SlidingLog,
    "sliding_window": SlidingWindow,
    "token_bucket": Gcra,
    "leaky_bucket": lambda L, W, B: Gcra(L, W, B, leaky=True),
}


def retry_after(lim, t, cq):
    """Earliest d > 0 with the same request allowed at t+d (binary search)."""
    hi = lim.horizon(t)
    assert lim.allows(t + hi, cq), "horizon too short"
    lo = 0  # denied at t + lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lim.allows(t + mid, cq):
            hi = mid
        else:
            lo = mid
    return hi


def decide(limits, t, c):
    """One decision over a list of limiters; returns the six output fields."""
    cq = max(c, 1)
    verdict = [cq <= lim.cap and lim.allows(t, cq) for lim in limits]
    allowed = all(verdict)
    delays = [lim.delay(t) if isinstance(lim, Gcra) else 0 for lim in limits]
    if allowed and c > 0:
        for lim in limits:
            lim.admit(t, c)
    rows = []
    for lim, ok, delay in zip(limits, verdict, delays):
        if ok:
            retry = 0
        elif cq > lim.cap:
            retry = -1
        else:
            retry = retry_after(lim, t, cq)
        rows.append({"allowed": ok, "limit": lim.cap, "remaining": lim.remaining(t),
                     "reset": lim.reset_after(t), "retry": retry,
                     "delay": delay if allowed else 0})
    return combine(rows, allowed)


def combine(rows, allowed):
    if allowed:
        pick = min(range(len(rows)), key=lambda i: (rows[i]["remaining"], i))
    else:
        denying = [i for i, r in enumerate(rows) if not r["allowed"]]
        rank = lambda i: (math.inf if rows[i]["retry"] == -1 else rows[i]["retry"], -i)
        pick = max(denying, key=rank)
    r = rows[pick]
    return (1 if allowed else 0, r["limit"], min(x["remaining"] for x in rows), r["reset"],
            r["retry"], max(x["delay"] for x in rows))


# ---- scenarios: configs of the vector table ---------------------------------

def L(algorithm, limit, window, burst=None):
    d = {"algorithm": algorithm, "limit": limit, "window": window}
    if burst is not None:
        d["burst"] = burst
    return d


SCENARIOS = {
    "fixed_window": [
        {"name": "fw3", "limits": [L("fixed_window", 3, "1s")]},
        {"name": "fw7", "limits": [L("fixed_window", 7, "37ms")]},
        {"name": "fwhour", "limits": [L("fixed_window", 5000, "1h")]},
    ],
    "sliding_window": [
        {"name": "sw3", "limits": [L("sliding_window", 3, "1s")]},
        {"name": "sw7", "limits": [L("sliding_window", 7, "37ms")]},
        {"name": "swhour", "limits": [L("sliding_window", 5000, "1h")]},
    ],
    "sliding_log": [
        {"name": "sl3", "limits": [L("sliding_log", 3, "1s")]},
        {"name": "sl7", "limits": [L("sliding_log", 7, "37ms")]},
        {"name": "sl5", "limits": [L("sliding_log", 5, "1m")]},
    ],
    "buckets": [
        {"name": "tb3", "limits": [L("token_bucket", 3, "1s", 5)]},
        {"name": "tb7", "limits": [L("token_bucket", 7, "37ms")]},
        {"name": "tbhour", "limits": [L("token_bucket", 5000, "1h", 10)]},
        {"name": "lb3", "limits": [L("leaky_bucket", 3, "1s", 4)]},
        {"name": "lb1", "limits": [L("leaky_bucket", 1, "250ms", 1)]},
    ],
    "multi_tier": [
        {"name": "api", "limits": [L("token_bucket", 2, "1s", 4),
                                   L("fixed_window", 6, "1m"),
                                   L("sliding_log", 5, "10s")]},
        {"name": "shaped", "limits": [L("leaky_bucket", 4, "1s", 3),
                                      L("sliding_window", 10, "5s")]},
        {"name": "tiered", "tiers": {
            "free": [L("sliding_window", 2, "1s")],
            "basic": [L("fixed_window", 4, "1s"), L("token_bucket", 1, "100ms", 2)],
            "premium": [L("token_bucket", 10, "1s", 10)],
        }},
    ],
    "tier_change": [
        {"name": "api", "tiers": {
            "free": [L("fixed_window", 2, "1h")],
            "basic": [L("fixed_window", 3, "1h")],
        }},
        {"name": "mixed", "tiers": {
            "free": [L("token_bucket", 2, "1s", 3), L("sliding_log", 4, "10s")],
            "basic": [L("sliding_window", 5, "10s")],
            "premium": [L("leaky_bucket", 10, "1s", 6)],
        }},
    ],
    "random_mix": [
        {"name": "mix", "limits": [L("fixed_window", 4, "100ms"),
                                   L("sliding_window", 9, "450ms"),
                                   L("sliding_log", 12, "1s"),
                                   L("token_bucket", 7, "333ms", 3)]},
        {"name": "drip", "limits": [L("leaky_bucket", 5, "1s", 6)]},
        {"name": "one", "limits": [L("sliding_window", 3, "7ms")]},
    ],
}

UNITS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


def duration_ms(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", s)
    return int(m.group(1)) * UNITS[m.group(2)]


def flow(d):
    return "{ " + ", ".join("%s: %s" % (k, v) for k, v in d.items()) + " }"


def to_yaml(name, rules):
    out = ["# SPDX-License-Identifier: MIT",
           "# Decision vectors '%s': generated by tests/vectors/model.py gen; do not edit." % name,
           "store: memory://", "rules:"]
    for r in rules:
        out += ["  - name: %s" % r["name"],
                "    match: { path: /%s }" % r["name"],
                "    key: ip"]
        if "limits" in r:
            out.append("    limits:")
            out += ["      - %s" % flow(x) for x in r["limits"]]
        else:
            out.append("    tiers:")
            for tier, lims in r["tiers"].items():
                out.append("      %s:" % tier)
                out += ["        - %s" % flow(x) for x in lims]
    return "\n".join(out) + "\n"


def make_limits(specs):
    return [ALGOS[s["algorithm"]](s["limit"], duration_ms(s["window"]),
                                  s.get("burst", s["limit"])) for s in specs]


def replay(rules, lines):
    """Runs replay input lines against fresh state; returns the output lines."""
    by_name = {r["name"]: r for r in rules}
    state = {}
    out, last = [], 0
    for lineno, line in enumerate(lines, 1):
        f = line.split("#", 1)[0].split()
        if not f:
            continue
        t, rule, key = int(f[0]), f[1], f[2]
        c = int(f[3]) if len(f) > 3 else 1
        assert t >= last, "line %d: time goes backwards" % lineno
        last = t
        rule, _, tier = rule.partition("@")
        r = by_name[rule]
        if "tiers" in r:
            tiers = r["tiers"]
            tier = tier if tier in tiers else ("free" if "free" in tiers else next(iter(tiers)))
            specs = tiers[tier]
        else:
            assert not tier, "line %d: tier on a rule without tiers" % lineno
            specs = r["limits"]
        # each tier of a rule keeps its own state (SPEC section 4): a key
        # that changes tier never resets a counter; an unknown tier is the
        # fallback tier, state included
        sk = (rule, tier, key)
        if sk not in state:
            state[sk] = make_limits(specs)
        out.append("\t".join(str(v) for v in decide(state[sk], t, c)))
    return out


# ---- commands ----------------------------------------------------------------

def outputs(name):
    with open(os.path.join(HERE, name + ".in")) as f:
        lines = f.read().splitlines()
    text = "\n".join(replay(SCENARIOS[name], lines)) + "\n"
    return {name + ".yaml": to_yaml(name, SCENARIOS[name]), name + ".out": text}


def cmd_gen(names):
    for name in names or SCENARIOS:
        for fn, text in outputs(name).items():
            with open(os.path.join(HERE, fn), "w") as f:
                f.write(text)
            print("wrote", fn)
    return 0


def cmd_check(names):
    bad = 0
    for name in names or SCENARIOS:
        for fn, text in outputs(name).items():
            path = os.path.join(HERE, fn)
            have = open(path).read() if os.path.exists(path) else None
            if have != text:
                print("DIFFERS: %s (run model.py gen %s)" % (fn, name))
                bad += 1
    print("model check: %d scenario(s), %d file(s) differ" % (len(names or SCENARIOS), bad))
    return 1 if bad else 0


def cmd_single(args):
    algo, lim, win = args[0], int(args[1]), int(args[2])
    burst = int(args[3]) if len(args) > 3 and int(args[3]) > 0 else lim
    limits = [ALGOS[algo](lim, win, burst)]
    for line in sys.stdin:
        f = line.split("#", 1)[0].split()
        if f:
            print("\t".join(str(v) for v in decide(limits, int(f[0]), int(f[1]))))
    return 0


C_ALGOS = {"FIXED_WINDOW": "fixed_window", "SLIDING_LOG": "sliding_log",
           "SLIDING_WINDOW": "sliding_window", "TOKEN_BUCKET": "token_bucket",
           "LEAKY_BUCKET": "leaky_bucket"}
NUM = r"\s*(-?\d+)(?:LL)?\s*"


def cmd_ctable(path):
    """Checks every single-limit vector of test_algo.c against the model."""
    src = open(path).read()
    arrays = {}
    for m in re.finditer(r"^static const vec_step (\w+)\[\] = \{(.*?)\n\};", src, re.S | re.M):
        rows = re.findall(r"\{" + ",".join([NUM] * 7) + r"\}", m.group(2))
        arrays[m.group(1)] = [tuple(int(x) for x in r) for r in rows]
    vecs = re.findall(r'\{"([^"]+)",\s*\{SLUICE_(\w+),' + ",".join([NUM] * 3) +
                      r"\},\s*(\w+),", src)
    bad = steps = 0
    for name, algo, lim, win, burst, arr in vecs:
        lim, win, burst = int(lim), int(win), int(burst)
        limits = [ALGOS[C_ALGOS[algo]](lim, win, burst if burst > 0 else lim)]
        for row in arrays[arr]:
            steps += 1
            got = decide(limits, row[0], row[1])
            want = row[2:]
            if (got[0], got[2], got[3], got[4], got[5]) != want:
                print("MISMATCH %s t=%d cost=%d: C table %s, model %s" %
                      (name, row[0], row[1], want, (got[0],) + got[2:]))
                bad += 1
    print("ctable: %d vectors, %d steps, %d mismatches" % (len(vecs), steps, bad))
    return 1 if bad or not vecs else 0


def cmd_random(name, seed, count):
    """A random trace: bursts, idle gaps, peeks, big costs, a few keys, tiers."""
    import random
    rng = random.Random(seed)
    rules = SCENARIOS[name]
    t = rng.choice([0, 1764300000000])
    lines = ["# random trace: model.py random %s %d %d" % (name, seed, count)]
    for _ in range(count):
        t += rng.choice([0, 0, 0, 1, 2, 3, 7, 50, 100, 333, 1000, 5000])
        r = rng.choice(rules)
        cost = rng.choice([None, None, None, None, 0, 2, 3, 5, 13])
        key = "k%d" % rng.randint(1, 3)
        line = "%d %s %s" % (t, r["name"], key)
        lines.append(line if cost is None else "%s %d" % (line, cost))
    with open(os.path.join(HERE, name + ".in"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":
        return cmd_gen(args)
    if cmd == "check":
        return cmd_check(args)
    if cmd == "single":
        return cmd_single(args)
    if cmd == "random":
        return cmd_random(args[0], int(args[1]), int(args[2]))
    if cmd == "ctable":
        return cmd_ctable(args[0])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
