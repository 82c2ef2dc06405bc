#!/usr/bin/python3
"""libsqraft_preload.so with programs that were not built for sqraft.

Debian's sqlite3 shell, three of them, each its own node of one cluster:
the leader's shell creates, inserts and reads a replicated database, the
other shells read the same rows and a write there fails naming the leader;
the same shell on a plain file behaves byte for byte as without the
preload; Python's sqlite3 module survives sqlite3_shutdown()/initialize();
bad settings (a corrupt SQRAFT_CLUSTER, an unusable directory, an address
in use, a second process on the same node) fail the open with a clear
message and write nothing; a process that exits frees its node for the
next one at once.

Usage: preload_test.py PRELOAD_LIBRARY [SQRAFT_BINARY]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

PRELOAD = os.path.abspath(sys.argv[1])
# In a sanitizer build the library needs its runtime loaded first.
_runtimes = [l.split("=>")[1].split()[0] for l in subprocess.run(["ldd", PRELOAD], capture_output=True, text=True).stdout.splitlines()
             if ("libasan" in l or "libubsan" in l) and "=>" in l]
if _runtimes:
    PRELOAD = ":".join(_runtimes + [PRELOAD])
    os.environ["ASAN_OPTIONS"] = "detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", "")
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
PYTHON = "/usr/bin/python3"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Piped:
    """A long-running child process fed through a pipe: stdin for commands,
    stdout for answers, stderr split into the node's log and the rest."""

    def __init__(self, argv, cwd, env):
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.err = []
        self.log = []
        threading.Thread(target=self._drain_err, daemon=True).start()

    def _drain_err(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            if line.startswith("[20"):  # the node's log (SQRAFT_LOG), not the program's output
                self.log.append(line)
            else:
                self.err.append(line)

    def read_until(self, mark, timeout):
        """stdout lines up to the line `mark`; raises if it does not come."""
        out = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line == "":
                break
            line = line.rstrip("\n")
            if line == mark:
                return out
            out.append(line)
        raise RuntimeError("%s did not answer (got %s; stderr %s)" % (self.proc.args[0], out, self.err[-5:]))

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


class Shell(Piped):
    """A `sqlite3` shell."""

    def __init__(self, cwd, env, args=()):
        super().__init__([SQLITE3, *args], cwd, env)
        self.seq = 0

    def run(self, sql, timeout=20):
        """Runs `sql`; returns (stdout lines, stderr lines) it produced."""
        self.seq += 1
        mark = "--end-%d--" % self.seq
        errs_before = len(self.err)
        self.proc.stdin.write(sql.rstrip() + "\n" + ".print %s\n" % mark)
        self.proc.stdin.flush()
        out = self.read_until(mark, timeout)
        time.sleep(0.05)  # let stderr catch up
        return out, self.err[errs_before:]


def node_env(base, i, cluster, databases="app.db"):
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": PRELOAD,
        "SQRAFT_ID": str(i),
        "SQRAFT_ADDRESS": cluster[i - 1][1],
        "SQRAFT_DIR": os.path.join(base, "node-%d" % i),
        "SQRAFT_CLUSTER": ",".join("%d@%s" % (n, a) for n, a in cluster),
        "SQRAFT_DATABASES": databases,
        "SQRAFT_LATENCY_MS": "5",
        "SQRAFT_LOG": os.environ.get("SQRAFT_LOG", "info"),
    })
    return env


def three_shells(base, cluster=None):
    cluster = cluster or [(i, "127.0.0.1:%d" % free_port()) for i in (1, 2, 3)]
    work = os.path.join(base, "work")
    os.makedirs(work, exist_ok=True)
    shells = [Shell(work, node_env(base, i, cluster)) for i in (1, 2, 3)]
    # All three open at once: nobody leads before a quorum runs.
    results = [None] * 3

    def opener(k):
        results[k] = shells[k].run(".open app.db\nPRAGMA sqraft_leader;")

    threads = [threading.Thread(target=opener, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return cluster, shells, results


def test_three_shells(base):
    cluster, shells, opened = three_shells(base)
    try:
        leaders = set(out[-1] if out else "" for out, err in opened)
        check(len(leaders) == 1 and "" not in leaders, "every shell names the same leader: %s" % (opened,))
        leader_addr = leaders.pop()
        li = [a for _, a in cluster].index(leader_addr)
        leader = shells[li]
        out, err = leader.run("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n"
                              "INSERT INTO t(v) VALUES ('one'), ('two');\n"
                              "BEGIN; INSERT INTO t(v) VALUES ('three'); COMMIT;\n"
                              "SELECT id, v FROM t ORDER BY id;\nSELECT last_insert_rowid();\n"
                              "PRAGMA sqraft_applied_index;")
        check(err == [], "leader writes without errors: %s" % err)
        check(out[:4] == ["1|one", "2|two", "3|three", "3"], "leader reads its rows: %s" % out)
        # VACUUM is one (replicated) write transaction; the program's own
        # checkpoint does nothing (the cluster checkpoints).
        out, err = leader.run("DELETE FROM t WHERE id = 2; INSERT INTO t(v) VALUES ('two');\nVACUUM;\n"
                              "PRAGMA integrity_check;\nPRAGMA wal_checkpoint;\nPRAGMA sqraft_applied_index;")
        check(err == [] and out[:2] == ["ok", "1|-1|-1"], "VACUUM works, checkpoints are the cluster's: %s %s" % (out, err))
        index = int(out[2])
        for k, sh in enumerate(shells):
            if k == li:
                continue
            out, err = sh.run("PRAGMA sqraft_wait_index = %d;\nSELECT id, v FROM t ORDER BY id;" % index)
            check(err == [] and out[1:] == ["1|one", "3|three", "4|two"], "follower %d reads the rows: %s %s" % (k + 1, out, err))
            out, err = sh.run("INSERT INTO t(v) VALUES ('nope');")
            msg = " ".join(err)
            check("readonly" in msg and "the leader is at " + leader_addr in msg,
                  "a follower's write names the leader: %s" % err)
            out, err = sh.run("SELECT count(*) FROM t;")
            check(out == ["3"], "the refused write changed nothing: %s" % out)
            out, err = sh.run("PRAGMA integrity_check;")
            check(out == ["ok"], "follower %d's copy is intact after VACUUM: %s" % (k + 1, out))
        # The data is the cluster's: sqraft's own shell reads it over the wire.
        sqraft = os.environ.get("SQRAFT_BIN")
        if sqraft:
            r = subprocess.run([sqraft, "shell", "-s", leader_addr, "app.db",
                                "SELECT group_concat(v) FROM t"], capture_output=True, text=True, timeout=30)
            check("one,three,two" in r.stdout, "sqraft shell reads the same rows: %s %s" % (r.stdout, r.stderr))
    finally:
        for k, sh in enumerate(shells):
            # The followers' shells saw an error (the refused write): exit 1.
            check(sh.close() == (0 if k == li else 1), "shell %d exits normally (stderr: %s)" % (k + 1, sh.err[-3:]))
    # Exit stopped each node: new processes take the same directories at
    # once, elect a leader and find the data (a restart rejoins with it).
    _, shells2, opened2 = three_shells(base, cluster)
    try:
        for k, sh in enumerate(shells2):
            out = []
            for _ in range(100):
                out, err = sh.run("SELECT count(*) FROM t;")
                if out == ["3"]:
                    break
                time.sleep(0.1)
            if not check(out == ["3"], "restarted node %d has the rows: %s %s" % (k + 1, out, err)):
                for j, other in enumerate(shells + shells2):
                    print("node %d log (%s):" % (j % 3 + 1, "first run" if j < 3 else "restart"),
                          *other.log[-60:], sep="\n  ")
    finally:
        for sh in shells2:
            sh.close()


PLAIN_SCRIPT = """CREATE TABLE p(a, b);
INSERT INTO p VALUES (1, 'x'), (2, 'y');
SELECT * FROM p;
SELECT nope FROM p;
PRAGMA journal_mode;
.tables
"""


def test_plain_file_untouched(base):
    outputs = []
    for preload in (False, True):
        d = os.path.join(base, "plain-%d" % preload)
        os.makedirs(d)
        env = dict(os.environ)
        if preload:
            env.update({"LD_PRELOAD": PRELOAD, "SQRAFT_DATABASES": "app.db", "SQRAFT_ID": "1",
                        "SQRAFT_ADDRESS": "127.0.0.1:1", "SQRAFT_DIR": os.path.join(base, "unused")})
        r = subprocess.run([SQLITE3, "plain.db"], input=PLAIN_SCRIPT, cwd=d, env=env, capture_output=True,
                           text=True, timeout=30)
        dump = subprocess.run([SQLITE3, os.path.join(d, "plain.db"), ".dump"], capture_output=True, text=True).stdout
        outputs.append((r.returncode, r.stdout, r.stderr, dump, sorted(os.listdir(d))))
    check(outputs[0] == outputs[1], "a plain file behaves the same with the preload: %s" % (outputs,))
    check(not os.path.exists(os.path.join(base, "unused")), "no node started for a plain file")


def python_run(env, code, timeout=60):
    return subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def test_single_node_python(base):
    addr = "127.0.0.1:%d" % free_port()
    env = dict(os.environ)
    env.update({"LD_PRELOAD": PRELOAD, "SQRAFT_ID": "1", "SQRAFT_ADDRESS": addr,
                "SQRAFT_DIR": os.path.join(base, "py-node"), "SQRAFT_CLUSTER": "1@" + addr,
                "SQRAFT_DATABASES": "*.rdb"})
    code = r"""
import ctypes, sqlite3, os
c = sqlite3.connect("a.rdb")
c.execute("CREATE TABLE t(x)"); c.execute("INSERT INTO t VALUES (1)"); c.commit()
print(c.execute("PRAGMA sqraft_leader").fetchone()[0])
c.close()
real = ctypes.CDLL("libsqlite3.so.0")
assert real.sqlite3_shutdown() == 0
assert real.sqlite3_initialize() == 0
c = sqlite3.connect("a.rdb")
c.execute("INSERT INTO t VALUES (2)"); c.commit()
print(c.execute("SELECT group_concat(x) FROM t").fetchone()[0])
try:
    c.execute("PRAGMA journal_mode=DELETE")
    print("journal_mode changed")
except sqlite3.Error as e:
    print("refused:", e)
local = sqlite3.connect("local.db")
local.execute("CREATE TABLE l(y)"); local.commit()
print(local.execute("PRAGMA journal_mode").fetchone()[0])
print(sorted(f for f in os.listdir(".") if not f.startswith(".")))
pid = os.fork()
if pid == 0:
    try:
        sqlite3.connect("a.rdb").execute("SELECT 1")
        os._exit(1)
    except sqlite3.Error as e:
        print("child:", e, flush=True)
        os._exit(0)
_, status = os.waitpid(pid, 0)
print("child status", status)
try:
    c.deserialize(c.serialize())
    print("deserialized a replicated schema")
except sqlite3.Error as e:
    print("deserialize refused:", type(e).__name__, e)
local.deserialize(local.serialize())
print("local deserialize:", local.execute("SELECT count(*) FROM l").fetchone()[0])
print("still replicated:", c.execute("SELECT group_concat(x) FROM t").fetchone()[0])
"""
    d = os.path.join(base, "py")
    os.makedirs(d)
    r = subprocess.run([PYTHON, "-c", code], cwd=d, env=env, capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    check(r.returncode == 0, "python run succeeds: %s %s" % (r.stdout, r.stderr))
    check(lines[:2] == [addr, "1,2"], "replicated db survives sqlite3_shutdown/initialize: %s" % lines)
    check(len(lines) > 2 and lines[2].startswith("refused:") and "WAL" in lines[2], "journal_mode change refused: %s" % lines)
    check(len(lines) > 3 and lines[3] == "delete", "a local file keeps SQLite's defaults: %s" % lines)
    check(len(lines) > 4 and lines[4] == "['local.db']", "the replicated db leaves no file in the cwd: %s" % lines)
    check(any(l.startswith("child:") and "forked from process" in l for l in lines), "a forked child is refused: %s" % lines)
    check("child status 0" in lines, "the child got the error: %s" % lines)
    check(any(l.startswith("deserialize refused: OperationalError") and "replicated sqraft database" in l for l in lines),
          "sqlite3_deserialize onto a replicated schema is refused: %s" % lines)
    check("local deserialize: 0" in lines and "still replicated: 1,2" in lines, "a local deserialize works: %s" % lines)
    # The same directory while a process holds it, then right after it exits.
    holder = subprocess.Popen([PYTHON, "-c", "import sqlite3,sys,time\nc=sqlite3.connect('a.rdb')\n"
                               "c.execute('SELECT 1')\nprint('up', flush=True)\nsys.stdin.read()"],
                              cwd=d, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    check(holder.stdout.readline().strip() == "up", "holder started")
    second = python_run(dict(env, SQRAFT_ADDRESS="127.0.0.1:%d" % free_port(), SQRAFT_CLUSTER=""),
                        "import sqlite3\ntry:\n  sqlite3.connect('a.rdb')\nexcept sqlite3.Error as e:\n  print(e)")
    check("in use by another node (process %d)" % holder.pid in second.stdout, "a second process on the dir is refused: %s %s" % (second.stdout, second.stderr))
    holder.stdin.close()
    holder.wait(timeout=30)
    third = python_run(env, "import sqlite3\nprint(sqlite3.connect('%s/a.rdb').execute('SELECT count(*) FROM t').fetchone()[0])" % d)
    check(third.stdout.strip() == "2", "the next process starts at once: %s %s" % (third.stdout, third.stderr))


def test_bad_settings(base):
    d = os.path.join(base, "bad")
    os.makedirs(d)
    with open(os.path.join(d, "file"), "w") as f:
        f.write("x")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_addr = "127.0.0.1:%d" % busy.getsockname()[1]
    good = "127.0.0.1:%d" % free_port()
    cases = [
        ("corrupt SQRAFT_CLUSTER", {"SQRAFT_CLUSTER": "1@" + good + ",banana"}, "SQRAFT_CLUSTER"),
        ("two ids for one address", {"SQRAFT_CLUSTER": "1@%s,2@%s" % ("127.0.0.1:9", good), "SQRAFT_ID": "1"},
         "claim the same id"),
        ("unusable directory", {"SQRAFT_DIR": os.path.join(d, "file", "sub")}, "data directory"),
        ("address in use", {"SQRAFT_ADDRESS": busy_addr, "SQRAFT_CLUSTER": "1@" + busy_addr}, "in use"),
        ("no id", {"SQRAFT_ID": ""}, "SQRAFT_ID"),
    ]
    for name, override, expect in cases:
        env = dict(os.environ)
        env.update({"LD_PRELOAD": PRELOAD, "SQRAFT_ID": "1", "SQRAFT_ADDRESS": good,
                    "SQRAFT_DIR": os.path.join(d, "node"), "SQRAFT_CLUSTER": "1@" + good,
                    "SQRAFT_DATABASES": "app.db"})
        env.update(override)
        r = subprocess.run([SQLITE3, "app.db", "CREATE TABLE t(x);"], cwd=d, env=env, capture_output=True,
                           text=True, timeout=30)
        check(r.returncode != 0 and expect in r.stderr, "%s: a clear error (%r)" % (name, r.stderr))
        check(not os.path.exists(os.path.join(d, "app.db")), "%s: no local file instead" % name)
    busy.close()


APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")


class App(Piped):
    """A Python application process (test/preload/app.py) under the preload."""

    def __init__(self, cwd, env):
        super().__init__([PYTHON, APP], cwd, env)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def lines(self, timeout=30):
        """The answer to the last command, up to its "." line."""
        return self.read_until(".", timeout)

    def ask(self, line, timeout=30):
        self.send(line)
        out = self.lines(timeout)
        return out[0] if len(out) == 1 else out



def test_app_processes(base):
    """Three application processes, each its own node: the leader's writes
    reach all; a follower's write names the leader; kill -9 of the leader in
    the middle of its writes loses no acknowledged row; a write sent during
    the election waits in its busy timeout and then succeeds; the killed
    process restarts and rejoins with its data; eight threads write at once;
    every node ends with the same rows."""
    cluster = [(i, "127.0.0.1:%d" % free_port()) for i in (1, 2, 3)]
    work = os.path.join(base, "work")
    os.makedirs(work)
    envs = [node_env(base, i, cluster) for i in (1, 2, 3)]
    apps = [None] * 3
    starters = [threading.Thread(target=lambda k=k: apps.__setitem__(k, App(work, envs[k]))) for k in range(3)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        leaders = [a.ask("leader") for a in apps]
        check(len(set(leaders)) == 1 and leaders[0], "every process names the same leader: %s" % leaders)
        li = [a for _, a in cluster].index(leaders[0])
        check(apps[li].ask("init") == "created", "the leader creates the table")
        followers = [k for k in range(3) if k != li]
        out = apps[li].ask("write 1 50")
        check(out[-1] == "ok 50", "the leader writes: %s" % out[-3:])
        index = apps[li].ask("index")
        for k in followers:
            apps[k].ask("wait %s" % index)
            check(apps[k].ask("count") == "50", "follower %d has the rows" % (k + 1))
        refused = apps[followers[0]].ask("write 1000 1000")
        check(refused.startswith("err 1000 10248 ") and ("the leader is at " + leaders[0]) in refused,
              "a follower's write is refused naming the leader: %s" % refused)
        out = apps[li].ask("threads 8 25 10000")
        check(out.startswith("threads 200 0"), "eight threads write without errors: %s" % out)

        # The leader writes as fast as it can; kill -9 it in the middle.
        apps[li].send("write 100 100000")
        acked = []
        while len(acked) < 150:
            line = apps[li].proc.stdout.readline()
            if not line.startswith("ok "):
                break
            acked.append(int(line.split()[1]))
        apps[li].proc.kill()
        for line in apps[li].proc.stdout:
            if line.startswith("ok "):
                acked.append(int(line.split()[1]))
        apps[li].proc.wait()
        check(len(acked) >= 150, "the leader acknowledged writes before it died: %d" % len(acked))
        # Once the survivors miss the leader (an election is near or under
        # way) a write is sent to both: the one that becomes leader waits out
        # the election in its busy timeout, then commits; the other is
        # refused, naming the new leader.
        deadline = time.time() + 10
        while time.time() < deadline and any(apps[k].ask("leader") == leaders[0] for k in followers):
            time.sleep(0.005)
        start = time.time()
        for k in followers:
            apps[k].send("write %d %d" % (200000 + k, 200000 + k))
        answers = {k: apps[k].lines() for k in followers}
        elapsed = time.time() - start
        won = [k for k in followers if answers[k] == ["ok %d" % (200000 + k)]]
        check(len(won) == 1, "exactly one survivor took the write during the election: %s" % answers)
        lost = [k for k in followers if k not in won]
        check(lost and answers[lost[0]][0].startswith("err %d 10248" % (200000 + lost[0])) and
              "the leader is at " + cluster[won[0] if won else 0][1] in answers[lost[0]][0],
              "the other was refused as a follower: %s" % answers)
        print("write during the election committed after %.2f s" % elapsed)
        nl = won[0] if won else followers[0]
        index = apps[nl].ask("index")
        for k in followers:
            apps[k].ask("wait %s" % index)
            ids = set(int(x) for x in apps[k].ask("ids").split(","))
            lost_rows = [i for i in acked if i not in ids]
            check(lost_rows == [], "survivor %d lost no acknowledged row (%d acked, lost %s)" %
                  (k + 1, len(acked), lost_rows[:5]))
        # The dead process comes back with its directory and rejoins.
        apps[li] = App(work, envs[li])
        for _ in range(100):
            if apps[li].ask("count") == apps[nl].ask("count"):
                break
            time.sleep(0.1)
        counts = [a.ask("count") for a in apps]
        hashes = [a.ask("hash") for a in apps]
        check(len(set(counts)) == 1, "the restarted node caught up: %s" % counts)
        check(len(set(hashes)) == 1, "every node has the same rows: %s" % hashes)
    finally:
        for a in apps:
            if a is not None:
                a.close()


def main():
    base = tempfile.mkdtemp(prefix="sqraft-preload-")
    try:
        for test in (test_plain_file_untouched, test_bad_settings, test_single_node_python, test_three_shells,
                     test_app_processes):
            start = time.time()
            sub = os.path.join(base, test.__name__)
            os.makedirs(sub)
            try:
                test(sub)
            except Exception as e:  # a hung shell, a crash: a failure, not a hang
                failures.append("%s: %r" % (test.__name__, e))
                print("FAIL:", test.__name__, repr(e), flush=True)
            print("%s: %.1f s" % (test.__name__, time.time() - start), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if failures:
        print("%d checks failed" % len(failures))
        return 1
    print("preload: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
