#!/usr/bin/env python3
"""The fault harness: real `sqraft node` processes in network namespaces, a
workload of concurrent clients, a nemesis injecting faults, then a heal, a
final read on every node, convergence checks and the workload's checker.

    ./scripts/fault.sh [--nemesis N] [--workload W] [--duration S] [--seed X]

Run as root (namespaces, packet filters, tmpfs). Exits 0 when every check
passed, 1 when one failed (the report says which), 2 on a harness error.
Everything it creates (namespaces, mounts, processes, the run directory
unless --keep) is removed at the end, also on failure and on Ctrl-C.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checkers  # noqa: E402
import netcluster  # noqa: E402
import wire  # noqa: E402
import workloads  # noqa: E402

NEMESES = ("none", "kill", "pause", "partition", "loss", "disk-full", "member", "mixed")
MIXED = ("kill", "pause", "partition", "loss", "member")
DB = "fault"
# What a node's log must never contain.
BAD_LOG = re.compile(r"\[critical\]|Assertion|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                     r"Segmentation fault|terminate called|^panic:|fatal error:")


class History:
    """The operations of a run, in the order they happened (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.t0 = time.monotonic()

    def add(self, **op):
        with self.lock:
            op["time"] = round(time.monotonic() - self.t0, 6)
            self.ops.append(op)

    def now(self):
        return time.monotonic() - self.t0


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.history = History()
        self.stopping = threading.Event()
        self.nemesis_done = threading.Event()
        self.op_lock = threading.Lock()
        self.workload = workloads.WORKLOADS[args.workload](random.Random(args.seed + 1))
        env = {}
        if args.unsafe_reads:
            env["SQRAFT_TEST_UNSAFE_LEADER_READS"] = "1"
        self.root = tempfile.mkdtemp(prefix="sqraft-fault-")
        disk_mb = args.disk_mb if args.nemesis in ("disk-full",) else 0
        self.cluster = netcluster.NetCluster(args.binary, self.root, n=args.nodes, latency_ms=args.latency_ms,
                                             node_env=env, disk_mb=disk_mb,
                                             node_args=["--log-level", "info"] +
                                             (["--storage", args.storage] if args.target == "sqraft" else []),
                                             target=args.target)
        self.events = []  # (time, what) of the nemesis
        self.nemesis_error = None
        self.counts = {"ok": 0, "fail": 0, "info": 0}
        self.samples = []  # (time, leader id or None, {id: role}) every 100 ms

    # ---------------------------------------------------------------- clients
    def connect(self, rng):
        while not self.stopping.is_set():
            # A short timeout to find the leader (a paused node must not hold
            # the search up), the operation timeout once connected.
            addresses = self.cluster.addresses()
            rng.shuffle(addresses)
            try:
                conn = wire.connect_leader(addresses, DB, timeout_s=min(0.5, self.args.op_timeout))
                conn.timeout_s = self.args.op_timeout
                return conn
            except (wire.WireError, wire.ConnectionLost):
                time.sleep(0.05)
        return None

    def client(self, index):
        process = index
        conn = None
        rng = random.Random(self.args.seed * 100 + index)
        while not self.stopping.is_set():
            if conn is None or conn.dead:
                conn = self.connect(rng)
                if conn is None:
                    break
            with self.op_lock:
                f, value = self.workload.op(process, index)
            self.history.add(process=process, type="invoke", f=f, value=value)
            try:
                result = self.workload.run(conn, f, value)
            except Exception as e:  # every outcome is recorded; none stops the client
                definite = workloads.definitely_failed(e)
                self.history.add(process=process, type="fail" if definite else "info", f=f, value=value,
                                 error=str(e)[:200])
                self.counts["fail" if definite else "info"] += 1
                if not definite:
                    process += self.args.clients  # a process with an open operation never issues again
                if needs_new_connection(e):
                    conn.close()
                    conn = None
                continue
            self.history.add(process=process, type="ok", f=f, value=result)
            self.counts["ok"] += 1
        if conn is not None:
            conn.close()

    # ---------------------------------------------------------------- nemesis
    def pick(self, prefer_leader=True):
        nodes = [n for n in self.cluster.nodes if n.alive()]
        leader = self.cluster.leader()
        if prefer_leader and leader is not None and self.rng.random() < 0.5:
            return leader
        return self.rng.choice(nodes or self.cluster.nodes)

    def start_fault(self, kind):
        """Begins fault `kind`; returns (description, heal function)."""
        c = self.cluster
        if kind == "kill":
            node = self.pick()
            node.kill()
            return "kill n%d" % node.id, node.start
        if kind == "pause":
            node = self.pick()
            node.pause()
            return "pause n%d" % node.id, node.resume
        if kind == "partition":
            leader = c.leader()
            modes = ["isolate-one", "isolate-leader"] + (["majorities-ring"] if len(c.nodes) >= 5 else [])
            mode = self.rng.choice(modes) if self.args.partition == "random" else self.args.partition
            if mode == "majorities-ring":
                # Each node reaches its two neighbours on a ring: every node
                # sees a majority, no two see the same one.
                n = len(c.nodes)
                for i, node in enumerate(c.nodes):
                    far = [c.nodes[j].ip for j in range(n) if j != i and (j - i) % n not in (1, n - 1)]
                    c.block(node, far)
                return "partition majorities-ring", c.heal_partition
            victim = leader if mode == "isolate-leader" and leader is not None else self.rng.choice(c.nodes)
            c.isolate([[victim], [n for n in c.nodes if n is not victim]])
            return "partition %s n%d" % (mode, victim.id), c.heal_partition
        if kind == "loss":
            pct = self.rng.choice([10, 20, 30])
            for node in c.nodes:
                c.set_loss(node, pct)
            return "loss %d%%" % pct, c.heal_loss
        if kind == "member":
            return self.start_member_change()
        if kind == "disk-full":
            node = self.pick()
            c.fill_disk(node)
            return "disk-full n%d" % node.id, lambda: c.free_disk(node)
        raise ValueError(kind)

    def admin(self, what, fn, timeout_s=30):
        """Runs fn(conn) on the leader until it succeeds (membership changes
        may meet a change in progress or a leader change)."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                conn = wire.connect_leader(self.cluster.addresses(), DB, timeout_s=2)
                try:
                    return fn(conn)
                finally:
                    conn.close()
            except (wire.WireError, wire.ConnectionLost) as e:
                last = e
                time.sleep(0.3)
        raise HarnessError("%s: %s" % (what, last))

    def start_member_change(self):
        """Removes a voter under load, wipes it and adds it back as a new node;
        the heal promotes the new node to voter."""
        c = self.cluster
        leader = c.leader()
        victim = self.rng.choice([n for n in c.nodes if n is not leader] or c.nodes)
        self.admin("remove n%d" % victim.id, lambda conn: conn.remove(victim.id, timeout_s=10))
        c.retire(victim)
        fresh = c.add_node()
        fresh.start(founding=False)

        def heal():
            self.admin("add n%d" % fresh.id, lambda conn: add_if_missing(conn, fresh))
            self.admin("promote n%d" % fresh.id, lambda conn: conn.assign(fresh.id, wire.VOTER, timeout_s=20))
        return "member: removed n%d, wiped, added as n%d" % (victim.id, fresh.id), heal

    def nemesis(self):
        try:
            while not self.stopping.wait(self.args.interval):
                if self.args.nemesis == "none":
                    continue
                kind = self.rng.choice(MIXED) if self.args.nemesis == "mixed" else self.args.nemesis
                what, heal = self.start_fault(kind)
                t = self.history.now()
                self.events.append((round(t, 3), what))
                self.history.add(process="nemesis", type="info", f="start", value=what)
                self.stopping.wait(self.args.interval)
                heal()
                self.events.append((round(self.history.now(), 3), "heal " + what))
                self.history.add(process="nemesis", type="info", f="stop", value=what)
        except Exception as e:  # the run is void: report it, do not pass it
            self.nemesis_error = "%s: %s" % (type(e).__name__, e)
            self.stopping.set()
        finally:
            self.nemesis_done.set()

    def monitor(self):
        """Samples every node's role (from its metrics) every 100 ms. A node
        that does not answer (paused, killed) has no role."""
        while not self.stopping.wait(0.1):
            roles = {}
            for node in list(self.cluster.nodes):
                r = node.role(timeout=0.2)
                if r is not None:
                    roles[node.id] = r
            leaders = [i for i, r in roles.items() if r == "leader"]
            # With two self-proclaimed leaders (an isolated old one), the
            # one the majority follows is the newest; record the others too.
            self.samples.append((self.history.now(), max(leaders) if len(leaders) == 1 else
                                 (tuple(sorted(leaders)) if leaders else None), roles))

    # ---------------------------------------------------------------- phases
    def start(self):
        try:
            self.cluster.start(after_network=self.cluster.enter_hub)  # before any thread: they inherit it
        except RuntimeError as e:
            raise HarnessError(str(e))
        if self.cluster.wait(self.cluster.leader, 30) is None:
            raise HarnessError("no leader 30 s after start")
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = wire.connect_leader(self.cluster.addresses(), DB, timeout_s=2)
                self.workload.setup(conn)
                conn.close()
                return
            except (wire.WireError, wire.ConnectionLost) as e:
                if time.monotonic() > deadline:
                    raise HarnessError("cannot set the workload up: %s" % e)
                time.sleep(0.2)

    def run_load(self):
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.args.clients)]
        nem = threading.Thread(target=self.nemesis, daemon=True)
        mon = threading.Thread(target=self.monitor, daemon=True)
        for t in threads:
            t.start()
        nem.start()
        mon.start()
        time.sleep(self.args.duration)
        self.stopping.set()
        nem.join(timeout=self.args.interval + 30)
        for t in threads:
            t.join(timeout=self.args.op_timeout * 4 + 5)
        if any(t.is_alive() for t in threads):
            raise HarnessError("a client did not stop")
        if self.nemesis_error:
            raise HarnessError("nemesis: " + self.nemesis_error)

    def heal(self):
        c = self.cluster
        c.heal()
        for node in c.nodes:
            if node.proc is None:
                node.start()
        if c.wait(c.leader, 30) is None:
            raise HarnessError("no leader 30 s after the heal")

    def converge(self):
        """Waits until every node applied the same index; then dumps each
        node's database, checks it and compares them."""
        c = self.cluster
        report = {"applied": {}, "digest": {}, "integrity": {}, "converged": False}
        # The leader commits an entry of its own after the heal (the
        # clients have stopped): write one row so that every node must
        # apply up to it.
        # dqlite answers "database is locked" for a while after a leader
        # change: retry for up to 30 s.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = wire.connect_leader(c.addresses(), DB, timeout_s=5)
                try:
                    conn.exec("CREATE TABLE IF NOT EXISTS heal_marker (t REAL)")
                    conn.exec("INSERT INTO heal_marker VALUES (?)", (time.time(),))
                finally:
                    conn.close()
                break
            except (wire.WireError, OSError) as e:
                if time.monotonic() >= deadline:
                    raise HarnessError("the marker write after the heal kept failing: %s" % e)
                time.sleep(0.5)
        deadline = time.monotonic() + 60
        while c.target == "sqraft" and time.monotonic() < deadline:
            applied = {node.id: node.applied_index() for node in c.nodes}
            report["applied"] = applied
            values = set(applied.values())
            if None not in values and len(values) == 1:
                report["converged"] = True
                break
            time.sleep(0.2)
        while c.target == "dqlite" and time.monotonic() < deadline:
            # No applied index to read: the dumps must become identical.
            digests = set()
            for node in c.nodes:
                try:
                    with wire.Conn(node.address, timeout_s=10) as conn:
                        files = conn.dump(DB, timeout_s=30)
                    d = tempfile.mkdtemp(dir=self.root)
                    db = workloads.open_dump(files, d, DB)
                    digests.add(digest(db))
                    db.close()
                except (wire.WireError, wire.ConnectionLost) as e:
                    digests.add("dump failed: %s" % e)
            if len(digests) == 1 and not next(iter(digests)).startswith("dump failed"):
                report["converged"] = True
                break
            time.sleep(1)
        finals = []
        for node in c.nodes:
            d = os.path.join(self.root, "dump-n%d" % node.id)
            os.makedirs(d, exist_ok=True)
            try:
                with wire.Conn(node.address, timeout_s=10) as conn:
                    files = conn.dump(DB, timeout_s=30)
            except (wire.WireError, wire.ConnectionLost) as e:
                report["digest"][node.id] = "dump failed: %s" % e
                report["converged"] = False
                continue
            db = workloads.open_dump(files, d, DB)
            report["integrity"][node.id] = db.execute("PRAGMA integrity_check").fetchone()[0]
            report["digest"][node.id] = digest(db)
            for f, value in self.workload.final_ops(db):
                p = "final-n%d" % node.id
                self.history.add(process=p, type="invoke", f=f, value=None)
                self.history.add(process=p, type="ok", f=f, value=value)
                finals.append(node.id)
            db.close()
        digests = set(report["digest"].values())
        report["identical"] = len(digests) == 1 and not any(str(v).startswith("dump failed") for v in digests)
        report["integrity_ok"] = all(v == "ok" for v in report["integrity"].values()) and \
            len(report["integrity"]) == len(c.nodes)
        return report

    def scan_logs(self):
        found = []
        for node in self.cluster.nodes + self.cluster.retired:
            for line in node.log_text().splitlines():
                if BAD_LOG.search(line):
                    found.append("n%d: %s" % (node.id, line[:300]))
            if node.proc is not None and node.proc.poll() is not None:
                found.append("n%d exited by itself with %s" % (node.id, node.proc.returncode))
        return found

    def close(self):
        self.stopping.set()
        try:
            self.cluster.close()
        finally:
            if self.args.keep:
                print("run directory kept: %s" % self.root)
            else:
                shutil.rmtree(self.root, ignore_errors=True)


class HarnessError(Exception):
    pass


def add_if_missing(conn, node):
    if all(i != node.id for i, _, _ in conn.cluster()):
        conn.add(node.id, node.address, timeout_s=10)


def needs_new_connection(e):
    if isinstance(e, workloads.NotCommitted):
        e = e.cause
    if isinstance(e, wire.ConnectionLost):
        return True
    if isinstance(e, wire.WireError):
        return e.code in (wire.NOT_LEADER, wire.LEADERSHIP_LOST, wire.NOTFOUND, wire.COMMIT_UNKNOWN) or \
            e.code & 0xff == 10  # SQLITE_IOERR family: the node is in trouble, try the leader again
    return False


def digest(db):
    """A hash of every table's rows (schema order, rowid order)."""
    h = hashlib.sha256()
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for t in tables:
        if t == "heal_marker":
            continue
        h.update(t.encode())
        for row in db.execute('SELECT * FROM "%s" ORDER BY rowid' % t):
            h.update(repr(row).encode())
    return h.hexdigest()[:16]


def latency_stats(history):
    """Per f: count of ok operations and p50/p99 latency in ms."""
    open_ = {}
    lat = {}
    for op in history:
        if op["process"] in ("nemesis",) or str(op["process"]).startswith("final"):
            continue
        if op["type"] == "invoke":
            open_[op["process"]] = op
        elif op["type"] == "ok" and op["process"] in open_:
            inv = open_.pop(op["process"])
            lat.setdefault(op["f"], []).append((op["time"] - inv["time"]) * 1000)
    out = {}
    for f, xs in lat.items():
        xs.sort()
        out[f] = {"ok": len(xs), "p50_ms": round(xs[len(xs) // 2], 2), "p99_ms": round(xs[int(len(xs) * 0.99)], 2)}
    return out


READ_FS = ("read",)


def write_unavailability(history, events):
    """Per fault: seconds from its start to the first write acknowledged
    after it that was also invoked after it (inf if none before the heal)."""
    inv = {}
    writes = []  # (invoke time, ok time)
    for op in history:
        if not isinstance(op["process"], int) or op["f"] in READ_FS:
            continue
        if op["type"] == "invoke":
            inv[op["process"]] = op["time"]
        elif op["type"] == "ok" and op["process"] in inv:
            writes.append((inv.pop(op["process"]), op["time"]))
    out = []
    starts = [(t, w) for t, w in events if not w.startswith("heal")]
    for t, what in starts:
        done = [ok for i, ok in writes if i >= t]
        out.append((what, round(min(done) - t, 3) if done else None))
    return out


def leadership_timeline(samples, events, cluster_ids):
    """Per fault, in seconds after it began and before its heal: when the
    old leader stopped calling itself leader (only a running node reports a
    role: a killed or paused leader's step-down is not observable) and when
    another node was elected. A fault that left the leader in place says
    so (both None, leader_kept True)."""
    out = []
    for k, (t, what) in enumerate(events):
        if what.startswith("heal"):
            continue
        heal = next((h for h, w in events[k + 1:] if w == "heal " + what), None)
        end = heal if heal is not None else float("inf")
        before = [s for s in samples if s[0] <= t and isinstance(s[1], int)]
        leader = before[-1][1] if before else None
        window = [s for s in samples if t < s[0] <= end]
        step_down = next((s[0] - t for s in window if s[2].get(leader, "leader") != "leader"), None)
        elected = next((s[0] - t for s in window if any(r == "leader" and i != leader for i, r in s[2].items())),
                       None)
        out.append({"fault": what, "leader": leader,
                    "old_leader_stepped_down_s": None if step_down is None else round(step_down, 3),
                    "new_leader_s": None if elected is None else round(elected, 3),
                    "leader_kept": step_down is None and elected is None})
    return out


def describe_leadership(x):
    if x["leader_kept"]:
        return "%s: leader n%s kept" % (x["fault"], x["leader"])
    down = x["old_leader_stepped_down_s"]
    return "%s: old leader n%s stepped down %s, new leader %s" % (
        x["fault"], x["leader"], "(not observable)" if down is None else "%s s" % down,
        "none before the heal" if x["new_leader_s"] is None else "%s s" % x["new_leader_s"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "..", "build", "sqraft"))
    ap.add_argument("--nemesis", choices=NEMESES + ("all",), default="partition",
                    help="all: a round of every nemesis (each with --workload, or every workload)")
    ap.add_argument("--workload", choices=sorted(workloads.WORKLOADS) + ["all"], default="register")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load")
    ap.add_argument("--interval", type=float, default=5, help="seconds between faults, and each fault's length")
    ap.add_argument("--partition", choices=("random", "isolate-one", "isolate-leader", "majorities-ring"),
                    default="random", help="which partition the partition nemesis makes")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--target", choices=("sqraft", "dqlite"), default="sqraft",
                    help="dqlite: the same run against Debian's dqlite-demo nodes (the control)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--storage", choices=("memory", "disk"), default="memory", help="the sqraft nodes' --storage")
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--op-timeout", type=float, default=1.5, help="seconds before an operation is given up")
    ap.add_argument("--latency-ms", type=int, default=20, help="the nodes' --latency-ms")
    ap.add_argument("--disk-mb", type=int, default=256, help="tmpfs size of each data dir for disk-full")
    ap.add_argument("--unsafe-reads", action="store_true",
                    help="positive control: nodes answer reads without checking leadership")
    ap.add_argument("--expect-invalid", action="store_true",
                    help="positive control: succeed only if the checker finds a violation")
    ap.add_argument("--out", help="write the history and the report (JSON) here")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (node logs, dumps)")
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if os.geteuid() != 0:
        print("fault: must run as root (namespaces, packet filters, tmpfs)", file=sys.stderr)
        return 2
    for tool in ("ip", "nft", "tc"):
        if shutil.which(tool) is None:
            print("fault: %s not found (run scripts/setup.sh)" % tool, file=sys.stderr)
            return 2

    if args.nemesis == "all" or args.workload == "all":
        return run_round(args, argv or sys.argv[1:])
    run = Run(args)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    report = {"target": args.target, "nemesis": args.nemesis, "workload": args.workload, "seed": args.seed,
              "nodes": args.nodes,
              "duration_s": args.duration, "unsafe_reads": args.unsafe_reads}
    t_start = time.monotonic()
    try:
        run.start()
        run.run_load()
        run.heal()
        report["convergence"] = run.converge()
        report["log_problems"] = run.scan_logs()
    except HarnessError as e:
        report["harness_error"] = str(e)
        report["log_problems"] = run.scan_logs()
    except KeyboardInterrupt:
        print("fault: interrupted", file=sys.stderr)
        run.close()
        return 2
    finally:
        report["wall_s"] = round(time.monotonic() - t_start, 1)
    try:
        history = run.history.ops
        report["ops"] = dict(run.counts)
        report["latency"] = latency_stats(history)
        report["events"] = run.events
        report["write_unavailable_s"] = write_unavailability(history, run.events)
        report["leadership"] = leadership_timeline(run.samples, run.events, [n.id for n in run.cluster.nodes])
        t0 = time.monotonic()
        report["check"] = run.workload.check([op for op in history if op["process"] != "nemesis"])
        report["check_s"] = round(time.monotonic() - t0, 2)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "history.json"), "w") as f:
                json.dump(history, f)
            with open(os.path.join(args.out, "report.json"), "w") as f:
                json.dump(report, f, indent=1, default=str)
            for node in run.cluster.nodes:
                shutil.copy(node.log_path, os.path.join(args.out, os.path.basename(node.log_path)))
    finally:
        run.close()

    conv = report.get("convergence", {})
    problems = []
    if "harness_error" in report:
        problems.append("harness: " + report["harness_error"])
    if conv and not conv.get("converged"):
        problems.append("nodes did not reach the same applied index: %s" % conv.get("applied"))
    if conv and not conv.get("identical"):
        problems.append("node databases differ: %s" % conv.get("digest"))
    if conv and not conv.get("integrity_ok"):
        problems.append("integrity_check: %s" % conv.get("integrity"))
    if report.get("log_problems"):
        problems.append("node logs: %s" % report["log_problems"][:5])
    valid = report["check"].get("valid")
    print("fault: %s: %s × %s, %d nodes, seed %d, %.0f s: ops %s" % (args.target, args.workload, args.nemesis, args.nodes, args.seed,
                                                                 args.duration, report["ops"]))
    print("  faults: %s" % ", ".join("%s@%.1f" % (w, t) for t, w in report["events"] if not w.startswith("heal")))
    print("  first write acknowledged after each fault (s): %s" % report["write_unavailable_s"])
    print("  leadership: %s" % "; ".join(describe_leadership(x) for x in report["leadership"]))
    print("  latency: %s" % report["latency"])
    print("  check: %s" % checkers.summarize({args.workload: report["check"]}))
    print("  convergence: applied %s, identical %s, integrity %s" % (conv.get("applied"), conv.get("identical"),
                                                                     conv.get("integrity_ok")))
    if args.expect_invalid:
        if valid is False:
            print("fault: positive control: the checker caught the violation, as it must")
            return 0
        print("fault: positive control FAILED: the checker found nothing (valid=%s)" % valid)
        return 1
    if valid is not True:
        problems.append("checker: valid=%s" % valid)
    for p in problems:
        print("  PROBLEM: %s" % p)
    print("fault: %s" % ("PASS" if not problems else "FAIL"))
    return 0 if not problems else 1


def run_round(args, argv):
    """Every nemesis × workload asked for, each in its own process; a table
    of the results. Exit 0 only if every run passed."""
    nemeses = [n for n in NEMESES if n != "none"] if args.nemesis == "all" else [args.nemesis]
    wls = sorted(workloads.WORKLOADS) if args.workload == "all" else [args.workload]
    out = args.out or tempfile.mkdtemp(prefix="sqraft-fault-round-")
    base = []
    skip = False
    for a in argv:  # the arguments of one run: ours minus the round's
        if skip:
            skip = False
            continue
        if a in ("--nemesis", "--workload", "--out"):
            skip = True
            continue
        if a.split("=")[0] in ("--nemesis", "--workload", "--out"):
            continue
        base.append(a)
    rows = []
    for n in nemeses:
        for w in wls:
            d = os.path.join(out, "%s-%s" % (n, w))
            cmd = [sys.executable, os.path.abspath(__file__), "--nemesis", n, "--workload", w, "--out", d] + base
            if "--seed" not in " ".join(base):
                cmd += ["--seed", str(args.seed)]
            print("fault: round: %s × %s" % (n, w), flush=True)
            rc = subprocess.call(cmd)
            try:
                with open(os.path.join(d, "report.json")) as f:
                    rep = json.load(f)
            except (OSError, ValueError):
                rep = {}
            rows.append((n, w, rc, rep))
    print()
    print("%-10s %-9s %-5s %9s %7s %7s %-8s %-10s %s" % ("nemesis", "workload", "ok?", "ok ops", "fail", "info",
                                                        "check", "converged", "max s to next write"))
    for n, w, rc, rep in rows:
        ops = rep.get("ops", {})
        conv = rep.get("convergence", {})
        gaps = [g for _, g in rep.get("write_unavailable_s", []) if g is not None]
        print("%-10s %-9s %-5s %9s %7s %7s %-8s %-10s %s" % (
            n, w, "PASS" if rc == 0 else "FAIL", ops.get("ok", "-"), ops.get("fail", "-"), ops.get("info", "-"),
            rep.get("check", {}).get("valid", "-"), conv.get("converged", False) and conv.get("identical", False),
            max(gaps) if gaps else "-"))
    print("reports: %s" % out)
    return 0 if all(rc == 0 for _, _, rc, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
