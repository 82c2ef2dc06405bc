"""Tests of test/fault/checkers.py: each checker passes valid histories and
catches the anomaly it exists for (positive controls).

Run: python3 test/fault/checkers_test.py   (exits non-zero on failure)
"""

import itertools
import json
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402
from checkers import (check_append, check_bank, check_register,  # noqa: E402
                      check_set, summarize)


class History:
    """Builds a history event by event; each event gets the next time."""

    def __init__(self):
        self.events = []

    def _ev(self, p, typ, f, value):
        self.events.append({"process": p, "type": typ, "f": f, "value": value,
                            "time": len(self.events) * 0.001})
        return self

    def invoke(self, p, f, value=None):
        return self._ev(p, "invoke", f, value)

    def ok(self, p, f, value=None):
        return self._ev(p, "ok", f, value)

    def fail(self, p, f, value=None):
        return self._ev(p, "fail", f, value)

    def info(self, p, f, value=None):
        return self._ev(p, "info", f, value)

    def call(self, p, f, value, result=None, typ="ok"):
        """An operation with no concurrency: invoke then completion."""
        self.invoke(p, f, value)
        return self._ev(p, typ, f, value if result is None else result)


# ---------------------------------------------------------------------------
# set
# ---------------------------------------------------------------------------

class SetTest(unittest.TestCase):
    def adds(self, h, values, p=0):
        for v in values:
            h.call(p, "add", v)

    def test_all_acknowledged_adds_read_is_valid(self):
        h = History()
        self.adds(h, range(10))
        h.call(1, "read", None, list(range(10)))
        h.call(2, "read", None, list(reversed(range(10))))
        r = check_set(h.events)
        self.assertIs(r["valid"], True)
        self.assertEqual(r["acknowledged"], 10)
        self.assertEqual(r["reads"], 2)
        self.assertEqual(r["lost"], [])

    def test_lost_acknowledged_add_is_invalid(self):
        h = History()
        self.adds(h, range(5))
        h.call(1, "read", None, [0, 1, 3, 4])
        r = check_set(h.events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["lost"], [2])

    def test_read_of_never_attempted_element_is_invalid(self):
        h = History()
        self.adds(h, [1, 2])
        h.call(1, "read", None, [1, 2, 99])
        r = check_set(h.events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["unexpected"], [99])

    def test_add_acknowledged_after_read_began_is_not_lost(self):
        h = History()
        h.invoke(0, "add", 7).invoke(1, "read").ok(0, "add", 7).ok(1, "read", [])
        self.assertIs(check_set(h.events)["valid"], True)

    def test_info_add_read_counts_as_recovered(self):
        h = History()
        h.invoke(0, "add", 1).info(0, "add", 1)
        h.invoke(5, "add", 2)  # never completes
        h.call(1, "read", None, [1, 2])
        r = check_set(h.events)
        self.assertIs(r["valid"], True)
        self.assertEqual(r["recovered"], 2)

    def test_failed_add_read_and_duplicates_are_invalid(self):
        h = History()
        h.call(0, "add", 1, typ="fail")
        h.call(0, "add", 2)
        h.call(1, "read", None, [1, 2, 2])
        r = check_set(h.events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["failed_read"], [1])
        self.assertEqual(r["duplicates"], [2])

    def test_no_read_is_unknown(self):
        h = History()
        self.adds(h, [1])
        self.assertEqual(check_set(h.events)["valid"], "unknown")

    def test_each_final_read_is_checked(self):
        h = History()
        self.adds(h, [1, 2])
        h.call(1, "read", None, [1, 2])
        h.call(2, "read", None, [1])
        self.assertEqual(check_set(h.events)["lost"], [2])

    def test_nemesis_markers_are_ignored(self):
        h = History()
        h.info("nemesis", "start", "partition")
        h.call(0, "add", 1)
        h.info("nemesis", "stop", "partition")
        h.call("final-n1", "read", None, [1])
        self.assertIs(check_set(h.events)["valid"], True)

    def test_completion_without_invoke_raises(self):
        with self.assertRaises(ValueError):
            check_set([{"process": 0, "type": "ok", "f": "add", "value": 1}])


# ---------------------------------------------------------------------------
# bank
# ---------------------------------------------------------------------------

class BankTest(unittest.TestCase):
    ACCOUNTS = [0, 1, 2]

    def history(self, *reads):
        h = History()
        h.call(0, "transfer", {"from": 0, "to": 1, "amount": 5})
        for i, r in enumerate(reads):
            h.call(1 + i, "read", None, r)
        return h.events

    def test_reads_summing_to_total_are_valid(self):
        r = check_bank(self.history({0: 5, 1: 15, 2: 10}, {0: 10, 1: 10, 2: 10}),
                       30, self.ACCOUNTS)
        self.assertIs(r["valid"], True)
        self.assertEqual(r["reads"], 2)
        self.assertEqual(r["bad_reads"], [])

    def test_read_not_summing_to_total_is_invalid(self):
        r = check_bank(self.history({0: 5, 1: 10, 2: 10}), 30, self.ACCOUNTS)
        self.assertIs(r["valid"], False)
        self.assertEqual(len(r["bad_reads"]), 1)
        self.assertIn("sum to 25", r["bad_reads"][0]["reason"])

    def test_missing_or_extra_account_is_invalid(self):
        r = check_bank(self.history({0: 15, 1: 15}, {0: 10, 1: 10, 2: 5, 3: 5}),
                       30, self.ACCOUNTS)
        self.assertIs(r["valid"], False)
        reasons = [b["reason"] for b in r["bad_reads"]]
        self.assertIn("missing accounts", reasons[0])
        self.assertIn("unexpected accounts", reasons[1])

    def test_negative_balance_depends_on_flag(self):
        events = self.history({0: -5, 1: 25, 2: 10})
        self.assertIs(check_bank(events, 30, self.ACCOUNTS)["valid"], False)
        r = check_bank(events, 30, self.ACCOUNTS, allow_negative=True)
        self.assertIs(r["valid"], True)
        self.assertEqual(r["negative_count"], 1)

    def test_json_string_keys_match_integer_accounts(self):
        events = json.loads(json.dumps(self.history({0: 10, 1: 10, 2: 10})))
        self.assertIs(check_bank(events, 30, self.ACCOUNTS)["valid"], True)

    def test_bad_reads_are_capped_at_ten(self):
        r = check_bank(self.history(*[{0: 1, 1: 1, 2: 1}] * 12), 30, self.ACCOUNTS)
        self.assertEqual(len(r["bad_reads"]), 10)
        self.assertEqual(r["bad_read_count"], 12)


# ---------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------

def simulate_register(seed, n_ops, keys, workers, info_p=0.01, fail_p=0.01):
    """A real register simulation: each worker issues ops one at a time with
    random overlapping intervals; each op takes effect at a random point in
    its interval, applied to a sequential register in that order.  Some
    writes/cas time out (info; applied or not at random) or fail (not
    applied); a worker gets a new process number after an info.  Returns
    (history, ops) with ops in linearization order."""
    rng = random.Random(seed)
    ops = []
    per_worker = -(-n_ops // workers)
    for w in range(workers):
        t = rng.uniform(0, 0.002)
        for _ in range(per_worker):
            inv = t + rng.uniform(0, 0.001)
            lin = inv + rng.expovariate(1 / 0.002)
            ret = lin + rng.expovariate(1 / 0.002)
            t = ret
            f = rng.choices(["read", "write", "cas"], [5, 4, 1])[0]
            ops.append({"worker": w, "f": f, "key": rng.randrange(keys),
                        "inv": inv, "lin": lin, "ret": ret})
    state = {k: None for k in range(keys)}
    written = {k: [None] for k in range(keys)}
    counter = 0
    ops.sort(key=lambda o: o["lin"])
    for o in ops:
        k, r = o["key"], rng.random()
        applied, o["status"] = True, "ok"
        if r < info_p:
            o["status"], applied = "info", rng.random() < 0.5
        elif r < info_p + fail_p and o["f"] == "write":
            o["status"], applied = "fail", False
        if o["f"] == "read":
            o["arg"] = [k, None]
            o["result"] = [k, state[k]] if o["status"] == "ok" else o["arg"]
        elif o["f"] == "write":
            counter += 1
            o["arg"] = o["result"] = [k, counter]
            if applied:
                state[k] = counter
                written[k].append(counter)
        else:
            counter += 1
            old = state[k] if rng.random() < 0.6 else rng.choice(written[k])
            o["arg"] = o["result"] = [k, [old, counter]]
            swapped = applied and state[k] == old
            if o["status"] == "ok" and not swapped:
                o["status"] = "fail"
            if swapped:
                state[k] = counter
                written[k].append(counter)
    # process numbers: a worker moves to a new number after an info
    pid = list(range(workers))
    for o in sorted(ops, key=lambda o: o["inv"]):
        o["process"] = pid[o["worker"]]
        if o["status"] == "info":
            pid[o["worker"]] += workers
    events = []
    for o in ops:
        events.append((o["inv"], o, {"process": o["process"], "type": "invoke",
                                     "f": o["f"], "value": o["arg"], "time": o["inv"]}))
        events.append((o["ret"], o, {"process": o["process"], "type": o["status"],
                                     "f": o["f"], "value": o["result"], "time": o["ret"]}))
    events.sort(key=lambda e: e[0])
    for _, o, ev in events:
        if ev["type"] != "invoke":
            o["completion"] = ev
    return [ev for _, _, ev in events], ops


def corrupt_one_read(ops, rng):
    """Makes one ok read return a provably stale value: that of an ok write
    W_old which completed before another ok write W_next was invoked, where
    W_next completed before the read was invoked.  Returns the key."""
    writes = [o for o in ops if o["f"] == "write" and o["status"] == "ok"]
    reads = [o for o in ops if o["f"] == "read" and o["status"] == "ok"]
    rng.shuffle(reads)
    for r in reads[: len(reads) // 2]:
        k = r["key"]
        ws = sorted((w for w in writes if w["key"] == k and w["ret"] < r["inv"]),
                    key=lambda w: w["inv"])
        for w_next in reversed(ws):
            olds = [w for w in ws if w["ret"] < w_next["inv"]
                    and w["arg"][1] != r["result"][1]]
            if olds:
                r["completion"]["value"] = [k, olds[-1]["arg"][1]]
                return k
    raise AssertionError("no read to corrupt")


def pair_ops(history):
    """Independent pairing for the brute-force oracles: [(f, status,
    invoke value, completion value, invoke index, return index or None)]."""
    out, pending = [], {}
    for i, e in enumerate(history):
        if e["type"] == "invoke":
            pending[e["process"]] = len(out)
            out.append([e["f"], "info", e["value"], e["value"], i, None])
        else:
            op = out[pending.pop(e["process"])]
            op[1], op[3] = e["type"], e["value"]
            if e["type"] != "info":
                op[5] = i
    return out


def brute_linearizable(history):
    """Oracle: tries every order of the ops (one key) that respects real
    time; ok ops must all be placed, open-ended ones may be left out."""
    ops = [o for o in pair_ops(history)
           if o[1] != "fail" and not (o[0] == "read" and o[1] != "ok")]
    must = [i for i, o in enumerate(ops) if o[1] == "ok"]

    def go(placed, state):
        if all(i in placed for i in must):
            return True
        for i, (f, st, arg, res, inv, _ret) in enumerate(ops):
            if i in placed or any(j not in placed and ops[j][5] < inv for j in must):
                continue
            if f == "read":
                legal, new = state == res[1], state
            elif f == "write":
                legal, new = True, arg[1]
            else:
                legal, new = state == arg[1][0], arg[1][1]
            if legal and go(placed | {i}, new):
                return True
        return False
    return go(frozenset(), None)


def random_small_register_history(rng):
    """Up to ~9 ops by 3 processes over values {None, 1, 2}, random results
    and outcomes, random interleaving; processes renumber after an info."""
    ev, pending, left = [], {}, {p: rng.randint(1, 3) for p in range(3)}
    live, next_pid = [0, 1, 2], 3
    while live:
        p = rng.choice(live)
        if p in pending:
            f, v = pending.pop(p)
            typ = rng.choices(["ok", "fail", "info"], [6, 1, 1])[0]
            if f == "read" and typ == "ok":
                v = ["k", rng.choice([None, 1, 2])]
            ev.append({"process": p, "type": typ, "f": f, "value": v})
            if typ == "info":
                live.remove(p)
                if left[p]:
                    live.append(next_pid)
                    left[next_pid] = left[p]
                    next_pid += 1
        elif left[p]:
            left[p] -= 1
            f = rng.choice(["read", "write", "write", "cas"])
            v = (["k", None] if f == "read" else ["k", rng.choice([1, 2])]
                 if f == "write" else ["k", [rng.choice([None, 1, 2]), rng.choice([1, 2])]])
            pending[p] = (f, v)
            ev.append({"process": p, "type": "invoke", "f": f, "value": v})
        else:
            live.remove(p)
    return ev


class RegisterTest(unittest.TestCase):
    def test_sequential_history_is_valid(self):
        h = History()
        h.call(0, "read", ["x", None], ["x", None])
        h.call(0, "write", ["x", 1])
        h.call(1, "read", ["x", None], ["x", 1])
        h.call(1, "cas", ["x", [1, 2]])
        h.call(0, "cas", ["x", [1, 3]], typ="fail")
        h.call(0, "read", ["x", None], ["x", 2])
        r = check_register(h.events)
        self.assertIs(r["valid"], True)
        self.assertEqual(r["keys"], 1)
        self.assertIsNone(r["bad_key"])
        self.assertIsNone(r["witness"])

    def test_stale_read_after_completed_write_is_invalid(self):
        h = History()
        h.call(0, "write", ["x", 1])
        h.call(0, "write", ["x", 2])
        h.call(1, "read", ["x", None], ["x", 1])
        r = check_register(h.events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["bad_key"], "x")
        self.assertIn("read", r["witness"])
        self.assertIn("process 1", r["witness"])

    def test_read_of_initial_value_after_write_is_invalid(self):
        h = History()
        h.call(0, "write", ["x", 1])
        h.call(1, "read", ["x", None], ["x", None])
        self.assertIs(check_register(h.events)["valid"], False)

    def test_concurrent_read_may_see_either_value(self):
        for seen in (None, 1):
            h = History()
            h.invoke(0, "write", ["x", 1]).invoke(1, "read", ["x", None])
            h.ok(1, "read", ["x", seen]).ok(0, "write", ["x", 1])
            h.call(1, "read", ["x", None], ["x", 1])
            self.assertIs(check_register(h.events)["valid"], True, seen)

    def test_two_reads_cannot_see_new_then_old(self):
        h = History()
        h.invoke(0, "write", ["x", 1])
        h.call(1, "read", ["x", None], ["x", 1])
        h.call(2, "read", ["x", None], ["x", None])
        h.ok(0, "write", ["x", 1])
        self.assertIs(check_register(h.events)["valid"], False)

    def test_info_write_that_shows_up_later_is_valid(self):
        h = History()
        h.call(0, "write", ["x", 1])
        h.invoke(1, "write", ["x", 2]).info(1, "write", ["x", 2])
        h.call(0, "read", ["x", None], ["x", 1])
        h.call(0, "read", ["x", None], ["x", 2])
        h.call(0, "read", ["x", None], ["x", 2])
        self.assertIs(check_register(h.events)["valid"], True)

    def test_info_write_cannot_take_effect_twice(self):
        h = History()
        h.invoke(1, "write", ["x", 2]).info(1, "write", ["x", 2])
        h.call(0, "read", ["x", None], ["x", 2])
        h.call(0, "write", ["x", 3])
        h.call(0, "read", ["x", None], ["x", 2])
        self.assertIs(check_register(h.events)["valid"], False)

    def test_uncompleted_write_is_open_ended(self):
        h = History()
        h.invoke(1, "write", ["x", 5])
        h.call(0, "read", ["x", None], ["x", None])
        h.call(0, "read", ["x", None], ["x", 5])
        self.assertIs(check_register(h.events)["valid"], True)

    def test_failed_write_must_not_be_read(self):
        h = History()
        h.call(0, "write", ["x", 1], typ="fail")
        h.call(1, "read", ["x", None], ["x", 1])
        self.assertIs(check_register(h.events)["valid"], False)

    def test_failed_and_info_reads_constrain_nothing(self):
        h = History()
        h.call(0, "write", ["x", 1])
        h.call(1, "read", ["x", None], ["x", 7], typ="fail")
        h.call(2, "read", ["x", None], ["x", 8], typ="info")
        self.assertIs(check_register(h.events)["valid"], True)

    def test_cas_that_swapped_needs_the_old_value(self):
        h = History()
        h.call(0, "write", ["x", 1])
        h.call(0, "cas", ["x", [2, 3]])
        self.assertIs(check_register(h.events)["valid"], False)

    def test_keys_are_checked_independently(self):
        h = History()
        h.call(0, "write", ["a", 1])
        h.call(0, "write", ["b", 1])
        h.call(0, "read", ["a", None], ["a", 1])
        h.call(0, "read", ["b", None], ["b", None])
        r = check_register(h.events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["keys"], 2)
        self.assertEqual(r["bad_key"], "b")

    def test_agrees_with_brute_force_on_small_random_histories(self):
        rng = random.Random(11)
        verdicts = set()
        for _ in range(1500):
            h = random_small_register_history(rng)
            want = brute_linearizable(h)
            self.assertIs(check_register(h)["valid"], want, h)
            verdicts.add(want)
        self.assertEqual(verdicts, {True, False})

    def test_simulated_concurrent_history_is_valid_and_fast(self):
        events, ops = simulate_register(seed=1, n_ops=6000, keys=3, workers=5)
        self.assertGreaterEqual(len(ops), 5000)
        self.assertGreater(sum(o["status"] == "info" for o in ops), 10)
        start = time.monotonic()
        r = check_register(events)
        elapsed = time.monotonic() - start
        self.assertIs(r["valid"], True, r["witness"])
        self.assertEqual(r["keys"], 3)
        self.assertLess(elapsed, 5.0)

    def test_simulated_history_with_one_stale_read_is_invalid(self):
        events, ops = simulate_register(seed=2, n_ops=6000, keys=3, workers=5)
        self.assertIs(check_register(events)["valid"], True)
        key = corrupt_one_read(ops, random.Random(3))
        r = check_register(events)
        self.assertIs(r["valid"], False)
        self.assertEqual(r["bad_key"], key)
        self.assertEqual(r["bad_keys"], [key])
        self.assertIn("read", r["witness"])

    def test_long_single_key_history_needs_no_recursion(self):
        events, _ = simulate_register(seed=4, n_ops=20000, keys=1, workers=3)
        r = check_register(events)
        self.assertIs(r["valid"], True, r["witness"])
        self.assertGreater(r["ops"], 15000)

    def test_time_limit_gives_unknown(self):
        events, _ = simulate_register(seed=5, n_ops=3000, keys=3, workers=5)
        r = check_register(events, time_limit_s=0)
        self.assertEqual(r["valid"], "unknown")
        self.assertEqual(r["unchecked_keys"], 3)


# ---------------------------------------------------------------------------
# list append
# ---------------------------------------------------------------------------

def ap(k, v):
    return ["append", k, v]


def rd(k, v=None):
    return ["r", k, v]


def invoke_form(mops):
    return [[f, k, None if f == "r" else v] for f, k, v in mops]


def brute_serializable(history, realtime=False):
    """Oracle: some subset of the info txns plus all ok txns, in some order
    (respecting real time if asked), reproduces every ok txn's reads."""
    ops = [o for o in pair_ops(history) if o[0] == "txn" and o[1] != "fail"]
    oks = [o for o in ops if o[1] == "ok"]
    infos = [o for o in ops if o[1] == "info"]
    for mask in range(1 << len(infos)):
        chosen = oks + [o for i, o in enumerate(infos) if mask >> i & 1]
        for perm in itertools.permutations(chosen):
            if realtime and any(a[5] is not None and a[5] < b[4]
                                for i, a in enumerate(perm) for b in perm[:i]):
                continue
            lists, good = {}, True
            for f, st, arg, res, _inv, _ret in perm:
                for m, k, v in (res if st == "ok" else arg):
                    if m == "append":
                        lists.setdefault(k, []).append(v)
                    elif st == "ok" and v != lists.get(k, []):
                        good = False
                if not good:
                    break
            if good:
                return True
    return False


def random_small_append_history(rng):
    """2-4 concurrent txns of 1-3 micro-ops on keys x, y with random read
    results (usually in append order) and random outcomes."""
    n, count, txns = rng.randint(2, 4), {"x": 0, "y": 0}, []
    for _ in range(n):
        mops = []
        for _ in range(rng.randint(1, 3)):
            k = rng.choice("xy")
            if rng.random() < 0.5:
                count[k] += 1
                mops.append(["append", k, count[k]])
            else:
                mops.append(["r", k, None])
        txns.append(mops)
    ev, invoked, done = [], set(), set()
    while len(done) < n:
        cands = [p for p in range(n) if p not in invoked or p not in done]
        p = rng.choice(cands)
        if p not in invoked:
            invoked.add(p)
            ev.append({"process": p, "type": "invoke", "f": "txn", "value": txns[p]})
            continue
        done.add(p)
        typ = rng.choices(["ok", "fail", "info"], [6, 1, 1])[0]
        value = txns[p]
        if typ == "ok":
            value = []
            for m, k, v in txns[p]:
                if m == "r":
                    vals = list(range(1, count[k] + 1))
                    rng.shuffle(vals)
                    v = vals[: rng.randint(0, len(vals))]
                    if rng.random() < 0.8:
                        v.sort()
                value.append([m, k, v])
        ev.append({"process": p, "type": typ, "f": "txn", "value": value})
    return ev


class AppendTest(unittest.TestCase):
    def txn(self, h, p, mops, typ="ok"):
        """A txn with no concurrency; mops carry the values read."""
        h.invoke(p, "txn", invoke_form(mops))
        h._ev(p, typ, "txn", mops if typ == "ok" else invoke_form(mops))

    def assertAnomaly(self, r, name):
        self.assertIs(r["valid"], False)
        self.assertIn(name, r["anomalies"], r["anomalies"])
        self.assertTrue(all(isinstance(s, str) for s in r["anomalies"][name]))

    def test_serial_history_is_valid(self):
        h = History()
        self.txn(h, 0, [ap("x", 1), rd("y", [])])
        self.txn(h, 1, [rd("x", [1]), ap("y", 1), ap("x", 2)])
        self.txn(h, 0, [ap("x", 3), rd("x", [1, 2, 3]), rd("y", [1])])
        self.txn(h, 2, [ap("z", 1)], typ="fail")
        self.txn(h, 1, [rd("x", [1, 2, 3]), rd("y", [1]), rd("z", [])])
        r = check_append(h.events)
        self.assertIs(r["valid"], True, r["anomalies"])
        self.assertEqual(r["txns"], 5)
        self.assertEqual(r["aborted"], 1)
        self.assertIs(check_append(h.events, realtime=True)["valid"], True)

    def test_random_serial_history_is_valid(self):
        rng = random.Random(7)
        state = {k: [] for k in "abcd"}
        h, n = History(), 0
        for i in range(2000):
            mops = []
            for _ in range(rng.randint(1, 4)):
                k = rng.choice("abcd")
                if rng.random() < 0.5:
                    mops.append(rd(k, list(state[k])))
                else:
                    n += 1
                    state[k].append(n)
                    mops.append(ap(k, n))
            self.txn(h, i % 5, mops)
        r = check_append(h.events, realtime=True)
        self.assertIs(r["valid"], True, r["anomalies"])
        self.assertEqual(r["committed"], 2000)

    def test_g0_write_cycle(self):
        h = History()
        self.txn(h, 0, [ap("x", 1), ap("y", 2)])
        self.txn(h, 1, [ap("x", 3), ap("y", 4)])
        self.txn(h, 2, [rd("x", [1, 3]), rd("y", [4, 2])])
        r = check_append(h.events)
        self.assertAnomaly(r, "G0")
        self.assertIn("-ww(", r["anomalies"]["G0"][0])

    def test_g1a_aborted_read(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)], typ="fail")
        self.txn(h, 1, [rd("x", [1])])
        self.assertAnomaly(check_append(h.events), "G1a")

    def test_info_txn_that_was_read_counts_as_committed(self):
        h = History()
        self.txn(h, 0, [ap("x", 1), ap("y", 1)], typ="info")
        self.txn(h, 1, [rd("x", [1])])
        self.txn(h, 1, [rd("y", [1])])
        r = check_append(h.events)
        self.assertIs(r["valid"], True, r["anomalies"])
        self.assertEqual(r["committed"], 3)

    def test_g1b_intermediate_read(self):
        h = History()
        self.txn(h, 0, [ap("x", 1), ap("x", 2)])
        self.txn(h, 1, [rd("x", [1])])
        self.assertAnomaly(check_append(h.events), "G1b")

    def test_g1c_circular_information_flow(self):
        h = History()
        h.invoke(0, "txn", [ap("x", 1), rd("y")])
        h.invoke(1, "txn", [ap("y", 1), rd("x")])
        h.ok(0, "txn", [ap("x", 1), rd("y", [1])])
        h.ok(1, "txn", [ap("y", 1), rd("x", [1])])
        r = check_append(h.events)
        self.assertAnomaly(r, "G1c")
        self.assertNotIn("G0", r["anomalies"])
        self.assertIn("-wr(", r["anomalies"]["G1c"][0])

    def test_g_single_lost_update(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)])
        h.invoke(1, "txn", [rd("x"), ap("x", 2)])
        h.invoke(2, "txn", [rd("x"), ap("x", 3)])
        h.ok(1, "txn", [rd("x", [1]), ap("x", 2)])
        h.ok(2, "txn", [rd("x", [1]), ap("x", 3)])
        self.txn(h, 0, [rd("x", [1, 2, 3])])
        r = check_append(h.events)
        self.assertAnomaly(r, "G-single")
        self.assertNotIn("G2", r["anomalies"])
        cycle = r["anomalies"]["G-single"][0]
        self.assertEqual(cycle.split("|")[0].count("-rw("), 1)

    def test_g2_write_skew(self):
        h = History()
        h.invoke(0, "txn", [rd("x"), rd("y"), ap("x", 1)])
        h.invoke(1, "txn", [rd("x"), rd("y"), ap("y", 1)])
        h.ok(0, "txn", [rd("x", []), rd("y", []), ap("x", 1)])
        h.ok(1, "txn", [rd("x", []), rd("y", []), ap("y", 1)])
        self.txn(h, 2, [rd("x", [1]), rd("y", [1])])
        r = check_append(h.events)
        self.assertAnomaly(r, "G2")
        self.assertNotIn("G-single", r["anomalies"])
        self.assertEqual(r["anomalies"]["G2"][0].split("|")[0].count("-rw("), 2)

    def test_incompatible_order(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)])
        self.txn(h, 0, [ap("x", 2)])
        self.txn(h, 1, [rd("x", [1, 2])])
        self.txn(h, 2, [rd("x", [2, 1])])
        self.assertAnomaly(check_append(h.events), "incompatible-order")

    def test_duplicate_elements(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)])
        self.txn(h, 1, [rd("x", [1, 1])])
        self.assertAnomaly(check_append(h.events), "duplicate-elements")

    def test_internal_read_must_see_own_append(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)])
        self.txn(h, 1, [ap("x", 2), rd("x", [1])])
        self.assertAnomaly(check_append(h.events), "internal")

    def test_read_of_value_never_appended(self):
        h = History()
        self.txn(h, 0, [rd("x", [9])])
        self.assertAnomaly(check_append(h.events), "unexpected-element")

    def test_agrees_with_brute_force_on_small_random_histories(self):
        rng = random.Random(12)
        verdicts = set()
        for _ in range(600):
            h = random_small_append_history(rng)
            for rt in (False, True):
                want = brute_serializable(h, rt)
                r = check_append(h, realtime=rt)
                self.assertIs(r["valid"], want, (rt, r["anomalies"], h))
                verdicts.add(want)
        self.assertEqual(verdicts, {True, False})

    def test_future_read_of_own_append(self):
        h = History()
        self.txn(h, 0, [rd("x", [1]), ap("x", 1)])
        self.assertAnomaly(check_append(h.events), "future-read")

    def test_unobserved_append_is_ordered_after_observed_ones(self):
        # T2 sees T1's append to y but not its append to x: fractured read.
        h = History()
        self.txn(h, 0, [ap("x", 1), ap("y", 1)])
        self.txn(h, 1, [rd("y", [1]), rd("x", [])])
        self.assertAnomaly(check_append(h.events), "G-single")

    def test_stale_read_is_only_a_realtime_anomaly(self):
        h = History()
        self.txn(h, 0, [ap("x", 1)])
        self.txn(h, 1, [rd("x", [])])
        self.txn(h, 2, [rd("x", [1])])
        self.assertIs(check_append(h.events)["valid"], True)
        r = check_append(h.events, realtime=True)
        self.assertAnomaly(r, "G-single-realtime")
        self.assertNotIn("G-single", r["anomalies"])


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class SummaryTest(unittest.TestCase):
    def test_one_line_per_checker(self):
        h = History()
        h.call(0, "add", 1)
        h.call(1, "read", None, [])
        s = summarize({
            "set": check_set(h.events),
            "bank": check_bank([], 10, [0]),
            "register": check_register([]),
            "append": check_append([]),
        })
        lines = s.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertTrue(lines[0].startswith("set: INVALID"))
        self.assertIn("lost=1", lines[0])
        self.assertTrue(lines[1].startswith("bank: UNKNOWN"))
        self.assertTrue(lines[2].startswith("register: valid"))
        self.assertTrue(lines[3].startswith("append: valid"))

    def test_results_are_json_serialisable(self):
        h = History()
        self.assertIsInstance(checkers.__all__, list)
        h.call(0, "write", ["x", 1])
        h.call(1, "read", ["x", None], ["x", 2])
        json.dumps(check_register(h.events))
        h2 = History()
        h2.invoke(0, "txn", [ap("x", 1)]).ok(0, "txn", [ap("x", 1)])
        h2.invoke(1, "txn", [rd("x")]).ok(1, "txn", [rd("x", [1, 1])])
        json.dumps(check_append(h2.events))


if __name__ == "__main__":
    unittest.main(verbosity=1)
