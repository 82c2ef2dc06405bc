#!/usr/bin/python3
"""Tests of test/fault/wire.py, the fault harness's wire-protocol client.

Against a real single sqraft node: every parameter type and value type back,
a multi-batch result read whole, SQL and constraint errors, LEADER and
CLUSTER, connect_leader/connect_node. Against sockets of the test's own: a
server that never answers (and one that trickles) makes a request raise
ConnectionLost within its timeout; a closed port fails at once. If
/usr/bin/dqlite-demo is installed, the same server tests run against a
single real dqlite node too (skipped otherwise).

Usage: wire_test.py [SQRAFT_BINARY]   (default /work/main/build/sqraft)
       extra unittest arguments may follow, e.g. -v or a test name.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

SQRAFT = "/work/main/build/sqraft"
DQLITE_DEMO = "/usr/bin/dqlite-demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_leader(address, proc, log_path, timeout_s=30.0, db="probe"):
    """Until `address` names itself as leader and OPEN works there."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{read_log(log_path)}")
        try:
            with wire.Conn(address, 1.0) as c:
                lid, laddr = c.leader()
                if lid != 0 and laddr == address:
                    c.client()
                    c.open(db)
                    return lid
                last = f"LEADER answered {lid}, {laddr!r}"
        except (wire.ConnectionLost, wire.WireError) as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{address} did not become leader in {timeout_s}s ({last}); log:\n{read_log(log_path)}")


def read_log(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-4000:]
    except OSError:
        return "(no log)"


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ServerTests:
    """Tests that run against any server (sqraft or dqlite). A subclass's
    setUpClass sets cls.address and cls.node_id."""

    address = None
    node_id = None
    one_db_per_connection = False  # dqlite: a second OPEN gets FAILURE 5

    def connect(self, db="test", timeout_s=5.0):
        conn = wire.connect_leader([self.address], db, timeout_s=timeout_s)
        self.addCleanup(conn.close)
        return conn

    def test_parameter_and_value_types(self):
        c = self.connect()
        c.exec("CREATE TABLE types (k INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, n, "
               "flag BOOLEAN, ts DATETIME, any)")
        values = [
            (1, 42, 1.5, "hello", b"\x00\x01\xffbytes", None, True, 1700000000, -7),
            (2, -(1 << 63), -0.0, "", b"", None, False, "2024-01-02 03:04:05", 2.25),
            (3, (1 << 63) - 1, 1e300, "h\u00e9llo \u2603 \U0001F600", bytes(range(256)) * 3, None, True, None,
             "text"),
            (4, 0, float("inf"), "x" * 1000, b"\x00" * 9, None, False, 0, b"blob"),
        ]
        for row in values:
            last_id, affected = c.exec("INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self.assertEqual((last_id, affected), (row[0], 1))
        cols, rows = c.query("SELECT k, i, f, s, b, n, flag, ts, any FROM types ORDER BY k")
        self.assertEqual(cols, ["k", "i", "f", "s", "b", "n", "flag", "ts", "any"])
        self.assertEqual(len(rows), len(values))
        for got, want in zip(rows, values):
            k, i, f, s, b, n, flag, ts, any_ = got
            self.assertEqual((k, i, s, b), (want[0], want[1], want[3], want[4]))
            self.assertIs(type(i), int)
            self.assertIs(type(f), float)
            self.assertEqual(f, want[2])  # (-0.0 == 0.0: SQLite may store it as integer 0)
            self.assertIs(type(s), str)
            self.assertIs(type(b), bytes)
            self.assertIsNone(n)
            # A BOOLEAN column comes back as type 11 -> bool.
            self.assertIs(type(flag), bool, f"row {k}: flag {flag!r}")
            self.assertEqual(flag, want[6])
            # DATETIME: an integer comes back as UNIXTIME (int), text as ISO8601 (str).
            self.assertEqual(ts, want[7])
            self.assertIs(type(ts), type(want[7]))
            self.assertEqual(any_, want[8])
            self.assertIs(type(any_), type(want[8]))
        # Parameters in a WHERE clause, and typeof() of what was bound.
        cols, rows = c.query("SELECT typeof(?), typeof(?), typeof(?), typeof(?), typeof(?), ?, ?",
                             (1, 2.0, "s", b"b", None, True, False))
        self.assertEqual(rows, [["integer", "real", "text", "blob", "null", 1, 0]])
        cols, rows = c.query("SELECT k FROM types WHERE i = ? AND s = ?", (42, "hello"))
        self.assertEqual(rows, [[1]])
        cols, rows = c.query("SELECT k FROM types WHERE k > ?", (100,))
        self.assertEqual((cols, rows), (["k"], []))
        # A NaN parameter: SQLite stores NULL for a NaN real.
        c.exec("INSERT INTO types (k, f) VALUES (?, ?)", (5, float("nan")))
        _, rows = c.query("SELECT f FROM types WHERE k = 5")
        self.assertEqual(rows, [[None]])
        # Values the client refuses before sending.
        with self.assertRaises(ValueError):
            c.exec("SELECT ?", (1 << 63,))
        with self.assertRaises(ValueError):
            c.exec("SELECT ?", ("nul\0inside",))
        with self.assertRaises(TypeError):
            c.exec("SELECT ?", (object(),))
        self.assertFalse(c.dead)

    def test_expressions_of_each_type(self):
        c = self.connect()
        cols, rows = c.query("SELECT 1, -2.5, 'abc', x'00ff', NULL")
        self.assertEqual(rows, [[1, -2.5, "abc", b"\x00\xff", None]])
        self.assertEqual(len(cols), 5)

    def test_multi_statement_exec(self):
        c = self.connect()
        last_id, affected = c.exec("CREATE TABLE ms (x); INSERT INTO ms VALUES (1); "
                                   "INSERT INTO ms VALUES (2), (3)")
        self.assertEqual((last_id, affected), (3, 2))
        _, rows = c.query("SELECT x FROM ms ORDER BY x")
        self.assertEqual(rows, [[1], [2], [3]])

    def test_multi_batch_result(self):
        c = self.connect()
        n, width = 20000, 200
        c.exec("CREATE TABLE big (k INTEGER PRIMARY KEY, v TEXT)")
        c.exec("INSERT INTO big (k, v) WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq "
               "WHERE x < ?) SELECT x, printf('%0200d', x) FROM seq", (n,), timeout_s=30)
        cols, rows = c.query("SELECT k, v FROM big ORDER BY k", timeout_s=30)
        self.assertEqual(cols, ["k", "v"])
        self.assertEqual(len(rows), n)
        self.assertGreater(c.last_batches, 1, "expected the rows in several ROWS messages")
        for i, (k, v) in enumerate(rows, 1):
            if k != i or v != "%0200d" % i:
                self.fail(f"row {i}: {k!r}, {v[:20]!r}...")
        self.assertEqual(len(rows[0][1]), width)
        # The connection is in step afterwards.
        self.assertEqual(c.query("SELECT count(*) FROM big")[1], [[n]])

    def test_sql_error(self):
        c = self.connect()
        with self.assertRaises(wire.WireError) as cm:
            c.exec("SELEC 1")
        self.assertEqual(cm.exception.code, 1)
        self.assertIn("syntax error", cm.exception.message)
        self.assertTrue(wire.definitely_failed(cm.exception))
        with self.assertRaises(wire.WireError) as cm:
            c.query("SELECT * FROM no_such_table")
        self.assertEqual(cm.exception.code, 1)
        self.assertIn("no such table", cm.exception.message)
        # The connection goes on after a FAILURE.
        self.assertFalse(c.dead)
        self.assertEqual(c.query("SELECT 7")[1], [[7]])

    def test_constraint_error(self):
        c = self.connect()
        c.exec("CREATE TABLE uniq (k INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)")
        c.exec("INSERT INTO uniq VALUES (1, 'a')")
        with self.assertRaises(wire.WireError) as cm:
            c.exec("INSERT INTO uniq VALUES (2, 'a')")
        self.assertEqual(cm.exception.code & 0xFF, wire.CONSTRAINT, cm.exception)
        self.assertTrue(wire.definitely_failed(cm.exception))
        with self.assertRaises(wire.WireError) as cm:
            c.exec("INSERT INTO uniq VALUES (3, NULL)")
        self.assertEqual(cm.exception.code & 0xFF, wire.CONSTRAINT, cm.exception)
        self.assertEqual(c.query("SELECT k, v FROM uniq")[1], [[1, "a"]])

    def test_leader_and_cluster(self):
        with wire.Conn(self.address, 2.0) as c:
            self.assertEqual(c.leader(), (self.node_id, self.address))
            self.assertGreater(c.client(), 0)
            self.assertEqual(c.cluster(), [(self.node_id, self.address, wire.VOTER)])

    def test_connect_node(self):
        c = wire.connect_node(self.address, "test")
        self.addCleanup(c.close)
        self.assertEqual(c.query("SELECT 1")[1], [[1]])

    def test_connect_leader_skips_dead_addresses(self):
        closed = f"127.0.0.1:{free_port()}"
        start = time.monotonic()
        c = wire.connect_leader([closed, self.address], "test", timeout_s=2.0)
        self.addCleanup(c.close)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(c.address, self.address)
        self.assertEqual(c.query("SELECT 2")[1], [[2]])

    def test_connect_leader_without_any_leader(self):
        closed = f"127.0.0.1:{free_port()}"
        with self.assertRaises(wire.ConnectionLost):
            wire.connect_leader([closed], "test", timeout_s=1.0)

    def test_two_databases_one_connection(self):
        c = self.connect()
        a = c.db_id
        if self.one_db_per_connection:
            with self.assertRaises(wire.WireError) as cm:
                c.open("other")
            self.assertEqual(cm.exception.code, wire.BUSY)
            self.assertTrue(wire.definitely_failed(cm.exception))
            self.assertEqual(c.query("SELECT 3")[1], [[3]])
            return
        b = c.open("other")
        self.assertNotEqual(a, b)
        c.exec("CREATE TABLE IF NOT EXISTS only_in_other (x)", db=b)
        c.exec("INSERT INTO only_in_other VALUES (1)", db=b)
        with self.assertRaises(wire.WireError) as cm:
            c.query("SELECT x FROM only_in_other", db=a)
        self.assertEqual(cm.exception.code, 1)
        self.assertEqual(c.query("SELECT count(*) > 0 FROM only_in_other", db=b)[1], [[1]])


class SqraftTest(ServerTests, unittest.TestCase):
    """One real sqraft node."""

    @classmethod
    def setUpClass(cls):
        if not os.access(SQRAFT, os.X_OK):
            raise unittest.SkipTest(f"no sqraft binary at {SQRAFT}")
        cls.dir = tempfile.mkdtemp(prefix="sqraft-wire-test.")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        port = free_port()
        cls.address = f"127.0.0.1:{port}"
        cls.node_id = 1
        cls.log_path = os.path.join(cls.dir, "node.log")
        log = open(cls.log_path, "wb")
        cls.addClassCleanup(log.close)
        cls.proc = subprocess.Popen([SQRAFT, "node", "--id", "1", "--address", cls.address,
                                     "--dir", os.path.join(cls.dir, "data"), "--cluster", f"1@{cls.address}"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(stop_process, cls.proc)
        wait_for_leader(cls.address, cls.proc, cls.log_path)

    def test_node_still_running(self):
        self.assertIsNone(self.proc.poll(), read_log(self.log_path))

    def test_declared_type_edge_values(self):
        # sqraft keeps the storage type of values that do not fit the
        # declared type (dqlite asserts on these: see DqliteTest).
        c = self.connect()
        c.exec("CREATE TABLE edge (k INTEGER PRIMARY KEY, ts DATETIME, d DATE, b BOOLEAN)")
        c.exec("INSERT INTO edge VALUES (1, 1.5, x'01', 'yes'), (2, NULL, NULL, NULL), (3, x'02', 2.5, 0.5)")
        _, rows = c.query("SELECT ts, d, b FROM edge ORDER BY k")
        self.assertEqual(rows, [[1.5, b"\x01", "yes"], [None, None, None], [b"\x02", 2.5, 0.5]])

    def test_membership_refusals(self):
        c = self.connect()
        # TRANSFER with no other voter is refused at once.
        with self.assertRaises(wire.WireError) as cm:
            c.transfer(0)
        self.assertEqual(cm.exception.code, 1)
        # ASSIGN / REMOVE of a node that is not in the cluster.
        with self.assertRaises(wire.WireError) as cm:
            c.assign(99, wire.VOTER)
        self.assertEqual(cm.exception.code, 1)
        self.assertIn("no server has ID 99", cm.exception.message)  # libraft's reason, not a generic one
        with self.assertRaises(wire.WireError) as cm:
            c.remove(99)
        self.assertEqual(cm.exception.code, 1)
        self.assertIn("server ID is not valid", cm.exception.message)
        # ADD then REMOVE a spare (never started, so it stays a spare).
        spare = f"127.0.0.1:{free_port()}"
        c.add(7, spare)
        self.assertIn((7, spare, wire.SPARE), c.cluster())
        # A later failure names its own cause, not the text an earlier
        # refusal left behind (promoting a node nobody can reach).
        with self.assertRaises(wire.WireError) as cm:
            c.assign(7, wire.VOTER, timeout_s=20)
        self.assertNotIn("99", cm.exception.message)
        self.assertIn("membership change", cm.exception.message)
        c.remove(7)
        self.assertEqual(c.cluster(), [(1, self.address, wire.VOTER)])


@unittest.skipUnless(os.access(DQLITE_DEMO, os.X_OK), f"{DQLITE_DEMO} is not installed")
class DqliteTest(ServerTests, unittest.TestCase):
    """One real dqlite node (go-dqlite's demo on libdqlite).

    Careful with data here: libdqlite 1.11.1 aborts the whole node (an
    assert in src/query.c) when a query returns a REAL or BLOB from a column
    declared DATETIME/DATE/TIMESTAMP, or anything but an INTEGER or NULL from
    a column declared BOOLEAN. It also sends a NULL in a BOOLEAN column as
    false."""

    one_db_per_connection = True

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dqlite-wire-test.")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        api, db = free_port(), free_port()
        cls.address = f"127.0.0.1:{db}"
        cls.log_path = os.path.join(cls.dir, "demo.log")
        log = open(cls.log_path, "wb")
        cls.addClassCleanup(log.close)
        cls.proc = subprocess.Popen([DQLITE_DEMO, "--api", f"127.0.0.1:{api}", "--db", cls.address,
                                     "--dir", os.path.join(cls.dir, "data")],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(stop_process, cls.proc)
        cls.node_id = wait_for_leader(cls.address, cls.proc, cls.log_path)


class LocalSocketTest(unittest.TestCase):
    """Timeouts and refused connections, against the test's own sockets."""

    def listener(self, family=socket.AF_INET, address=("127.0.0.1", 0)):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind(address)
        s.listen(8)
        self.addCleanup(s.close)
        return s

    def test_server_that_never_answers(self):
        srv = self.listener()  # never accepts: the kernel completes the handshake
        addr = "127.0.0.1:%d" % srv.getsockname()[1]
        c = wire.Conn(addr, timeout_s=0.5)
        start = time.monotonic()
        with self.assertRaises(wire.ConnectionLost) as cm:
            c.leader()
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.45)
        self.assertLess(took, 1.0)
        self.assertTrue(cm.exception.sent)
        self.assertFalse(wire.definitely_failed(cm.exception))
        self.assertTrue(c.dead)
        # A dead connection fails at once, and says the request was not sent.
        start = time.monotonic()
        with self.assertRaises(wire.ConnectionLost) as cm:
            c.exec("SELECT 1", db=0)
        self.assertLess(time.monotonic() - start, 0.1)
        self.assertFalse(cm.exception.sent)

    def test_server_that_trickles_is_bounded_as_a_whole(self):
        # Each recv gets a byte in time, but the whole answer never arrives
        # within the timeout: the request must still fail at the timeout.
        srv = self.listener()
        addr = "127.0.0.1:%d" % srv.getsockname()[1]
        stop = threading.Event()
        self.addCleanup(stop.set)

        def serve():
            conn, _ = srv.accept()
            with conn:
                # SERVER answer announcing a 3-word body, sent a byte at a time.
                msg = bytes([3, 0, 0, 0, 1, 0, 0, 0]) + bytes(24)
                for byte in msg:
                    if stop.wait(0.1):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return
                stop.wait(5)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        c = wire.Conn(addr, timeout_s=0.6)
        start = time.monotonic()
        with self.assertRaises(wire.ConnectionLost):
            c.leader()
        took = time.monotonic() - start
        self.assertLess(took, 1.0)
        self.assertGreaterEqual(took, 0.55)

    def test_server_that_hangs_up(self):
        srv = self.listener()
        addr = "127.0.0.1:%d" % srv.getsockname()[1]

        def serve():
            conn, _ = srv.accept()
            conn.recv(16)
            conn.close()

        threading.Thread(target=serve, daemon=True).start()
        c = wire.Conn(addr, timeout_s=2.0)
        start = time.monotonic()
        with self.assertRaises(wire.ConnectionLost):
            c.leader()
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertTrue(c.dead)

    def test_closed_port(self):
        port = free_port()
        start = time.monotonic()
        with self.assertRaises(wire.ConnectionLost) as cm:
            wire.Conn(f"127.0.0.1:{port}", timeout_s=2.0)
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertFalse(cm.exception.sent)

    def test_abstract_unix_socket(self):
        name = f"wire-test-{os.getpid()}-{time.monotonic_ns()}"
        with self.assertRaises(wire.ConnectionLost):
            wire.Conn("@" + name, timeout_s=1.0)
        self.listener(socket.AF_UNIX, "\0" + name)
        c = wire.Conn("@" + name, timeout_s=0.3)
        with self.assertRaises(wire.ConnectionLost):
            c.leader()

    def test_malformed_answer_is_connection_lost(self):
        srv = self.listener()
        addr = "127.0.0.1:%d" % srv.getsockname()[1]

        def serve():
            conn, _ = srv.accept()
            with conn:
                conn.recv(16)
                conn.recv(16)
                # A RESULT (type 6) where SERVER (1) is due.
                conn.sendall(bytes([2, 0, 0, 0, 6, 0, 0, 0]) + bytes(16))
                time.sleep(1)

        threading.Thread(target=serve, daemon=True).start()
        c = wire.Conn(addr, timeout_s=2.0)
        with self.assertRaises(wire.ConnectionLost):
            c.leader()
        self.assertTrue(c.dead)


class ClassificationTest(unittest.TestCase):
    def test_definitely_failed(self):
        W = wire.WireError
        certain = [W(10250, "not leader"), W(5, "database is locked"), W(517, "busy snapshot"),
                   W(19, "constraint"), W(2067, "UNIQUE constraint failed"), W(1299, "NOT NULL"),
                   W(1, "syntax error"), W(1005, "malformed"), W(12, "no such database")]
        unknown = [W(10506, "leadership lost"), W(10762, "commit unknown"), W(10, "disk I/O error"),
                   W(778, "IOERR_WRITE"), W(9, "interrupted"), W(4, "abort"), W(13, "full"),
                   W(99999, "?"), wire.ConnectionLost("x"), wire.ConnectionLost("x", sent=False),
                   ValueError("x")]
        for e in certain:
            self.assertTrue(wire.definitely_failed(e), e)
        for e in unknown:
            self.assertFalse(wire.definitely_failed(e), e)
        # Membership changes: code 1 may be a leadership loss after the proposal.
        self.assertFalse(wire.definitely_failed(W(1, "leadership lost"), membership=True))
        self.assertTrue(wire.definitely_failed(W(5, "a change is already in progress"), membership=True))
        self.assertTrue(wire.definitely_failed(W(10250, "not leader"), membership=True))
        self.assertFalse(wire.definitely_failed(W(10506, "leadership lost"), membership=True))

    def test_param_encoding(self):
        schema, b = wire._encode_params([1, 2.0, "ab", b"xyz", None, True])
        self.assertEqual(schema, 0)
        self.assertEqual(b[:8], bytes([6, 1, 2, 3, 4, 5, 11, 0]))
        self.assertEqual(len(b) % 8, 0)
        self.assertEqual(len(b), 8 + 8 + 8 + 8 + 16 + 8 + 8)
        schema, b = wire._encode_params([0] * 300)
        self.assertEqual(schema, 1)
        self.assertEqual(b[:4], (300).to_bytes(4, "little"))
        self.assertEqual(len(b), 304 + 300 * 8)  # 4 + 300 type bytes = 304, a whole number of words
        self.assertEqual(wire._encode_params([]), (0, b""))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and (os.path.sep in args[0] or os.path.isfile(args[0])):
        SQRAFT = os.path.abspath(args.pop(0))
    unittest.main(argv=[sys.argv[0]] + args)
