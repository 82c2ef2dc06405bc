#!/usr/bin/python3
"""An application process for the preload tests: Python's sqlite3 module on
replicated database app.db (the node comes from LD_PRELOAD and SQRAFT_*).
Reads one command per line on stdin, answers on stdout, one line each
(`write` streams one line per row), then "." when the command is done.

  init                 create table t (fails on a follower: printed)
  leader | index       PRAGMA sqraft_leader / sqraft_applied_index
  wait N               PRAGMA sqraft_wait_index = N
  write FIRST LAST     insert ids FIRST..LAST, one autocommit each: "ok ID"
                       or "err ID CODE MESSAGE" (stops at the first error)
  threads N ROWS BASE  N threads, each its own connection, inserting ROWS
                       rows each from BASE + thread * ROWS: "threads OK ERRORS"
  ids | count | hash   every id / number of rows / a digest of every row
"""
import hashlib
import sqlite3
import sys
import threading


def connect():
    c = sqlite3.connect("app.db", timeout=5, isolation_level=None, check_same_thread=False)
    return c


def error_line(e):
    return "%s %s" % (getattr(e, "sqlite_errorcode", "?"), str(e).replace("\n", " "))


def main():
    db = connect()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "init":
                db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, who TEXT)")
                print("created")
            elif cmd[0] == "leader":
                print(db.execute("PRAGMA sqraft_leader").fetchone()[0])
            elif cmd[0] == "index":
                print(db.execute("PRAGMA sqraft_applied_index").fetchone()[0])
            elif cmd[0] == "wait":
                print(db.execute("PRAGMA sqraft_wait_index = %d" % int(cmd[1])).fetchone()[0])
            elif cmd[0] == "write":
                for i in range(int(cmd[1]), int(cmd[2]) + 1):
                    try:
                        db.execute("INSERT INTO t(id, who) VALUES (?, 'w')", (i,))
                    except sqlite3.Error as e:
                        print("err", i, error_line(e), flush=True)
                        break
                    print("ok", i, flush=True)
            elif cmd[0] == "threads":
                n, rows, base = int(cmd[1]), int(cmd[2]), int(cmd[3])
                errors = []

                def work(k):
                    c = connect()
                    for j in range(rows):
                        try:
                            c.execute("INSERT INTO t(id, who) VALUES (?, ?)", (base + k * rows + j, "thread"))
                            c.execute("SELECT count(*) FROM t").fetchone()
                        except sqlite3.Error as e:
                            errors.append(error_line(e))
                    c.close()

                ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                print("threads", n * rows - len(errors), len(errors), *errors[:3])
            elif cmd[0] == "ids":
                print(",".join(str(r[0]) for r in db.execute("SELECT id FROM t ORDER BY id")))
            elif cmd[0] == "count":
                print(db.execute("SELECT count(*) FROM t").fetchone()[0])
            elif cmd[0] == "hash":
                h = hashlib.sha256()
                for row in db.execute("SELECT id, who FROM t ORDER BY id"):
                    h.update(repr(row).encode())
                print(h.hexdigest())
            else:
                print("unknown command", cmd[0])
        except sqlite3.Error as e:
            print("error", error_line(e))
        print(".", flush=True)


if __name__ == "__main__":
    main()
