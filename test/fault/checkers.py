"""Consistency checkers for the fault-injection (Jepsen-style) harness.

Python 3.11 standard library only.

A history is a list of operations (dicts) in the real-time order of their
events:

    {"process": p, "type": "invoke"|"ok"|"fail"|"info", "f": str,
     "value": ..., "time": float_seconds}

Each process has at most one operation outstanding: an ``invoke`` is followed
by one completion from the same process.  ``ok`` means the operation took
effect, ``fail`` that it definitely did not, ``info`` that the outcome is
unknown.  ``info`` operations (and invokes left without a completion at the
end of the history) are open-ended: they may take effect at any moment after
their invoke, or never.  Real-time order is the order of events in the list
(the ``time`` field is only used in reports), so ops A precedes op B iff A's
completion event comes before B's invoke event.

Checkers (each returns a JSON-serialisable dict with at least "valid"):

    check_set(history)                                   set workload
    check_bank(history, total, accounts, allow_negative=False)
    check_register(history, time_limit_s=30)             linearizability
    check_append(history, realtime=False)                Elle-style list append
    summarize(results)                                   one line per checker

"valid" is True, False, or "unknown" (nothing could be checked, or the time
limit was reached).  Standalone "info" events (no invoke: nemesis markers)
are skipped, as are ops whose f a checker does not know.  Malformed
histories (an ok/fail with no outstanding invoke, an ok op without the
value its workload requires) raise ValueError: a checker must not pass a
history it could not read.
"""

from __future__ import annotations

import time as _time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Hashable, Iterable

__all__ = [
    "check_set",
    "check_bank",
    "check_register",
    "check_append",
    "summarize",
]


# ---------------------------------------------------------------------------
# History pairing
# ---------------------------------------------------------------------------

@dataclass
class Op:
    """One operation: an invoke paired with its completion.

    status is "ok", "fail" or "info"; an invoke with no completion is "info".
    inv/ret are event indexes in the history; ret is None for open-ended
    (info) operations, so they never precede anything in real time.
    """
    process: Any
    f: str
    status: str
    invoke_value: Any
    value: Any          # completion value (ok/fail/info), else the invoke value
    inv: int
    ret: int | None
    inv_time: float | None
    ret_time: float | None

    def describe(self) -> str:
        t = "" if self.inv_time is None else f" t={self.inv_time:.3f}"
        return (f"{self.f} {_short(self.value)} by process {self.process} "
                f"({self.status}, events {self.inv}..{self.ret}{t})")


def _pair(history: list[dict]) -> list[Op]:
    """Pairs invokes with completions, in invoke order.

    Guarantees: every invoke yields exactly one Op.  A second invoke from a
    process whose previous op is outstanding turns that previous op into an
    open-ended "info" op (sound: it only weakens what is assumed).  An
    "info" event with no outstanding invoke is a standalone marker (the
    nemesis's {"process": "nemesis", "type": "info", "f": "start"}) and is
    skipped.  An ok/fail with no outstanding invoke, or a completion with a
    different f, raises ValueError.
    """
    ops: list[Op] = []
    pending: dict[Any, Op] = {}
    for i, ev in enumerate(history):
        try:
            p, typ, f = ev["process"], ev["type"], ev["f"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"event {i} is malformed: {ev!r}") from e
        val = ev.get("value")
        t = ev.get("time")
        if typ == "invoke":
            if p in pending:   # previous op never completed: open-ended
                del pending[p]
            op = Op(p, f, "info", val, val, i, None, t, None)
            pending[p] = op
            ops.append(op)
        elif typ in ("ok", "fail", "info"):
            op = pending.pop(p, None)
            if op is None and typ == "info":
                continue       # a standalone marker, e.g. the nemesis's
            if op is None:
                raise ValueError(f"event {i}: {typ} from process {p!r} "
                                 f"with no outstanding invoke")
            if op.f != f:
                raise ValueError(f"event {i}: completion f={f!r} does not "
                                 f"match invoke f={op.f!r} (event {op.inv})")
            op.status = typ
            op.value = val
            if typ != "info":
                op.ret, op.ret_time = i, t
        else:
            raise ValueError(f"event {i}: unknown type {typ!r}")
    return ops


def _freeze(v: Any) -> Hashable:
    """A hashable equivalent of a JSON-ish value (lists -> tuples)."""
    if isinstance(v, list | tuple):
        t = tuple(v)
        try:
            hash(t)            # fast path: already only hashable scalars
            return t
        except TypeError:
            return tuple(_freeze(x) for x in t)
    if isinstance(v, dict):
        return tuple(sorted(((_freeze(k), _freeze(x)) for k, x in v.items()),
                            key=repr))
    return v


def _sorted(xs: Iterable) -> list:
    """Sorted list, falling back to repr order for mixed types."""
    xs = list(xs)
    try:
        return sorted(xs)
    except TypeError:
        return sorted(xs, key=repr)


def _short(v: Any, limit: int = 80) -> str:
    """repr(v), cut to `limit` characters."""
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _lst(v: Any) -> str:
    """A read list (tuple) for a report, shortened from the front if long:
    the end of a list is where anomalies show."""
    s = repr(list(v))
    return s if len(s) <= 60 else "[..." + s[-56:]


# ---------------------------------------------------------------------------
# Set
# ---------------------------------------------------------------------------

def check_set(history: list[dict]) -> dict:
    """Checks a grow-only set: adds of unique elements, then final reads.

    For every ok read R:
      lost       = adds acknowledged (ok) before R was invoked, absent from R
      unexpected = elements of R no add ever attempted
      failed_read= elements of R whose add failed (definitely not applied)
      duplicates = elements present more than once in R
    recovered counts info/open adds that some read saw.  valid is False if
    any of lost/unexpected/failed_read/duplicates is non-empty, "unknown"
    if there was no ok read, else True.

    Result: {"valid", "attempted", "acknowledged", "lost": sorted list,
             "unexpected": sorted list, "failed_read": sorted list,
             "duplicates": sorted list, "recovered": n, "reads": n}
    """
    ops = _pair(history)
    adds = [o for o in ops if o.f == "add"]
    reads = [o for o in ops if o.f == "read" and o.status == "ok"]
    attempted = {_freeze(o.invoke_value) for o in adds}
    failed = {_freeze(o.invoke_value) for o in adds if o.status == "fail"}
    unknown = {_freeze(o.invoke_value) for o in adds if o.status == "info"}
    # acknowledged element -> event index of its ok
    acked = {_freeze(o.invoke_value): o.ret for o in adds if o.status == "ok"}

    lost: set = set()
    unexpected: set = set()
    failed_read: set = set()
    duplicates: set = set()
    recovered: set = set()
    for r in reads:
        if not isinstance(r.value, list | tuple):
            raise ValueError(f"ok read without a list value: {r.describe()}")
        elems = [_freeze(x) for x in r.value]
        seen = set()
        for x in elems:
            if x in seen:
                duplicates.add(x)
            seen.add(x)
        lost |= {x for x, ret in acked.items() if ret < r.inv and x not in seen}
        unexpected |= seen - attempted
        failed_read |= seen & failed
        recovered |= seen & unknown

    if not reads:
        valid: bool | str = "unknown"
    else:
        valid = not (lost or unexpected or failed_read or duplicates)
    return {
        "valid": valid,
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "lost": _sorted(lost),
        "unexpected": _sorted(unexpected),
        "failed_read": _sorted(failed_read),
        "duplicates": _sorted(duplicates),
        "recovered": len(recovered),
        "reads": len(reads),
    }


# ---------------------------------------------------------------------------
# Bank
# ---------------------------------------------------------------------------

def check_bank(history: list[dict], total: int, accounts: Iterable,
               allow_negative: bool = False) -> dict:
    """Checks the bank workload's ok reads (transfers are not inspected).

    Every ok read must hold exactly `accounts` (compared as strings, so JSON
    round-trips of integer keys are fine), numeric balances summing to
    `total`.  Negative balances are collected separately in "negative"; they
    make the history invalid unless allow_negative.  valid is "unknown" when
    there is no ok read.

    Result: {"valid", "reads": n, "bad_reads": [up to 10 {"index",
             "process", "time", "value", "reason"}], "bad_read_count": n,
             "negative": [up to 10 such dicts], "negative_count": n}
    """
    want = {str(a) for a in accounts}
    ops = _pair(history)
    reads = [o for o in ops if o.f == "read" and o.status == "ok"]
    bad: list[dict] = []
    neg: list[dict] = []
    n_bad = n_neg = 0

    def entry(o: Op, reason: str) -> dict:
        return {"index": o.ret, "process": o.process, "time": o.ret_time,
                "value": o.value, "reason": reason}

    for r in reads:
        v = r.value
        if not isinstance(v, dict):
            n_bad += 1
            if len(bad) < 10:
                bad.append(entry(r, "read value is not a dict"))
            continue
        reasons = []
        have = {str(k): b for k, b in v.items()}
        missing, extra = want - have.keys(), have.keys() - want
        if missing:
            reasons.append(f"missing accounts {_sorted(missing)}")
        if extra:
            reasons.append(f"unexpected accounts {_sorted(extra)}")
        nonnum = [k for k, b in have.items()
                  if isinstance(b, bool) or not isinstance(b, int | float)]
        if nonnum:
            reasons.append(f"non-numeric balances for {_sorted(nonnum)}")
        else:
            s = sum(have.values())
            if s != total:
                reasons.append(f"balances sum to {s}, expected {total}")
            negatives = {k: b for k, b in have.items() if b < 0}
            if negatives:
                n_neg += 1
                if len(neg) < 10:
                    neg.append(entry(r, f"negative balances {negatives}"))
                if not allow_negative:
                    reasons.append(f"negative balances {negatives}")
        if reasons:
            n_bad += 1
            if len(bad) < 10:
                bad.append(entry(r, "; ".join(reasons)))

    return {
        "valid": "unknown" if not reads else n_bad == 0,
        "reads": len(reads),
        "bad_reads": bad,
        "bad_read_count": n_bad,
        "negative": neg,
        "negative_count": n_neg,
    }


# ---------------------------------------------------------------------------
# Register (linearizability)
# ---------------------------------------------------------------------------

_READ, _WRITE, _CAS = 0, 1, 2


class _Timeout(Exception):
    pass


def _register_ops_by_key(ops: list[Op]) -> dict[Hashable, list[tuple]]:
    """Splits register ops by key and drops those that constrain nothing.

    Returns key -> [(kind, arg1, arg2, must, op)] in invoke order, where
    must=True for ok ops (they must be linearized before their return) and
    False for open-ended ones.  Dropped: fail ops (they did not happen),
    reads that are not ok, and open-ended writes/cas whose written value no
    kept read or cas could find in the register (removing such an op from a
    linearization leaves every other op legal, so dropping it is exact and
    spares the search from placing it everywhere).
    """
    by_key: dict[Hashable, list[tuple]] = {}
    for o in ops:
        if o.f not in ("read", "write", "cas") or o.status == "fail":
            continue
        if o.f == "read" and o.status != "ok":
            continue
        src = o.value if o.f == "read" else o.invoke_value
        if not isinstance(src, list | tuple) or len(src) != 2:
            raise ValueError(f"register op without [key, value]: {o.describe()}")
        key, v = _freeze(src[0]), src[1]
        if o.f == "read":
            ent = (_READ, _freeze(v), None)
        elif o.f == "write":
            ent = (_WRITE, _freeze(v), None)
        else:
            if not isinstance(v, list | tuple) or len(v) != 2:
                raise ValueError(f"cas without [old, new]: {o.describe()}")
            ent = (_CAS, _freeze(v[0]), _freeze(v[1]))
        by_key.setdefault(key, []).append(ent + (o.status == "ok", o))

    for key, ents in by_key.items():
        # Values some kept op needs to find in the register: ok reads, and
        # the old value of every kept cas.  An open-ended op is kept iff it
        # writes such a value; keeping an open-ended cas adds its old value,
        # so iterate to a fixpoint.
        observed = {e[1] for e in ents if e[3] and e[0] in (_READ, _CAS)}
        kept = [e[3] for e in ents]
        changed = True
        while changed:
            changed = False
            for i, e in enumerate(ents):
                if not kept[i] and (e[2] if e[0] == _CAS else e[1]) in observed:
                    kept[i] = changed = True
                    if e[0] == _CAS:
                        observed.add(e[1])
        by_key[key] = [e for e, keep in zip(ents, kept) if keep]
    return by_key


def _linearizable_key(ents: list[tuple], deadline: float) -> tuple[bool, str | None]:
    """Wing & Gong search with Lowe's memoisation, for one register.

    ents: [(kind, arg1, arg2, must, op)] in invoke order.  Returns (True,
    None) if some linearization exists, else (False, witness).  Raises
    _Timeout after `deadline` (time.monotonic()).

    Method: the call and return events sit in a doubly linked list in
    history order.  Walking from the head, a call whose op is legal in the
    current state is "lifted" (its call and return leave the list, the op
    is pushed on an explicit stack) and the walk restarts at the head.
    Reaching a return means that op was not linearized in time, so the last
    lift is undone and the walk continues after it.  Success is when every
    ok op is lifted; open-ended ops have no return entry and so may be
    lifted anywhere after their call, or never.  A configuration (set of
    lifted ops, register state) already explored is never explored again;
    the set is stored exactly and compactly as (base, rel, infobits):
    every ok op below `base` (in invoke order) is lifted, `rel` is a bitmask
    of the lifted ok ops from `base` on, and `infobits` a bitmask over the
    open-ended ops.
    """
    n = len(ents)
    kind = [e[0] for e in ents]
    a1 = [e[1] for e in ents]
    a2 = [e[2] for e in ents]
    okidx = [-1] * n
    infoidx = [-1] * n
    n_ok = n_info = 0
    events = []
    for i, e in enumerate(ents):
        o = e[4]
        events.append((o.inv, 2 * i))
        if e[3]:
            okidx[i] = n_ok
            n_ok += 1
            events.append((o.ret, 2 * i + 1))
        else:
            infoidx[i] = n_info
            n_info += 1
    events.sort()
    head, tail = 2 * n, 2 * n + 1
    nxt = [tail] * (2 * n + 2)
    prv = [head] * (2 * n + 2)
    last = head
    for _, e in events:
        nxt[last] = e
        prv[e] = last
        last = e
    nxt[last] = tail
    prv[tail] = last

    state: Any = None
    base = rel = infobits = 0
    remaining = n_ok
    stack: list[tuple] = []
    seen: set = set()
    best_blocker = -1          # op index of the latest-returning blocker
    best_depth = 0
    entry = nxt[head]
    steps = 0
    while remaining:
        steps += 1
        if not steps & 1023 and _time.monotonic() > deadline:
            raise _Timeout
        if not entry & 1:                      # a call
            i = entry >> 1
            k = kind[i]
            if k == _WRITE:
                new_state = a1[i]
            elif state != a1[i]:               # read / cas precondition
                entry = nxt[entry]
                continue
            else:
                new_state = state if k == _READ else a2[i]
            o = okidx[i]
            if o >= 0:
                nrel = rel | (1 << (o - base))
                nbase = base
                if o == base:                  # shift out the lifted prefix
                    t = (~nrel & (nrel + 1)).bit_length() - 1
                    nrel >>= t
                    nbase += t
                ninfo = infobits
            else:
                nbase, nrel = base, rel
                ninfo = infobits | (1 << infoidx[i])
            cfg = (nbase, nrel, ninfo, new_state)
            if cfg in seen:
                entry = nxt[entry]
                continue
            seen.add(cfg)
            stack.append((i, state, base, rel, infobits))
            state, base, rel, infobits = new_state, nbase, nrel, ninfo
            nxt[prv[entry]] = nxt[entry]       # lift the call ...
            prv[nxt[entry]] = prv[entry]
            if o >= 0:                         # ... and its return
                r = entry + 1
                nxt[prv[r]] = nxt[r]
                prv[nxt[r]] = prv[r]
                remaining -= 1
            if len(stack) > best_depth:
                best_depth = len(stack)
            entry = nxt[head]
        else:                                  # a return: backtrack
            i = entry >> 1
            if best_blocker < 0 or ents[i][4].ret > ents[best_blocker][4].ret:
                best_blocker = i
            if not stack:
                break
            i, state, base, rel, infobits = stack.pop()
            c = 2 * i
            if okidx[i] >= 0:                  # restore in reverse order
                r = c + 1
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                remaining += 1
            nxt[prv[c]] = c
            prv[nxt[c]] = c
            entry = nxt[c]
    if not remaining:
        return True, None
    op = ents[best_blocker][4]
    before = sum(1 for e in ents if e[3] and e[4].ret < op.ret)
    witness = (f"{op.describe()} cannot be linearized; the {before} ops "
               f"that returned before it can (deepest search: {best_depth} "
               f"of {n} ops)")
    return False, witness


def check_register(history: list[dict], time_limit_s: float = 30) -> dict:
    """Checks that read/write/cas ops on independent registers linearize.

    Ops: read [k, v] (v from the ok completion), write [k, v], cas
    [k, [old, new]] (ok = swapped).  Every key starts as None.  Keys are
    checked independently (linearizability is compositional), in order of
    first appearance, within one shared time budget.

    Guarantees: valid is True only if every key's sub-history has a
    linearization; False if some key provably has none (then bad_key is the
    first such key and witness describes the earliest-returning op that no
    linearization can include); "unknown" if the time limit stopped the
    search before any key was found invalid.

    Result: {"valid", "keys": n, "ops": n (ops considered), "bad_key",
             "bad_keys": [...], "witness": str | None,
             "unchecked_keys": n}
    """
    deadline = _time.monotonic() + time_limit_s
    by_key = _register_ops_by_key(_pair(history))
    bad_keys, witness, unchecked = [], None, 0
    for key, ents in by_key.items():
        if _time.monotonic() > deadline:
            unchecked += 1
            continue
        try:
            ok, w = _linearizable_key(ents, deadline)
        except _Timeout:
            unchecked += 1
            continue
        if not ok:
            if witness is None:
                witness = f"key {key!r}: {w}"
            bad_keys.append(key)
    if bad_keys:
        valid: bool | str = False
    else:
        valid = "unknown" if unchecked else True
    return {
        "valid": valid,
        "keys": len(by_key),
        "ops": sum(len(e) for e in by_key.values()),
        "bad_key": bad_keys[0] if bad_keys else None,
        "bad_keys": bad_keys,
        "witness": witness,
        "unchecked_keys": unchecked,
    }


# ---------------------------------------------------------------------------
# List append (Elle-style)
# ---------------------------------------------------------------------------

_LABEL_ORDER = ("ww", "wr", "rw", "rt")


@dataclass
class _Txn:
    name: str                   # "T<invoke event index>"
    op: Op
    mops: list                  # [(f, key, value)] with reads filled if ok
    appends: dict               # key -> [values appended, in order]

    def describe(self) -> str:
        parts = []
        for f, k, v in self.mops:
            parts.append(f"{f} {k!r} {_short(list(v) if isinstance(v, tuple) else v, 40)}")
        body = ", ".join(parts)
        if len(body) > 160:
            body = body[:157] + "..."
        return f"{self.name}: p{self.op.process} {self.op.status} [{body}]"


def _sccs(nodes: Iterable, succ) -> list[list]:
    """Iterative Tarjan: the strongly connected components with >1 node.

    succ(u) returns u's successors.  No recursion, so graphs of any depth.
    """
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    out: list[list] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ(root)))]
        while work:
            u, it = work[-1]
            descended = False
            for v in it:
                if v not in index:
                    index[v] = low[v] = counter
                    counter += 1
                    stack.append(v)
                    on_stack.add(v)
                    work.append((v, iter(succ(v))))
                    descended = True
                    break
                if v in on_stack and index[v] < low[u]:
                    low[u] = index[v]
            if descended:
                continue
            work.pop()
            if work:
                p = work[-1][0]
                if low[u] < low[p]:
                    low[p] = low[u]
            if low[u] == index[u]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == u:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


class _Graph:
    """Dependency graph: adj[u][v] = {edge type: key that caused it}."""

    def __init__(self) -> None:
        self.adj: dict[int, dict[int, dict[str, Any]]] = {}

    def add(self, u: int, v: int, typ: str, key: Any) -> None:
        if u != v:
            self.adj.setdefault(u, {}).setdefault(v, {}).setdefault(typ, key)

    def succ(self, u: int, types: frozenset, within: set | None = None) -> list:
        return [v for v, lab in self.adj.get(u, {}).items()
                if (within is None or v in within) and not types.isdisjoint(lab)]

    def path(self, s: int, t: int, types: frozenset, within: set) -> list | None:
        """Shortest path s..t (node list) over `types` edges inside `within`."""
        if s == t:
            return [s]
        parent = {s: None}
        q = deque([s])
        while q:
            u = q.popleft()
            for v in self.succ(u, types, within):
                if v not in parent:
                    parent[v] = u
                    if v == t:
                        p = [t]
                        while parent[p[-1]] is not None:
                            p.append(parent[p[-1]])
                        return p[::-1]
                    q.append(v)
        return None

    def label(self, u: int, v: int, types: frozenset) -> tuple[str, Any]:
        lab = self.adj[u][v]
        for t in _LABEL_ORDER:
            if t in types and t in lab:
                return t, lab[t]
        raise AssertionError("edge without an allowed label")

    def cycle_through(self, comp: list, pivot: str, path_types: frozenset,
                      max_pivots: int = 64) -> list | None:
        """A cycle inside component `comp` made of one `pivot` edge u->v plus
        a shortest path v..u over path_types, as hops (u, label, key, v);
        None if none of the first max_pivots pivot edges closes one."""
        members = set(comp)
        tried = 0
        for u in comp:
            for v, lab in self.adj.get(u, {}).items():
                if v not in members or pivot not in lab:
                    continue
                tried += 1
                if tried > max_pivots:
                    return None
                p = self.path(v, u, path_types, members)
                if p is not None:
                    hops = [(u, pivot, lab[pivot], v)]
                    for a, b in zip(p, p[1:]):
                        t, k = self.label(a, b, path_types)
                        hops.append((a, t, k, b))
                    return hops
        return None

    def components(self, types: frozenset) -> list[list]:
        """SCCs (>1 node) of the subgraph of `types` edges."""
        return _sccs(list(self.adj), lambda u: self.succ(u, types))


def _classify(hops: list[tuple]) -> str:
    """Adya-style name of a cycle from its edge labels."""
    labels = [h[1] for h in hops]
    rw = labels.count("rw")
    if rw == 0:
        name = "G1c" if "wr" in labels else "G0"
    elif rw == 1:
        name = "G-single"
    else:
        name = "G2"
    return name + ("-realtime" if "rt" in labels else "")


def check_append(history: list[dict], realtime: bool = False) -> dict:
    """Checks list-append transactions for serializability (Elle's method).

    Txn value: [["append", k, v] | ["r", k, None|[...]], ...]; values are
    unique per key.  ok txns committed; fail txns aborted; info txns count
    as committed if any ok read observed one of their appends, otherwise
    they are ignored.

    Per key, the version order is the longest ok read; every other read
    must be a prefix of it, and hold each txn's appends in the order it made
    them ("incompatible-order" otherwise).  Edges between
    committed txns: ww (appender of a version -> appender of the next),
    wr (appender of the last element a txn read externally -> the reader),
    rw (reader of a prefix ending at x -> appender of the version after x);
    appends no read observed are placed after the whole observed order
    (ww from its last version, rw from reads of all of it); with
    realtime=True also rt (T1 completed before T2 was invoked, as a
    transitive reduction that keeps reachability).  A txn's reads of keys
    it has itself appended to are checked against its own appends
    ("internal") and their own-appended suffix is excluded from edges.

    Anomalies: "G0" (ww cycle), "G1a" (read of an aborted append), "G1b"
    (read ending in a non-final append of another txn), "G1c" (ww+wr cycle
    with a wr edge), "G-single" (cycle with exactly one rw), "G2" (cycle
    with >=2 rw, reported for components where no G-single cycle was
    found), their "-realtime" variants (cycles needing an rt edge),
    "incompatible-order", "duplicate-elements", "internal", "future-read"
    (a txn read its own append before making it) and
    "unexpected-element" (read of a value no txn appended); G1a and
    unexpected-element are reported once per element.  Cycles are found per
    strongly connected component (iterative Tarjan), one example per
    component and class.

    Result: {"valid": bool, "txns": n, "committed": n, "aborted": n,
             "anomalies": {name: [up to 3 readable strings]},
             "anomaly_counts": {name: n}}
    """
    ops = [o for o in _pair(history) if o.f == "txn"]
    txns: list[_Txn] = []
    writer: dict[tuple, int] = {}          # (key, value) -> txn id
    for o in ops:
        src = o.value if o.status == "ok" else o.invoke_value
        if not isinstance(src, list | tuple):
            raise ValueError(f"txn without a micro-op list: {o.describe()}")
        mops, appends = [], {}
        for m in src:
            if not isinstance(m, list | tuple) or len(m) != 3 or m[0] not in ("append", "r"):
                raise ValueError(f"bad micro-op {m!r} in {o.describe()}")
            f, k, v = m[0], _freeze(m[1]), _freeze(m[2])
            if f == "r" and o.status == "ok" and not isinstance(v, tuple):
                raise ValueError(f"ok txn read without a list: {o.describe()}")
            mops.append((f, k, v))
            if f == "append":
                appends.setdefault(k, []).append(v)
        tid = len(txns)
        txns.append(_Txn(f"T{o.inv}", o, mops, appends))
        for k, vs in appends.items():
            for v in vs:
                if (k, v) in writer:
                    raise ValueError(f"value {v!r} appended twice to key {k!r}")
                writer[(k, v)] = tid

    anomalies: dict[str, list[str]] = {}
    counts: dict[str, int] = {}

    reported: set = set()

    def report(name: str, text: str) -> None:
        """Counts an anomaly once per distinct text; keeps 3 examples."""
        if (name, text) in reported:
            return
        reported.add((name, text))
        counts[name] = counts.get(name, 0) + 1
        lst = anomalies.setdefault(name, [])
        if len(lst) < 3:
            lst.append(text)

    # -- reads: internal consistency, per-element checks, external parts --
    # ext_reads: (txn id, key, raw read, external prefix or None)
    ext_reads: list[tuple] = []
    checked: dict = {}        # key -> longest read whose elements were checked
    committed = {t for t, x in enumerate(txns) if x.op.status == "ok"}
    for tid, tx in enumerate(txns):
        if tx.op.status != "ok":
            continue
        known: dict = {}      # key -> expected full read, once known
        own: dict = {}        # key -> this txn's appends so far
        for f, k, v in tx.mops:
            if f == "append":
                own.setdefault(k, []).append(v)
                if k in known:
                    known[k] = known[k] + (v,)
                continue
            mine = tuple(own.get(k, ()))
            ext = v[: len(v) - len(mine)] if mine else v
            if k in known and v != known[k]:
                report("internal", f"{tx.describe()} read {k!r} = {_lst(v)}, "
                                   f"expected {_lst(known[k])} from its own earlier ops")
                ext = None
            elif mine and v[len(v) - len(mine):] != mine:
                report("internal", f"{tx.describe()} read {k!r} = {_lst(v)} "
                                   f"without its own appends {_lst(mine)}")
                ext = None
            known[k] = v
            if ext is not None and k in tx.appends \
                    and not set(tx.appends[k]).isdisjoint(ext):
                report("future-read", f"{tx.describe()} read {k!r} = {_lst(v)}, "
                                      f"including its own later append")
                ext = None
            if len(set(v)) != len(v):
                dups = _sorted(x for x, c in Counter(v).items() if c > 1)
                report("duplicate-elements",
                       f"{tx.describe()} read {k!r} with duplicates {_short(dups)}")
            # Per-element checks, once per element of each key: reads are
            # mostly prefixes of one another, so only check what is new.
            prev = checked.get(k, ())
            if v[: len(prev)] == prev:
                fresh, checked[k] = v[len(prev):], v
            elif prev[: len(v)] == v:
                fresh = ()
            else:
                fresh = v
            for x in fresh:
                w = writer.get((k, x))
                if w is None:
                    report("unexpected-element",
                           f"{tx.describe()} read {x!r} in {k!r}, never appended")
                elif txns[w].op.status == "fail":
                    report("G1a", f"{tx.describe()} read {x!r} in {k!r} appended "
                                  f"by aborted {txns[w].describe()}")
                elif txns[w].op.status == "info":
                    committed.add(w)
            ext_reads.append((tid, k, v, ext))

    # -- version orders --
    order: dict = {}          # key -> longest read
    longest_by: dict = {}     # key -> txn that read it
    for tid, k, v, _ext in ext_reads:
        if k not in order or len(v) > len(order[k]):
            order[k], longest_by[k] = v, tid
    compatible = []
    for tid, k, v, ext in ext_reads:
        full = order[k]
        if full[: len(v)] != v:
            report("incompatible-order",
                   f"key {k!r}: {txns[tid].describe()} read {_lst(v)}, not a prefix "
                   f"of {_lst(full)} read by {txns[longest_by[k]].describe()}")
            compatible.append(False)
        else:
            compatible.append(True)

    # A txn's own appends to a key must appear in its version order as a
    # prefix of what it appended, in the order it appended them.
    for k, full in order.items():
        pos = {x: i for i, x in enumerate(full)}
        done = set()
        for x in full:
            w = writer.get((k, x))
            if w is None or w in done:
                continue
            done.add(w)
            mine = txns[w].appends[k]
            got = [pos.get(v) for v in mine]
            present = [g for g in got if g is not None]
            if got[: len(present)] != sorted(present):
                report("incompatible-order",
                       f"key {k!r}: the order {_lst(full)} does not hold the appends "
                       f"of {txns[w].describe()} in the order they were made")

    # -- G1b --
    for tid, k, v, ext in ext_reads:
        if not ext:
            continue
        w = writer.get((k, ext[-1]))
        if w is not None and w != tid and txns[w].op.status != "fail" \
                and txns[w].appends[k][-1] != ext[-1]:
            report("G1b", f"{txns[tid].describe()} read {k!r} = {_lst(ext)} ending in "
                          f"an intermediate append of {txns[w].describe()}")

    # -- dependency graph --
    g = _Graph()
    for t in committed:
        g.adj.setdefault(t, {})
    for k, full in order.items():
        for x, y in zip(full, full[1:]):
            a, b = writer.get((k, x)), writer.get((k, y))
            if a in committed and b in committed:
                g.add(a, b, "ww", k)
    for (tid, k, v, ext), comp in zip(ext_reads, compatible):
        if ext is None:
            continue
        if ext:
            w = writer.get((k, ext[-1]))
            if w in committed:
                g.add(w, tid, "wr", k)
        full = order[k]
        if comp and len(ext) < len(full):
            w = writer.get((k, full[len(ext)]))
            if w in committed:
                g.add(tid, w, "rw", k)
    # A committed append no read observed comes after every observed version
    # of its key (reads are prefixes of the final list): it follows the
    # last observed version (ww) and every read of the whole observed order
    # (rw).  Without these, e.g. a txn seeing one of T's appends but not
    # another would pass.
    unseen: dict = {}
    order_sets: dict = {}
    reads_of: dict = {}
    for i, (_t, k, _v, _e) in enumerate(ext_reads):
        reads_of.setdefault(k, []).append(i)
    for t in committed:
        for k, vs in txns[t].appends.items():
            seen_k = order_sets.setdefault(k, set(order.get(k, ())))
            if any(v not in seen_k for v in vs):
                unseen.setdefault(k, []).append(t)
    for k, ws in unseen.items():
        full = order.get(k, ())
        last = writer.get((k, full[-1])) if full else None
        readers = [ext_reads[i][0] for i in reads_of.get(k, ())
                   if compatible[i] and ext_reads[i][3] is not None
                   and len(ext_reads[i][3]) == len(full)]
        for w in ws:
            if last in committed:
                g.add(last, w, "ww", k)
            for tid in readers:
                g.add(tid, w, "rw", k)
    if realtime:
        _add_realtime_edges(g, txns, committed)

    # -- cycles --
    def cycle_text(hops: list[tuple]) -> str:
        s = txns[hops[0][0]].name
        for u, t, k, v in hops:
            s += f" -{t}({k!r})-> {txns[v].name}"
        return s + " | " + " | ".join(txns[h[0]].describe() for h in hops)

    def search(extra: frozenset, need: str | None) -> None:
        """Reports one cycle per component and class over the ww/wr/rw
        edges plus `extra` types; with need="rt", only cycles using an rt
        edge (the others were reported by the plain pass)."""
        def emit(hops) -> None:
            if hops and (need is None or any(h[1] == need for h in hops)):
                report(_classify(hops), cycle_text(hops))

        ww, wwr = frozenset({"ww"}) | extra, frozenset({"ww", "wr"}) | extra
        every = wwr | {"rw"}
        for comp in g.components(ww):                      # G0
            emit(g.cycle_through(comp, "ww", ww))
        for comp in g.components(wwr):                     # G1c
            emit(g.cycle_through(comp, "wr", wwr))
        for comp in g.components(every):                   # G-single / G2
            hops = g.cycle_through(comp, "rw", wwr)
            if hops is None:
                hops = g.cycle_through(comp, "rw", every)
            emit(hops)
        if need:                                           # rt-closed cycles
            for comp in g.components(every):
                emit(g.cycle_through(comp, need, every))

    search(frozenset(), None)
    if realtime:
        search(frozenset({"rt"}), "rt")

    return {
        "valid": not anomalies,
        "txns": len(txns),
        "committed": len(committed),
        "aborted": sum(1 for x in txns if x.op.status == "fail"),
        "anomalies": anomalies,
        "anomaly_counts": counts,
    }


def _add_realtime_edges(g: _Graph, txns: list[_Txn], committed: set) -> None:
    """Adds rt edges T1->T2 (T1 completed before T2's invoke) among committed
    txns, reduced but reachability-preserving: a txn leaves the frontier of
    "latest completed" txns once a txn that followed it completes."""
    events = []
    for t in committed:
        o = txns[t].op
        events.append((o.inv, 0, t))
        if o.ret is not None:
            events.append((o.ret, 1, t))
    events.sort()
    frontier: set = set()
    before: dict = {}
    for _, kind, t in events:
        if kind == 0:
            before[t] = set(frontier)
            for u in frontier:
                g.add(u, t, "rt", None)
        else:
            frontier -= before.pop(t, set())
            frontier.add(t)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def summarize(results: dict) -> str:
    """One line per checker: "name: VALID|INVALID|UNKNOWN details".

    results maps a checker name to the dict it returned; the details are
    chosen by the shape of the dict, so any name can be used.
    """
    lines = []
    for name, r in results.items():
        v = r.get("valid")
        status = {True: "valid", False: "INVALID"}.get(v, "UNKNOWN") \
            if isinstance(v, bool) else "UNKNOWN"
        if "anomalies" in r:
            an = r.get("anomaly_counts") or {k: len(x) for k, x in r["anomalies"].items()}
            detail = f"txns={r.get('txns')} committed={r.get('committed')}"
            if an:
                detail += " anomalies: " + ", ".join(f"{k}={n}" for k, n in sorted(an.items()))
        elif "witness" in r:
            detail = f"keys={r.get('keys')} ops={r.get('ops')}"
            if r.get("unchecked_keys"):
                detail += f" unchecked_keys={r['unchecked_keys']}"
            if r.get("bad_key") is not None:
                detail += f" bad_key={r['bad_key']!r}: {r.get('witness')}"
        elif "bad_reads" in r:
            detail = (f"reads={r.get('reads')} bad={r.get('bad_read_count', len(r['bad_reads']))}"
                      f" negative={r.get('negative_count', 0)}")
            if r["bad_reads"]:
                detail += f" first: {r['bad_reads'][0].get('reason')}"
        elif "lost" in r:
            detail = (f"reads={r.get('reads')} acknowledged={r.get('acknowledged')} "
                      f"lost={len(r['lost'])} unexpected={len(r.get('unexpected', []))} "
                      f"recovered={r.get('recovered')}")
            for k in ("lost", "unexpected", "failed_read", "duplicates"):
                if r.get(k):
                    detail += f" {k}={_short(r[k], 60)}"
        else:
            detail = " ".join(f"{k}={_short(x, 40)}" for k, x in r.items() if k != "valid")
        lines.append(f"{name}: {status} {detail}")
    return "\n".join(lines)
