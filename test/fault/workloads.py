"""The fault suite's workloads: what clients do, and how it is recorded.

Each workload has:
  setup(conn)              creates its tables (once, on the leader)
  op(rng, process) -> (f, value)   the next operation to invoke
  run(conn, f, value) -> value     performs it; raises on failure
  final(conn_or_db) -> ops          reads for the end of the run (optional)
  check(history, finals) -> dict    the checker's verdict (checkers.py)

Histories are Jepsen style (see checkers.py): an "invoke" before the call,
then "ok", "fail" (certainly did not happen) or "info" (unknown).
"""

import itertools
import sqlite3

import checkers
import wire


class Workload:
    name = ""
    # Whether an operation is a pure read (a failed read changes nothing).
    reads = ("read",)

    def __init__(self, rng):
        self.rng = rng

    def setup(self, conn):
        pass

    def final_ops(self, db):
        """Ops recorded for the final read of one node's database (an
        sqlite3 connection on its dump)."""
        return []


class SetWorkload(Workload):
    """Adds unique integers; at the end every node must hold every
    acknowledged one and nothing never attempted."""
    name = "set"

    def __init__(self, rng):
        super().__init__(rng)
        self.next = itertools.count(1)

    def setup(self, conn):
        conn.exec("CREATE TABLE IF NOT EXISTS s (v INTEGER PRIMARY KEY)")

    def op(self, process, client):
        return "add", next(self.next)

    def run(self, conn, f, value):
        conn.exec("INSERT INTO s (v) VALUES (?)", (value,))
        return value

    def final_ops(self, db):
        return [("read", sorted(r[0] for r in db.execute("SELECT v FROM s")))]

    def check(self, history):
        return checkers.check_set(history)


class BankWorkload(Workload):
    """Transfers between accounts in single statements; every read must see
    the constant total."""
    name = "bank"
    accounts = list(range(1, 6))
    balance = 100

    @property
    def total(self):
        return self.balance * len(self.accounts)

    def setup(self, conn):
        conn.exec("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        for a in self.accounts:
            conn.exec("INSERT OR IGNORE INTO accounts VALUES (?, ?)", (a, self.balance))

    def op(self, process, client):
        if self.rng.random() < 0.5:
            return "read", None
        a, b = self.rng.sample(self.accounts, 2)
        return "transfer", {"from": a, "to": b, "amount": self.rng.randint(1, 20)}

    def run(self, conn, f, value):
        if f == "read":
            _, rows = conn.query("SELECT id, balance FROM accounts ORDER BY id")
            return {int(r[0]): int(r[1]) for r in rows}
        # One statement, so atomic whatever happens: both rows or neither,
        # and only if the source has the money.
        _, n = conn.exec(
            "UPDATE accounts SET balance = balance + CASE id WHEN ?1 THEN -?3 ELSE ?3 END "
            "WHERE id IN (?1, ?2) AND (SELECT balance FROM accounts WHERE id = ?1) >= ?3",
            (value["from"], value["to"], value["amount"]))
        if n == 0:
            raise Refused("insufficient funds")
        return value

    def final_ops(self, db):
        return [("read", {r[0]: r[1] for r in db.execute("SELECT id, balance FROM accounts")})]

    def check(self, history):
        return checkers.check_bank(history, self.total, self.accounts)


class RegisterWorkload(Workload):
    """Reads, writes and compare-and-sets on a few keys, checked for
    linearizability. Keys rotate so that no key's history grows too long
    for the search."""
    name = "register"
    keys_live = 3
    ops_per_key = 150

    def __init__(self, rng):
        super().__init__(rng)
        self.count = 0
        self.values = itertools.count(1)
        self.last = {}

    def setup(self, conn):
        conn.exec("CREATE TABLE IF NOT EXISTS r (k INTEGER PRIMARY KEY, v INTEGER)")

    # Clients 0 and 1 only read: like a read-mostly application's, their
    # connections stay where they are as long as reads succeed, so a node
    # that answers reads it should not is read from for as long as it does.
    readers = 2

    def op(self, process, client):
        self.count += 1
        base = (self.count // (self.ops_per_key * self.keys_live)) * self.keys_live
        k = base + self.rng.randrange(self.keys_live)
        x = 0.0 if client < self.readers else self.rng.random()
        if x < 0.5:
            return "read", [k, None]
        if x < 0.8:
            return "write", [k, self.remember(k, next(self.values))]
        # Compare against the value this workload last wrote to the key (it
        # may have been overwritten since: both outcomes get checked).
        return "cas", [k, [self.last.get(k, 0), self.remember(k, next(self.values))]]

    def remember(self, k, v):
        self.last[k] = v
        return v

    def run(self, conn, f, value):
        k, v = value
        if f == "read":
            _, rows = conn.query("SELECT v FROM r WHERE k = ?", (k,))
            return [k, rows[0][0] if rows else None]
        if f == "write":
            conn.exec("INSERT INTO r (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (k, v))
            return value
        old, new = v
        _, n = conn.exec("UPDATE r SET v = ? WHERE k = ? AND v = ?", (new, k, old))
        if n == 0:
            raise Refused("cas: the value differs")
        return value

    def check(self, history):
        return checkers.check_register(history)


class AppendWorkload(Workload):
    """List-append transactions of 1-4 operations, checked Elle style."""
    name = "append"
    reads = ()
    keys_live = 8

    def __init__(self, rng):
        super().__init__(rng)
        self.values = itertools.count(1)
        self.count = 0

    def setup(self, conn):
        conn.exec("CREATE TABLE IF NOT EXISTS a (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")

    def op(self, process, client):
        self.count += 1
        base = self.count // 400
        ops = []
        for _ in range(self.rng.randint(1, 4)):
            k = base + self.rng.randrange(self.keys_live)
            if self.rng.random() < 0.5:
                ops.append(["r", k, None])
            else:
                ops.append(["append", k, next(self.values)])
        return "txn", ops

    def run(self, conn, f, value):
        out = []
        conn.exec("BEGIN")
        committing = False
        try:
            for op, k, v in value:
                if op == "r":
                    _, rows = conn.query("SELECT v FROM a WHERE k = ?", (k,))
                    out.append(["r", k, [int(x) for x in rows[0][0].split(",")] if rows else []])
                else:
                    conn.exec("INSERT INTO a (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v || ',' || "
                              "excluded.v", (k, str(v)))
                    out.append(["append", k, v])
            committing = True
            conn.exec("COMMIT")
        except Exception as e:
            if not committing:
                # Not committed: the server rolls the transaction back (on
                # this error, or when the connection goes).
                try:
                    conn.exec("ROLLBACK")
                except Exception:
                    pass
                raise NotCommitted(e) from None
            raise
        return out

    def check(self, history):
        return checkers.check_append(history)


class Refused(Exception):
    """The statement ran and changed nothing (a transfer without the funds,
    a compare-and-set that did not match): a definite failure."""


class NotCommitted(Exception):
    """A transaction that failed before its COMMIT was sent: it did not happen."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


WORKLOADS = {w.name: w for w in (SetWorkload, BankWorkload, RegisterWorkload, AppendWorkload)}


def definitely_failed(exc):
    if isinstance(exc, (NotCommitted, Refused)):
        return True
    return wire.definitely_failed(exc)


def open_dump(files, dir, name):
    """Writes a DUMP's files to `dir` and opens the database read-only."""
    import os
    for fname, data in files.items():
        with open(os.path.join(dir, fname), "wb") as f:
            f.write(data)
    db = sqlite3.connect(os.path.join(dir, name))
    return db
