"""A small client for version 1 of the dqlite wire protocol.

Written for the fault-injection harness, which drives sqraft nodes and real
dqlite nodes alike, so it uses only plain protocol v1 that both accept:
LEADER, CLIENT, OPEN, EXEC_SQL, QUERY_SQL, CLUSTER (format 1), ADD, ASSIGN,
REMOVE and TRANSFER. Python 3.11 standard library only.

Every request is bounded in time as a whole (send, and every receive of every
ROWS batch, share one deadline). Any socket problem, timeout, EOF or
unparseable answer raises ConnectionLost and marks the Conn dead: the outcome
of a request in flight is then unknown. A FAILURE answer raises WireError; the
connection stays usable.

    conn = connect_leader(["127.0.0.1:9001", "127.0.0.1:9002"], "db")
    conn.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    conn.exec("INSERT INTO t VALUES (?, ?)", (1, "one"))
    columns, rows = conn.query("SELECT k, v FROM t")
    conn.close()

Protocol reference: docs/wire-protocol.md.
"""
import socket
import struct
import time

__all__ = [
    "WireError", "ConnectionLost", "Conn", "connect_leader", "connect_node", "definitely_failed",
    "VOTER", "STANDBY", "SPARE",
    "SQLITE_ERROR", "ABORT", "BUSY", "LOCKED", "INTERRUPT", "NOTFOUND", "CANTOPEN", "CONSTRAINT",
    "MISMATCH", "AUTH", "RANGE", "NOT_LEADER", "LEADERSHIP_LOST", "COMMIT_UNKNOWN", "PROTOCOL_ERROR",
]

# ---------------------------------------------------------------- constants

# Failure codes (SQLite result codes, extended ones included, plus dqlite's).
SQLITE_ERROR = 1       # SQL error (syntax, no such table, ...); also some refusals
ABORT = 4              # sqraft: the open transaction was rolled back
BUSY = 5               # SQLITE_BUSY: lock contention / write queue full or timed out
LOCKED = 6             # SQLITE_LOCKED
INTERRUPT = 9          # statement stopped (timeout, INTERRUPT, shutdown)
NOTFOUND = 12          # no such database id / statement id on this connection
CANTOPEN = 14
TOOBIG = 18
CONSTRAINT = 19        # primary code; extended: 2067 UNIQUE, 1555 PRIMARYKEY, 1299 NOTNULL, ...
MISMATCH = 20
AUTH = 23
RANGE = 25
NOT_LEADER = 10250       # SQLITE_IOERR_NOT_LEADER = 10 | 40 << 8
LEADERSHIP_LOST = 10506  # SQLITE_IOERR_LEADERSHIP_LOST = 10 | 41 << 8
COMMIT_UNKNOWN = 10762   # 10 | 42 << 8: a commit whose outcome the server cannot tell
PROTOCOL_ERROR = 1005    # malformed / unknown request

# Node roles on the wire.
VOTER, STANDBY, SPARE = 0, 1, 2

PROTOCOL_VERSION = 1

# Request types.
REQ_LEADER = 0
REQ_CLIENT = 1
REQ_OPEN = 3
REQ_EXEC_SQL = 8
REQ_QUERY_SQL = 9
REQ_DUMP = 15
REQ_INTERRUPT = 10
REQ_ADD = 12
REQ_ASSIGN = 13
REQ_REMOVE = 14
REQ_CLUSTER = 16
REQ_TRANSFER = 17

# Response types.
RESP_FAILURE = 0
RESP_SERVER = 1
RESP_WELCOME = 2
RESP_SERVERS = 3
RESP_DB = 4
RESP_RESULT = 6
RESP_ROWS = 7
RESP_EMPTY = 8
RESP_FILES = 9

# Value type codes (parameters and row columns).
T_INTEGER = 1
T_FLOAT = 2
T_TEXT = 3
T_BLOB = 4
T_NULL = 5
T_UNIXTIME = 9
T_ISO8601 = 10
T_BOOLEAN = 11

ROWS_MORE = 0xEEEEEEEEEEEEEEEE
ROWS_DONE = 0xFFFFFFFFFFFFFFFF

# No legitimate answer is anywhere near this; a larger length means a broken
# stream, and must not make us allocate it.
MAX_RESPONSE_BODY = 256 << 20

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


# ---------------------------------------------------------------- errors

class WireError(Exception):
    """The server answered FAILURE. `.code` is the failure code, `.message`
    the server's text."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection broke (socket error, timeout, EOF, or an answer that
    cannot be parsed): the outcome of the request in flight is unknown.

    `.sent` is False when the request was certainly not delivered whole (the
    connection was already dead, could not be made, or broke before all of
    the request's bytes were handed to the kernel), True otherwise. A server
    cannot act on a partial message, so `sent=False` means the request did
    not take effect; definitely_failed() still answers False for every
    ConnectionLost, to stay conservative."""

    def __init__(self, message, sent=True):
        super().__init__(message)
        self.sent = sent


def definitely_failed(exc, membership=False):
    """True only when the request that raised `exc` certainly did not take
    effect; False means indeterminate (it may have committed, or may still
    commit later under another leader). Pass membership=True for ADD,
    ASSIGN, REMOVE and TRANSFER (see the end of this comment).

    Reasoning, per case:
    - ConnectionLost: the request may have reached the server and committed
      before the connection broke or the answer was late -> indeterminate.
    - LEADERSHIP_LOST (10506): the write was handed to Raft but leadership was
      lost before it committed; the entry may still be committed by the next
      leader -> indeterminate. COMMIT_UNKNOWN (10762) says so outright.
    - NOT_LEADER (10250): both dqlite and sqraft answer it before a write is
      proposed to Raft (the node is not the (ready) leader, or Raft refused
      the proposal synchronously), so nothing of the request can commit.
    - BUSY (5 and its extended codes) and LOCKED (6): lock contention or, in
      sqraft, a full or timed-out write queue; the statement never reached
      commit.
    - CONSTRAINT (19 and extended: 2067 UNIQUE, 1555 PRIMARYKEY, 1299 NOTNULL,
      787 FOREIGNKEY, 275 CHECK, ...): SQLite rolled the failing statement
      back before any commit.
    - SQLITE_ERROR (1): the SQL did not compile or run (syntax, no such
      table, ...); nothing ran.
    - PROTOCOL_ERROR (1005), NOTFOUND (12: database id not open), MISMATCH
      (20: bad parameter type), RANGE (25: too many parameters), AUTH (23:
      refused statement): the server refused the request before running it.
    - Anything else (IOERR family, INTERRUPT 9 -- sqraft documents a rare
      FAILURE 9 for a write that did commit --, ABORT 4, FULL, ...) is not
      known to be safe -> indeterminate.

    Membership requests (membership=True): sqraft answers every libraft
    failure of ADD/ASSIGN/REMOVE with code 1, including a change whose
    leadership was lost after it was proposed (which may still commit), and
    TRANSFER's "did not complete: this node still leads" is code 1 too,
    though the transfer may still happen. So code 1 is indeterminate there.
    dqlite maps "a change is already in progress" to 5 and leadership lost
    to 10506, which the rules above handle.

    Caveats the caller must keep in mind: the classification is about a
    single-statement request. In a multi-statement EXEC_SQL outside an
    explicit transaction each statement commits on its own, so an error
    raised by a later statement says nothing about the earlier ones. Inside
    an explicit transaction, a statement that failed did not take effect,
    but what the transaction as a whole does is decided by its COMMIT. And
    FAILURE 1 on TRANSFER ("did not complete: this node still leads") does
    not promise that the transfer will not happen later (membership=True).
    """
    if not isinstance(exc, WireError):
        return False
    code = exc.code
    if code in (LEADERSHIP_LOST, COMMIT_UNKNOWN):
        return False
    if code == NOT_LEADER:
        return True
    if membership and code == SQLITE_ERROR:
        return False
    if code in (SQLITE_ERROR, PROTOCOL_ERROR, NOTFOUND, MISMATCH, RANGE, AUTH):
        return True
    # BUSY, LOCKED and CONSTRAINT with any extended code; every other
    # extended code (IOERR_*, ...) is indeterminate.
    return (code & 0xFF) in (BUSY, LOCKED, CONSTRAINT)


class _Malformed(Exception):
    pass


# ---------------------------------------------------------------- encoding

def _pad8(n):
    return (n + 7) & ~7


def _text(s):
    b = s.encode("utf-8")
    if b"\0" in b:
        raise ValueError("text with a NUL byte cannot be sent as text (use bytes)")
    b += b"\0"
    return b + b"\0" * (_pad8(len(b)) - len(b))


def _u64(v):
    return struct.pack("<Q", v)


def _encode_params(params):
    """Returns (schema, bytes). Schema 0 (u8 count) up to 255 parameters,
    schema 1 (u32 count) beyond."""
    params = list(params)
    if not params:
        return 0, b""
    types = bytearray()
    values = bytearray()
    for p in params:
        if p is None:
            types.append(T_NULL)
            values += _u64(0)
        elif isinstance(p, bool):  # before int: bool is an int
            types.append(T_BOOLEAN)
            values += _u64(1 if p else 0)
        elif isinstance(p, int):
            if not _I64_MIN <= p <= _I64_MAX:
                raise ValueError(f"integer parameter {p} does not fit in 64 bits")
            types.append(T_INTEGER)
            values += struct.pack("<q", p)
        elif isinstance(p, float):
            types.append(T_FLOAT)
            values += struct.pack("<d", p)
        elif isinstance(p, str):
            types.append(T_TEXT)
            values += _text(p)
        elif isinstance(p, (bytes, bytearray, memoryview)):
            b = bytes(p)
            types.append(T_BLOB)
            values += _u64(len(b)) + b + b"\0" * (_pad8(len(b)) - len(b))
        else:
            raise TypeError(f"unsupported parameter type {type(p).__name__}")
    n = len(params)
    if n <= 255:
        schema, head = 0, bytes([n])
    else:
        schema, head = 1, struct.pack("<I", n)
    head += bytes(types)
    head += b"\0" * (_pad8(len(head)) - len(head))
    return schema, head + bytes(values)


class _Reader:
    def __init__(self, body):
        self.b = body
        self.off = 0

    def remaining(self):
        return len(self.b) - self.off

    def _take(self, n):
        if self.off + n > len(self.b):
            raise _Malformed("response body too short")
        start = self.off
        self.off += n
        return start

    def u64(self):
        return struct.unpack_from("<Q", self.b, self._take(8))[0]

    def i64(self):
        return struct.unpack_from("<q", self.b, self._take(8))[0]

    def u32(self):
        return struct.unpack_from("<I", self.b, self._take(4))[0]

    def double(self):
        return struct.unpack_from("<d", self.b, self._take(8))[0]

    def peek_u64(self):
        if self.off + 8 > len(self.b):
            raise _Malformed("response body too short")
        return struct.unpack_from("<Q", self.b, self.off)[0]

    def raw(self, n):
        start = self._take(n)
        return self.b[start:start + n]

    def text(self):
        end = self.b.find(b"\0", self.off)
        if end < 0:
            raise _Malformed("unterminated text")
        try:
            s = self.b[self.off:end].decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Malformed(f"text is not UTF-8: {e}") from None
        self.off = _pad8(end + 1)
        if self.off > len(self.b):
            raise _Malformed("text padding past the end of the body")
        return s

    def blob(self):
        n = self.u64()
        if n > self.remaining():
            raise _Malformed("blob length past the end of the body")
        data = self.raw(n)
        self._take(_pad8(n) - n)
        return data


def _decode_value(r, t):
    if t == T_INTEGER or t == T_UNIXTIME:
        return r.i64()
    if t == T_FLOAT:
        return r.double()
    if t == T_TEXT:
        return r.text()
    if t == T_ISO8601:
        # dqlite sends a NULL in a DATETIME/DATE/TIMESTAMP column as an empty
        # ISO8601 text; go-dqlite reads "" as NULL, and so do we.
        return r.text() or None
    if t == T_BLOB:
        return r.blob()
    if t == T_NULL:
        r.u64()
        return None
    if t == T_BOOLEAN:
        return r.u64() != 0
    raise _Malformed(f"unknown value type {t}")


def _decode_rows(body):
    """One ROWS message -> (columns, rows, more)."""
    r = _Reader(body)
    n = r.u64()
    if n > len(body):
        raise _Malformed(f"column count {n} larger than the message")
    columns = [r.text() for _ in range(n)]
    header_len = _pad8((n + 1) // 2)
    rows = []
    while True:
        w = r.peek_u64()
        if w == ROWS_DONE or w == ROWS_MORE:
            r.u64()
            if r.remaining():
                raise _Malformed("bytes after the end-of-rows marker")
            return columns, rows, w == ROWS_MORE
        if n == 0:
            raise _Malformed("row data in a result with no columns")
        header = r.raw(header_len)
        row = []
        for i in range(n):
            t = (header[i >> 1] >> (4 * (i & 1))) & 0xF
            row.append(_decode_value(r, t))
        rows.append(row)


# ---------------------------------------------------------------- connection

def _connect_socket(address, timeout_s):
    if address.startswith("@"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = "\0" + address[1:]
    else:
        host, sep, port = address.rpartition(":")
        if not sep or not host:
            raise ValueError(f"address {address!r} is not host:port or @name")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = (host, int(port))
    try:
        s.settimeout(timeout_s)
        s.connect(target)
    except BaseException:
        s.close()
        raise
    return s


class Conn:
    """One client connection to one node. Not thread-safe.

    Every method call is bounded by `timeout_s` (or by its own `timeout_s`
    argument where it has one) as a whole."""

    def __init__(self, address, timeout_s=2.0):
        self.address = address
        self.timeout_s = timeout_s
        self.db_id = None          # the database opened last; exec/query use it
        self.last_batches = 0      # ROWS messages the last query took
        self.sock = None
        deadline = time.monotonic() + timeout_s
        try:
            self.sock = _connect_socket(address, timeout_s)
            self._send(_u64(PROTOCOL_VERSION), deadline)
        except OSError as e:  # refused, unreachable, timed out
            self._kill()
            raise ConnectionLost(f"connect to {address}: {e}", sent=False) from None

    def __repr__(self):
        return f"<wire.Conn {self.address}{' dead' if self.dead else ''}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def dead(self):
        return self.sock is None

    def close(self):
        self._kill()

    def _kill(self):
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    # -- raw I/O, all against one deadline

    def _remaining(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("request timed out")
        return left

    def _send(self, data, deadline):
        view = memoryview(data)
        while view:
            self.sock.settimeout(self._remaining(deadline))
            n = self.sock.send(view)
            view = view[n:]

    def _recv_exact(self, n, deadline):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self.sock.settimeout(self._remaining(deadline))
            k = self.sock.recv_into(view[got:])
            if k == 0:
                raise EOFError("connection closed by the server")
            got += k
        return bytes(buf)

    def _recv_message(self, deadline):
        header = self._recv_exact(8, deadline)
        words, mtype, _schema = struct.unpack_from("<IBB", header)
        size = words * 8
        if size > MAX_RESPONSE_BODY:
            raise _Malformed(f"response body of {size} bytes")
        body = self._recv_exact(size, deadline) if size else b""
        return mtype, body

    def _fail(self, what, e, sent):
        self._kill()
        return ConnectionLost(f"{self.address}: {what}: {type(e).__name__}: {e}", sent=sent)

    def _request(self, rtype, body, expect, schema=0, timeout_s=None, rows=False):
        """Sends one request, returns the body of the expected answer (or, with
        rows=True, the decoded (columns, rows) of all ROWS batches)."""
        if self.sock is None:
            raise ConnectionLost(f"{self.address}: connection is closed", sent=False)
        assert len(body) % 8 == 0
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        msg = struct.pack("<IBBH", len(body) // 8, rtype, schema, 0) + body
        try:
            self._send(msg, deadline)
        except (OSError, EOFError) as e:
            raise self._fail("send", e, sent=False) from None
        try:
            mtype, answer = self._recv_message(deadline)
            if mtype == RESP_FAILURE:
                r = _Reader(answer)
                raise WireError(r.u64(), r.text())
            if mtype != expect:
                raise _Malformed(f"answer type {mtype} to request {rtype}, expected {expect}")
            if not rows:
                return answer
            columns, all_rows, more = _decode_rows(answer)
            self.last_batches = 1
            while more:
                mtype, answer = self._recv_message(deadline)
                if mtype == RESP_FAILURE:  # the stream ended with an error
                    r = _Reader(answer)
                    raise WireError(r.u64(), r.text())
                if mtype != RESP_ROWS:
                    raise _Malformed(f"answer type {mtype} inside a row stream")
                cols, batch, more = _decode_rows(answer)
                if cols != columns:
                    raise _Malformed(f"row batch with columns {cols}, first batch had {columns}")
                all_rows.extend(batch)
                self.last_batches += 1
            return columns, all_rows
        except WireError:
            raise
        except (OSError, EOFError, _Malformed) as e:
            raise self._fail("receive", e, sent=True) from None

    # -- requests

    def leader(self, timeout_s=None):
        """LEADER -> (id, address) of the leader this node knows; (0, "")
        when it knows none."""
        r = _Reader(self._request(REQ_LEADER, _u64(0), RESP_SERVER, timeout_s=timeout_s))
        try:
            return r.u64(), r.text()
        except _Malformed as e:
            raise self._fail("LEADER answer", e, sent=True) from None

    def client(self, id=0, timeout_s=None):
        """CLIENT registration -> heartbeat timeout in ms."""
        r = _Reader(self._request(REQ_CLIENT, _u64(id), RESP_WELCOME, timeout_s=timeout_s))
        try:
            return r.u64()
        except _Malformed as e:
            raise self._fail("WELCOME answer", e, sent=True) from None

    def open(self, name, timeout_s=None):
        """OPEN name (flags 0, default VFS) -> database id, which later
        exec/query calls use."""
        body = _text(name) + _u64(0) + _text("")
        r = _Reader(self._request(REQ_OPEN, body, RESP_DB, timeout_s=timeout_s))
        try:
            self.db_id = r.u32()
        except _Malformed as e:
            raise self._fail("DB answer", e, sent=True) from None
        return self.db_id

    def _db(self, db):
        db = self.db_id if db is None else db
        if db is None:
            raise ValueError("no database open on this connection")
        return db

    def exec(self, sql, params=(), db=None, timeout_s=None):
        """EXEC_SQL -> (last_insert_id, rows_affected). Several statements
        run in order; the result is the last one's."""
        schema, pbytes = _encode_params(params)
        body = _u64(self._db(db)) + _text(sql) + pbytes
        r = _Reader(self._request(REQ_EXEC_SQL, body, RESP_RESULT, schema=schema, timeout_s=timeout_s))
        try:
            return r.u64(), r.u64()
        except _Malformed as e:
            raise self._fail("RESULT answer", e, sent=True) from None

    def query(self, sql, params=(), db=None, timeout_s=None):
        """QUERY_SQL -> (columns, rows), all batches read; each row a list of
        int / float / str / bytes / None / bool (UNIXTIME values as int,
        ISO8601 ones as str, an empty ISO8601 as None like go-dqlite).
        `self.last_batches` tells how many ROWS messages it took."""
        schema, pbytes = _encode_params(params)
        body = _u64(self._db(db)) + _text(sql) + pbytes
        return self._request(REQ_QUERY_SQL, body, RESP_ROWS, schema=schema, timeout_s=timeout_s, rows=True)

    def cluster(self, timeout_s=None):
        """CLUSTER format 1 -> [(id, address, role)]."""
        r = _Reader(self._request(REQ_CLUSTER, _u64(1), RESP_SERVERS, timeout_s=timeout_s))
        try:
            n = r.u64()
            if n * 24 > r.remaining():
                raise _Malformed(f"{n} servers in a {len(r.b)}-byte answer")
            return [(r.u64(), r.text(), r.u64()) for _ in range(n)]
        except _Malformed as e:
            raise self._fail("SERVERS answer", e, sent=True) from None

    def _empty(self, rtype, body, timeout_s):
        self._request(rtype, body, RESP_EMPTY, timeout_s=timeout_s)

    def add(self, id, address, timeout_s=None):
        """ADD a node (it joins as a spare)."""
        self._empty(REQ_ADD, _u64(id) + _text(address), timeout_s)

    def assign(self, id, role, timeout_s=None):
        """ASSIGN role VOTER (0), STANDBY (1) or SPARE (2) to a node."""
        self._empty(REQ_ASSIGN, _u64(id) + _u64(role), timeout_s)

    def remove(self, id, timeout_s=None):
        self._empty(REQ_REMOVE, _u64(id), timeout_s)

    def dump(self, name, timeout_s=None):
        """DUMP database `name` of exactly this node -> {file name: bytes}
        (the database file and its WAL, as that node holds them)."""
        r = _Reader(self._request(REQ_DUMP, _text(name), RESP_FILES, timeout_s=timeout_s))
        try:
            files = {}
            for _ in range(r.u64()):
                fname = r.text()
                size = r.u64()
                if size > r.remaining():
                    raise _Malformed("file size past the end of the body")
                files[fname] = bytes(r.raw(size))
                r._take(_pad8(size) - size)
            return files
        except _Malformed as e:
            raise self._fail("FILES answer", e, sent=True) from None

    def transfer(self, id=0, timeout_s=None):
        """TRANSFER leadership to node id (0: the server picks a voter)."""
        self._empty(REQ_TRANSFER, _u64(id), timeout_s)


# ---------------------------------------------------------------- helpers

def connect_node(address, db, timeout_s=2.0):
    """A connection to exactly `address` with `db` open (for reads on a
    particular node). sqraft followers refuse OPEN with NOT_LEADER; dqlite
    followers accept OPEN and refuse the queries."""
    conn = Conn(address, timeout_s)
    try:
        conn.client()
        conn.open(db)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_leader(addresses, db, timeout_s=2.0):
    """A connection to the current leader with `db` open.

    Asks each address in turn (one pass, no retries) for the leader, dials
    the address it names, and accepts it only if that node names itself as
    leader; then CLIENT and OPEN. Each step is bounded by timeout_s and the
    whole search by timeout_s * (2 * len(addresses) + 1). Raises the last
    WireError or ConnectionLost met, or ConnectionLost when no node knew a
    leader."""
    addresses = list(addresses)
    deadline = time.monotonic() + timeout_s * (2 * len(addresses) + 1)
    last = None

    def budget():
        # At least a sliver, so that running out shows up as a timeout of
        # the step at hand (ConnectionLost) rather than as a special case.
        return max(0.001, min(timeout_s, deadline - time.monotonic()))

    tried = set()
    for address in addresses:
        try:
            with Conn(address, budget()) as probe:
                lid, laddr = probe.leader(timeout_s=budget())
            if lid == 0 or not laddr or laddr in tried:
                last = last or ConnectionLost(f"{address}: no leader known", sent=False)
                continue
            tried.add(laddr)
            conn = Conn(laddr, budget())
            try:
                lid2, laddr2 = conn.leader(timeout_s=budget())
                if laddr2 != laddr:
                    conn.close()
                    last = ConnectionLost(f"{address} named {lid}@{laddr} as leader, which names "
                                          f"{lid2}@{laddr2!r}", sent=False)
                    continue
                conn.client(timeout_s=budget())
                conn.open(db, timeout_s=budget())
            except BaseException:
                conn.close()
                raise
            return conn
        except (ConnectionLost, WireError) as e:
            last = e
        if time.monotonic() >= deadline:
            break
    if last is None:
        last = ConnectionLost("connect_leader: no addresses", sent=False)
    raise last
