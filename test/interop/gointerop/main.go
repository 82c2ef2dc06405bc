// gointerop drives a sqraft cluster with the real dqlite Go client
// (github.com/canonical/go-dqlite, Debian's golang-github-canonical-go-dqlite-dev)
// through database/sql, and checks every answer.
//
// Build (no Go modules, everything offline from /usr/share/gocode):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gointerop .
//
// Modes:
//
//	-mode normal    schema, transactions (commit, rollback, reads and writes
//	                mixed, savepoints), every value type, 100,000 rows in
//	                batches read back by one query, prepared statements,
//	                multi-statement exec, early-closed row streams
//	                (INTERRUPT), errors, 1-255 parameters, RETURNING, TEMP
//	                tables, concurrent writers, leadership TRANSFER.
//	-mode failover  keeps writing; once it has written -warmup rows it finds
//	                the leader with client.FindLeader, prints "LEADER <addr>"
//	                and writes the address to -leader-file. The controlling
//	                script kills that node (SIGKILL) and then creates
//	                -killed-file. The program keeps writing until -after more
//	                writes are acknowledged, checks that a different node now
//	                leads, and that every acknowledged write is present.
//
// Every check prints "ok - ..." or "not ok - ..." (prefixed by -label); the
// exit status is 0 only if every check passed. test/interop/run.sh runs both
// modes against a 3-node cluster.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

var (
	flagServers    = flag.String("servers", "", "comma-separated node addresses (host:port or @abstract)")
	flagDB         = flag.String("db", "interop", "database name")
	flagMode       = flag.String("mode", "normal", "normal or failover")
	flagRows       = flag.Int("rows", 100000, "rows for the bulk test")
	flagBatch      = flag.Int("batch", 5000, "rows per transaction in the bulk test")
	flagLeaderFile = flag.String("leader-file", "", "failover: write the leader's address here")
	flagKilledFile = flag.String("killed-file", "", "failover: the script creates this file once the leader is killed")
	flagWarmup     = flag.Int("warmup", 200, "failover: acknowledged writes before reporting the leader")
	flagAfter      = flag.Int("after", 300, "failover: acknowledged writes required after the kill")
	flagDeadline   = flag.Duration("deadline", 90*time.Second, "overall deadline")
	flagVerbose    = flag.Bool("v", false, "log the driver's messages")
	flagLabel      = flag.String("label", "", "prefix for every check's description")
)

var (
	failures int
	passes   int
)

func ok(format string, a ...interface{}) {
	passes++
	fmt.Printf("ok - "+prefix()+format+"\n", a...)
}

func notOK(format string, a ...interface{}) {
	failures++
	fmt.Printf("not ok - "+prefix()+format+"\n", a...)
}

func prefix() string {
	if *flagLabel == "" {
		return ""
	}
	return strings.ReplaceAll(*flagLabel, "%", "%%") + ": "
}

// check records one check: ok when err is nil.
func check(err error, format string, a ...interface{}) bool {
	if err != nil {
		notOK(format+": %v", append(a, err)...)
		return false
	}
	ok(format, a...)
	return true
}

func info(format string, a ...interface{}) {
	fmt.Printf("# "+format+"\n", a...)
}

func logFunc(l client.LogLevel, format string, a ...interface{}) {
	if *flagVerbose {
		fmt.Fprintf(os.Stderr, "driver %s: %s\n", l.String(), fmt.Sprintf(format, a...))
	}
}

func newStore(addrs []string) client.NodeStore {
	infos := make([]client.NodeInfo, len(addrs))
	for i, a := range addrs {
		infos[i].Address = a
	}
	store := client.NewInmemNodeStore()
	store.Set(context.Background(), infos)
	return store
}

var driverSeq int

// openDB registers a fresh dqlite driver over the given nodes and opens db.
func openDB(addrs []string, name string) (*sql.DB, error) {
	drv, err := driver.New(newStore(addrs),
		driver.WithLogFunc(logFunc),
		driver.WithAttemptTimeout(2*time.Second),
		driver.WithConnectionBackoffFactor(20*time.Millisecond),
		driver.WithConnectionBackoffCap(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	driverSeq++
	drvName := fmt.Sprintf("dqlite-interop-%d", driverSeq)
	sql.Register(drvName, drv)
	return sql.Open(drvName, name)
}

func main() {
	flag.Parse()
	if *flagServers == "" {
		fmt.Fprintln(os.Stderr, "gointerop: -servers is required")
		os.Exit(2)
	}
	addrs := strings.Split(*flagServers, ",")
	ctx, cancel := context.WithTimeout(context.Background(), *flagDeadline)
	defer cancel()

	start := time.Now()
	switch *flagMode {
	case "normal":
		runNormal(ctx, addrs)
	case "failover":
		runFailover(ctx, addrs)
	default:
		fmt.Fprintf(os.Stderr, "gointerop: unknown mode %q\n", *flagMode)
		os.Exit(2)
	}
	info("go client, mode %s: %d passed, %d failed in %.1fs", *flagMode, passes, failures, time.Since(start).Seconds())
	if failures > 0 || passes == 0 {
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- normal mode

func runNormal(ctx context.Context, addrs []string) {
	db, err := openDB(addrs, *flagDB)
	if !check(err, "open database %q through %d nodes", *flagDB, len(addrs)) {
		return
	}
	defer db.Close()
	if !check(db.PingContext(ctx), "connect to the leader") {
		return
	}
	leaderCheck(ctx, addrs)
	schema(ctx, db)
	transactions(ctx, db)
	valueTypes(ctx, db)
	bulk(ctx, db)
	prepared(ctx, db)
	multiStatement(ctx, db)
	earlyClose(ctx, db)
	sqlErrors(ctx, db)
	extras(ctx, db)
	concurrentWriters(ctx, db)
	transfer(ctx, db, addrs)
}

// transfer moves leadership with the client's TRANSFER request and checks
// that the pool's connections to the old leader are replaced transparently.
func transfer(ctx context.Context, db *sql.DB, addrs []string) {
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := func() error {
		cli, err := client.FindLeader(tctx, newStore(addrs), client.WithLogFunc(logFunc))
		if err != nil {
			return err
		}
		defer cli.Close()
		old, err := cli.Leader(tctx)
		if err != nil {
			return err
		}
		nodes, err := cli.Cluster(tctx)
		if err != nil {
			return err
		}
		var target client.NodeInfo
		for _, n := range nodes {
			if n.ID != old.ID {
				target = n
				break
			}
		}
		if target.ID == 0 {
			return fmt.Errorf("no other node in %+v", nodes)
		}
		if err := cli.Transfer(tctx, target.ID); err != nil {
			return fmt.Errorf("TRANSFER to node %d: %w", target.ID, err)
		}
		var now string
		for tctx.Err() == nil {
			if now, err = findLeader(tctx, addrs); err == nil && now == target.Address {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if now != target.Address {
			return fmt.Errorf("leader is %q after TRANSFER to %s", now, target.Address)
		}
		info("leadership moved from %s to %s", old.Address, now)
		// Writes and reads through the same pool keep working.
		for i := 0; i < 20; i++ {
			if _, err := db.ExecContext(tctx, "INSERT INTO conc (w, i) VALUES (?, ?)", 1000, i); err != nil {
				return fmt.Errorf("insert %d after the transfer: %w", i, err)
			}
		}
		var n int
		if err := db.QueryRowContext(tctx, "SELECT count(*) FROM conc WHERE w = 1000").Scan(&n); err != nil {
			return err
		}
		if n != 20 {
			return fmt.Errorf("%d rows written after the transfer, want 20", n)
		}
		return nil
	}()
	check(err, "client TRANSFER moves leadership to another node; the pool reconnects and 20 writes succeed")
}

func leaderCheck(ctx context.Context, addrs []string) {
	cli, err := client.FindLeader(ctx, newStore(addrs), client.WithLogFunc(logFunc))
	if !check(err, "client.FindLeader finds a leader") {
		return
	}
	defer cli.Close()
	leader, err := cli.Leader(ctx)
	if err == nil && (leader == nil || !contains(addrs, leader.Address)) {
		err = fmt.Errorf("leader %+v is not one of %v", leader, addrs)
	}
	if !check(err, "LEADER names one of the configured addresses") {
		return
	}
	info("leader is node %d at %s", leader.ID, leader.Address)
	nodes, err := cli.Cluster(ctx)
	if err == nil {
		if len(nodes) != len(addrs) {
			err = fmt.Errorf("cluster %+v has %d nodes, want %d", nodes, len(nodes), len(addrs))
		}
		for _, n := range nodes {
			if err == nil && (!contains(addrs, n.Address) || n.Role != client.Voter) {
				err = fmt.Errorf("unexpected member %+v", n)
			}
		}
	}
	check(err, "CLUSTER lists %d voters at the configured addresses", len(addrs))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func schema(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, `CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL UNIQUE, balance INTEGER NOT NULL)`)
	check(err, "CREATE TABLE accounts")
	_, err = db.ExecContext(ctx, `CREATE INDEX accounts_balance ON accounts(balance)`)
	check(err, "CREATE INDEX")
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name IN ('accounts', 'accounts_balance')`).Scan(&n)
	if err == nil && n != 2 {
		err = fmt.Errorf("sqlite_master has %d of the 2 objects", n)
	}
	check(err, "the schema is visible in sqlite_master")
}

func countAccounts(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...interface{}) *sql.Row
}, where string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM accounts WHERE "+where).Scan(&n)
	return n, err
}

func transactions(ctx context.Context, db *sql.DB) {
	// BEGIN ... COMMIT.
	err := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for i, owner := range []string{"alice", "bob", "carol"} {
			if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)", i+1, owner, 100); err != nil {
				tx.Rollback()
				return fmt.Errorf("insert %s: %w", owner, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		n, err := countAccounts(ctx, db, "1")
		if err == nil && n != 3 {
			err = fmt.Errorf("%d rows after commit, want 3", n)
		}
		return err
	}()
	check(err, "transaction: BEGIN, 3 INSERTs, COMMIT; all 3 rows visible afterwards")

	// BEGIN ... ROLLBACK leaves no trace.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)", 99, "mallory", 1000000); err != nil {
			tx.Rollback()
			return fmt.Errorf("insert: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = 0"); err != nil {
			tx.Rollback()
			return fmt.Errorf("update: %w", err)
		}
		n, err := countAccounts(ctx, tx, "owner = 'mallory' OR balance = 0")
		if err != nil || n != 4 {
			tx.Rollback()
			return fmt.Errorf("inside the transaction %d rows changed (want 4), err %v", n, err)
		}
		if err := tx.Rollback(); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		n, err = countAccounts(ctx, db, "owner = 'mallory' OR balance <> 100")
		if err == nil && n != 0 {
			err = fmt.Errorf("%d rows show the rolled back changes", n)
		}
		if err != nil {
			return err
		}
		n, err = countAccounts(ctx, db, "1")
		if err == nil && n != 3 {
			err = fmt.Errorf("%d rows after rollback, want 3", n)
		}
		return err
	}()
	check(err, "transaction: INSERT and UPDATE then ROLLBACK leaves no trace (seen inside, gone after)")

	// A transaction mixing reads and writes: transfer money based on what it reads.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		var a, b int64
		if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE owner = ?", "alice").Scan(&a); err != nil {
			return fmt.Errorf("read alice: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance - ? WHERE owner = ?", a/4, "alice"); err != nil {
			return fmt.Errorf("debit: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE owner = ?", "alice").Scan(&b); err != nil {
			return fmt.Errorf("re-read alice: %w", err)
		}
		if b != a-a/4 {
			return fmt.Errorf("alice reads %d after the debit inside the transaction, want %d", b, a-a/4)
		}
		res, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE owner = ?", a/4, "bob")
		if err != nil {
			return fmt.Errorf("credit: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("credit affected %d rows", n)
		}
		var total int64
		if err := tx.QueryRowContext(ctx, "SELECT sum(balance) FROM accounts").Scan(&total); err != nil {
			return fmt.Errorf("sum: %w", err)
		}
		if total != 300 {
			return fmt.Errorf("sum inside the transaction is %d, want 300", total)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (owner, balance) SELECT 'dave', count(*) FROM accounts"); err != nil {
			return fmt.Errorf("insert-select: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		rows, err := db.QueryContext(ctx, "SELECT owner, balance FROM accounts ORDER BY id")
		if err != nil {
			return err
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var o string
			var v int64
			if err := rows.Scan(&o, &v); err != nil {
				return err
			}
			got = append(got, fmt.Sprintf("%s=%d", o, v))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		want := "alice=75 bob=125 carol=100 dave=3"
		if strings.Join(got, " ") != want {
			return fmt.Errorf("after commit: %s, want %s", strings.Join(got, " "), want)
		}
		return nil
	}()
	check(err, "transaction mixing reads and writes (read, debit, re-read, credit, sum, INSERT…SELECT) commits the right state")
}

type typedRow struct {
	id   int64
	i    interface{}
	f    interface{}
	s    interface{}
	b    interface{}
	d    interface{}
	flag interface{}
}

func valueTypes(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, `CREATE TABLE types (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, d DATETIME, flag BOOLEAN)`)
	if !check(err, "CREATE TABLE types (INTEGER, REAL, TEXT, BLOB, DATETIME, BOOLEAN)") {
		return
	}
	zone := time.FixedZone("UTC+05:30", 5*3600+1800)
	bigText := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB
	bigBlob := make([]byte, 1<<20)
	for i := range bigBlob {
		bigBlob[i] = byte(i * 7)
	}
	rows := []typedRow{
		{1, int64(42), 3.5, "hello", []byte("world"), time.Date(2024, 2, 29, 13, 14, 15, 0, time.UTC), true},
		{2, int64(math.MinInt64), -1.5e300, "ünïcødé ✓ 日本語", []byte{0, 1, 2, 0, 255, 254}, time.Date(1999, 12, 31, 23, 59, 59, 123456789, zone), false},
		{3, int64(math.MaxInt64), math.SmallestNonzeroFloat64, "", []byte{0}, time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC), true},
		{4, int64(0), 0.0, "quote ' and \" and ; and \\", []byte("x"), time.Unix(0, 0).UTC(), false},
		{5, nil, nil, nil, nil, nil, nil},
		{6, int64(-1), math.MaxFloat64, bigText, bigBlob, time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC), true},
	}
	stmt := "INSERT INTO types (id, i, f, s, b, d, flag) VALUES (?, ?, ?, ?, ?, ?, ?)"
	for _, r := range rows {
		_, err := db.ExecContext(ctx, stmt, r.id, r.i, r.f, r.s, r.b, r.d, r.flag)
		if err != nil {
			notOK("insert typed row %d: %v", r.id, err)
			return
		}
	}
	ok("insert int64, float64, string, []byte, nil, time.Time and bool parameters (%d rows, up to 1 MiB values)", len(rows))

	// Storage classes as SQLite sees them.
	wantTypes := map[int64]string{
		1: "integer real text blob text integer",
		2: "integer real text blob text integer",
		5: "null null null null null null",
	}
	for id, want := range wantTypes {
		var got [6]string
		err := db.QueryRowContext(ctx, "SELECT typeof(i), typeof(f), typeof(s), typeof(b), typeof(d), typeof(flag) FROM types WHERE id = ?", id).
			Scan(&got[0], &got[1], &got[2], &got[3], &got[4], &got[5])
		if err == nil && strings.Join(got[:], " ") != want {
			err = fmt.Errorf("typeof = %q, want %q", strings.Join(got[:], " "), want)
		}
		check(err, "row %d is stored with SQLite types %s", id, want)
	}

	// Read back into interface{}: the driver must see exactly the Go types and values.
	qrows, err := db.QueryContext(ctx, "SELECT id, i, f, s, b, d, flag FROM types ORDER BY id")
	if !check(err, "SELECT every typed row") {
		return
	}
	defer qrows.Close()
	n := 0
	for qrows.Next() {
		var got typedRow
		if err := qrows.Scan(&got.id, &got.i, &got.f, &got.s, &got.b, &got.d, &got.flag); err != nil {
			notOK("scan typed row: %v", err)
			return
		}
		if got.id < 1 || int(got.id) > len(rows) {
			notOK("unexpected row id %d", got.id)
			continue
		}
		want := rows[got.id-1]
		n++
		var problems []string
		cmp := func(col string, g, w interface{}) {
			if gt, ok := g.(time.Time); ok {
				wt, ok2 := w.(time.Time)
				if !ok2 || !gt.Equal(wt) {
					problems = append(problems, fmt.Sprintf("%s: got %T %v, want %T %v", col, g, g, w, w))
				}
				return
			}
			if !reflect.DeepEqual(g, w) {
				gs, ws := fmt.Sprintf("%T %v", g, g), fmt.Sprintf("%T %v", w, w)
				if len(gs) > 80 {
					gs = gs[:80] + "…"
				}
				if len(ws) > 80 {
					ws = ws[:80] + "…"
				}
				problems = append(problems, fmt.Sprintf("%s: got %s, want %s", col, gs, ws))
			}
		}
		cmp("INTEGER", got.i, want.i)
		cmp("REAL", got.f, want.f)
		cmp("TEXT", got.s, want.s)
		cmp("BLOB", got.b, want.b)
		cmp("DATETIME", got.d, want.d)
		cmp("BOOLEAN", got.flag, want.flag)
		if len(problems) > 0 {
			notOK("typed row %d reads back as written: %s", got.id, strings.Join(problems, "; "))
		} else {
			ok("typed row %d reads back as written (int64, float64, string, []byte, time.Time, bool or all nil)", got.id)
		}
	}
	if err := qrows.Err(); err != nil {
		notOK("typed rows: %v", err)
	} else if n != len(rows) {
		notOK("read %d typed rows, want %d", n, len(rows))
	}

	// An integer in a DATETIME column comes back as a Unix time; literals work too.
	_, err = db.ExecContext(ctx, "INSERT INTO types (id, d, flag) VALUES (7, 1700000000, 0), (8, '2021-03-04 05:06:07', 1)")
	if check(err, "insert DATETIME and BOOLEAN as SQL literals") {
		var d7, d8 time.Time
		var f7, f8 bool
		err := db.QueryRowContext(ctx, "SELECT a.d, a.flag, b.d, b.flag FROM types a, types b WHERE a.id = 7 AND b.id = 8").Scan(&d7, &f7, &d8, &f8)
		if err == nil && (!d7.Equal(time.Unix(1700000000, 0)) || f7 || !d8.Equal(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)) || !f8) {
			err = fmt.Errorf("got %v %v %v %v", d7, f7, d8, f8)
		}
		check(err, "integer DATETIME reads as Unix time, text DATETIME as ISO 8601, BOOLEAN literals as bool")
	}

	// Values computed by SQL (no declared type).
	var vi int64
	var vf float64
	var vs string
	var vb []byte
	var vn interface{}
	err = db.QueryRowContext(ctx, "SELECT 7*6, 1.0/4, 'a'||'b', x'cafe', NULL").Scan(&vi, &vf, &vs, &vb, &vn)
	if err == nil && (vi != 42 || vf != 0.25 || vs != "ab" || !reflect.DeepEqual(vb, []byte{0xca, 0xfe}) || vn != nil) {
		err = fmt.Errorf("got %v %v %q %x %v", vi, vf, vs, vb, vn)
	}
	check(err, "expressions without declared type return int64, float64, string, []byte and nil")
}

// bulkValue is the deterministic value stored in row i of the bulk table.
func bulkValue(i int) int64 {
	return int64(uint64(i)*0x9E3779B97F4A7C15>>24) - (1 << 39)
}

func bulkText(i int) string {
	return fmt.Sprintf("row-%06d-%x", i, uint32(i*2654435761))
}

func bulk(ctx context.Context, db *sql.DB) {
	total, batch := *flagRows, *flagBatch
	_, err := db.ExecContext(ctx, "CREATE TABLE bulk (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, s TEXT NOT NULL)")
	if !check(err, "CREATE TABLE bulk") {
		return
	}
	want := fnv.New64a()
	var wantSum int64
	start := time.Now()
	for first := 1; first <= total; first += batch {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			stmt, err := tx.PrepareContext(ctx, "INSERT INTO bulk (id, v, s) VALUES (?, ?, ?)")
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i := first; i < first+batch && i <= total; i++ {
				if _, err := stmt.ExecContext(ctx, i, bulkValue(i), bulkText(i)); err != nil {
					return fmt.Errorf("row %d: %w", i, err)
				}
			}
			return tx.Commit()
		}()
		if err != nil {
			notOK("insert bulk rows from %d: %v", first, err)
			return
		}
	}
	for i := 1; i <= total; i++ {
		fmt.Fprintf(want, "%d|%d|%s\n", i, bulkValue(i), bulkText(i))
		wantSum += bulkValue(i)
	}
	ok("insert %d rows in transactions of %d (%.1fs, %.0f rows/s)", total, batch, time.Since(start).Seconds(),
		float64(total)/time.Since(start).Seconds())

	start = time.Now()
	rows, err := db.QueryContext(ctx, "SELECT id, v, s FROM bulk ORDER BY id")
	if !check(err, "SELECT all bulk rows with one query") {
		return
	}
	got := fnv.New64a()
	n := 0
	var gotSum int64
	for rows.Next() {
		var id, v int64
		var s string
		if err := rows.Scan(&id, &v, &s); err != nil {
			notOK("scan bulk row: %v", err)
			rows.Close()
			return
		}
		n++
		gotSum += v
		fmt.Fprintf(got, "%d|%d|%s\n", id, v, s)
	}
	err = rows.Err()
	rows.Close()
	if err == nil && n != total {
		err = fmt.Errorf("read %d rows, want %d", n, total)
	}
	if err == nil && (got.Sum64() != want.Sum64() || gotSum != wantSum) {
		err = fmt.Errorf("checksum %016x sum %d, want %016x sum %d", got.Sum64(), gotSum, want.Sum64(), wantSum)
	}
	check(err, "read back %d rows in one query (multi-batch row stream, %.1fs), count and FNV-64a checksum %016x match",
		total, time.Since(start).Seconds(), want.Sum64())

	var cnt, sum int64
	err = db.QueryRowContext(ctx, "SELECT count(*), sum(v) FROM bulk").Scan(&cnt, &sum)
	if err == nil && (cnt != int64(total) || sum != wantSum) {
		err = fmt.Errorf("server says count %d sum %d, want %d %d", cnt, sum, total, wantSum)
	}
	check(err, "server-side count(*) and sum(v) of the bulk table match")
}

func prepared(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER, note TEXT)")
	if !check(err, "CREATE TABLE kv") {
		return
	}
	ins, err := db.PrepareContext(ctx, "INSERT INTO kv (k, v, note) VALUES (?, ?, ?)")
	if !check(err, "db.Prepare INSERT") {
		return
	}
	defer ins.Close()
	var lastID int64
	err = nil
	for i := 0; i < 20 && err == nil; i++ {
		var res sql.Result
		res, err = ins.ExecContext(ctx, fmt.Sprintf("key%02d", i), i*i, nil)
		if err != nil {
			break
		}
		id, _ := res.LastInsertId()
		n, _ := res.RowsAffected()
		if n != 1 || id != lastID+1 {
			err = fmt.Errorf("exec %d: rows affected %d, last insert id %d (previous %d)", i, n, id, lastID)
		}
		lastID = id
	}
	check(err, "prepared INSERT executed 20 times with new parameters (RowsAffected 1, increasing LastInsertId)")

	sel, err := db.PrepareContext(ctx, "SELECT k, v FROM kv WHERE v >= ? AND v < ? ORDER BY v")
	if !check(err, "db.Prepare SELECT with 2 parameters") {
		return
	}
	defer sel.Close()
	err = nil
	for lo := 0; lo < 400 && err == nil; lo += 50 {
		var rows *sql.Rows
		rows, err = sel.QueryContext(ctx, lo, lo+50)
		if err != nil {
			break
		}
		var got []int
		for rows.Next() {
			var k string
			var v int
			if err = rows.Scan(&k, &v); err != nil {
				break
			}
			if k != fmt.Sprintf("key%02d", int(math.Sqrt(float64(v)))) {
				err = fmt.Errorf("key %s has value %d", k, v)
			}
			got = append(got, v)
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		var want []int
		for i := 0; i < 20; i++ {
			if i*i >= lo && i*i < lo+50 {
				want = append(want, i*i)
			}
		}
		if err == nil && fmt.Sprint(got) != fmt.Sprint(want) {
			err = fmt.Errorf("range [%d,%d): got %v want %v", lo, lo+50, got, want)
		}
	}
	check(err, "prepared SELECT queried 8 times with different ranges returns the right rows")

	upd, err := db.PrepareContext(ctx, "UPDATE kv SET note = ? WHERE v % ? = 0")
	if !check(err, "db.Prepare UPDATE") {
		return
	}
	defer upd.Close()
	res1, err1 := upd.ExecContext(ctx, "even", 2)
	res2, err2 := upd.ExecContext(ctx, "by3", 3)
	err = firstErr(err1, err2)
	if err == nil {
		n1, _ := res1.RowsAffected()
		n2, _ := res2.RowsAffected()
		if n1 != 10 || n2 != 7 {
			err = fmt.Errorf("rows affected %d and %d, want 10 and 7", n1, n2)
		}
	}
	check(err, "prepared UPDATE executed twice reports RowsAffected 10 and 7")

	// A prepared statement used inside a transaction (tx.Stmt) and rolled back.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		txIns := tx.StmtContext(ctx, ins)
		for i := 100; i < 105; i++ {
			if _, err := txIns.ExecContext(ctx, fmt.Sprintf("tx%d", i), i, "tx"); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM kv WHERE note = 'tx'").Scan(&n); err != nil {
			return err
		}
		if n != 5 {
			return fmt.Errorf("%d rows inside the transaction, want 5", n)
		}
		if err := tx.Rollback(); err != nil {
			return err
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM kv").Scan(&n); err != nil {
			return err
		}
		if n != 20 {
			return fmt.Errorf("%d rows after rollback, want 20", n)
		}
		return nil
	}()
	check(err, "prepared statement bound to a transaction (tx.Stmt), then rolled back")

	// Many prepared statements open at once on the pool.
	err = func() error {
		var stmts []*sql.Stmt
		defer func() {
			for _, s := range stmts {
				s.Close()
			}
		}()
		for i := 0; i < 50; i++ {
			s, err := db.PrepareContext(ctx, fmt.Sprintf("SELECT %d + ?", i))
			if err != nil {
				return err
			}
			stmts = append(stmts, s)
		}
		for round := 0; round < 3; round++ {
			for i, s := range stmts {
				var v int
				if err := s.QueryRowContext(ctx, round).Scan(&v); err != nil {
					return err
				}
				if v != i+round {
					return fmt.Errorf("statement %d round %d gave %d", i, round, v)
				}
			}
		}
		return nil
	}()
	check(err, "50 prepared statements open at once, each queried 3 times")
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func multiStatement(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, "CREATE TABLE multi (x INTEGER); INSERT INTO multi VALUES (1); INSERT INTO multi VALUES (2); INSERT INTO multi VALUES (3)")
	if err == nil {
		var n, s int
		err = db.QueryRowContext(ctx, "SELECT count(*), sum(x) FROM multi").Scan(&n, &s)
		if err == nil && (n != 3 || s != 6) {
			err = fmt.Errorf("count %d sum %d, want 3 and 6", n, s)
		}
	}
	check(err, "one Exec with 4 statements separated by ';' runs them all")
}

// earlyClose reads a few rows of a multi-batch result and closes it: the
// driver then sends INTERRUPT and reads (discarding any ROWS still coming)
// until the server answers EMPTY. Every round has its own deadline, so a
// server that never answers fails the check instead of hanging the program.
func earlyClose(ctx context.Context, db *sql.DB) {
	type querier interface {
		QueryContext(context.Context, string, ...interface{}) (*sql.Rows, error)
		QueryRowContext(context.Context, string, ...interface{}) *sql.Row
	}
	// one reads 10 rows of query, closes the result and checks that the
	// connection still answers.
	one := func(ctx context.Context, q querier, query string) error {
		rows, err := q.QueryContext(ctx, query)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		for i := 0; i < 10 && rows.Next(); i++ {
		}
		start := time.Now()
		if err := rows.Close(); err != nil { // sends INTERRUPT, waits for EMPTY
			return fmt.Errorf("rows.Close (INTERRUPT) failed after %.1fs: %w", time.Since(start).Seconds(), err)
		}
		var n int
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM stream2 WHERE id <= 10").Scan(&n); err != nil {
			return fmt.Errorf("query after the interrupt: %w", err)
		}
		if n != 10 {
			return fmt.Errorf("count %d after the interrupt", n)
		}
		return nil
	}
	// A table whose full scan takes 2 ROWS batches of the server (~80 KiB
	// against 64 KiB batches), so that the INTERRUPT often arrives while
	// the last batch is being produced.
	_, err := db.ExecContext(ctx, `CREATE TABLE stream2 (id INTEGER PRIMARY KEY, s TEXT);
		INSERT INTO stream2 (id, s) WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
		SELECT i, printf('row-%06d-%08x', i, i * 7) FROM c`)
	if !check(err, "CREATE TABLE stream2 with 2000 rows (INSERT … WITH RECURSIVE … SELECT)") {
		return
	}

	const rounds, roundTimeout = 20, 3 * time.Second
	run := func(label, query string, inTx bool) {
		var failed []string
		for round := 0; round < rounds && len(failed) < 3; round++ {
			rctx, cancel := context.WithTimeout(ctx, roundTimeout)
			var err error
			if inTx {
				var tx *sql.Tx
				if tx, err = db.BeginTx(rctx, nil); err == nil {
					err = one(rctx, tx, query)
					tx.Rollback()
				}
			} else {
				var conn *sql.Conn
				if conn, err = db.Conn(rctx); err == nil {
					err = one(rctx, conn, query)
					conn.Close()
				}
			}
			cancel()
			if err != nil {
				failed = append(failed, fmt.Sprintf("round %d: %v", round+1, err))
			}
		}
		if len(failed) > 0 && strings.Contains(strings.Join(failed, ";"), "rows.Close") {
			failed = append(failed, "(the driver's rows.Close sends INTERRUPT and reads until EMPTY: the server never answered it)")
		}
		if len(failed) == 0 {
			ok("%s: reading 10 rows then closing (INTERRUPT, EMPTY) leaves the connection usable, %d times", label, rounds)
		} else {
			notOK("%s: reading 10 rows then closing (INTERRUPT, EMPTY) leaves the connection usable: failed rounds (stops after 3): %s",
				label, strings.Join(failed, "; "))
		}
	}
	run("2-batch result", "SELECT id, s FROM stream2 ORDER BY id", false)
	run("2-batch result inside a transaction", "SELECT id, s FROM stream2 ORDER BY id", true)
	run("100,000-row result", "SELECT id, s FROM bulk ORDER BY id", false)
}

func sqlErrors(ctx context.Context, db *sql.DB) {
	var derr driver.Error
	_, err := db.ExecContext(ctx, "INSERT INTO accounts (owner, balance) VALUES ('alice', 1)")
	if errors.As(err, &derr) && derr.Code&0xff == 19 {
		ok("UNIQUE violation returns SQLITE_CONSTRAINT (code %d: %s)", derr.Code, derr.Message)
	} else {
		notOK("UNIQUE violation returns SQLITE_CONSTRAINT: got %v", err)
	}
	_, err = db.ExecContext(ctx, "SELEKT nonsense")
	if errors.As(err, &derr) && derr.Code == 1 {
		ok("syntax error returns SQLITE_ERROR (%s)", derr.Message)
	} else {
		notOK("syntax error returns SQLITE_ERROR: got %v", err)
	}
	_, err = db.QueryContext(ctx, "SELECT * FROM no_such_table")
	if errors.As(err, &derr) && derr.Code == 1 && strings.Contains(derr.Message, "no_such_table") {
		ok("query of a missing table returns SQLITE_ERROR (%s)", derr.Message)
	} else {
		notOK("query of a missing table returns SQLITE_ERROR naming the table: got %v", err)
	}
	// A failed statement inside a transaction does not break the transaction.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (owner, balance) VALUES ('alice', 1)"); err == nil {
			return fmt.Errorf("duplicate insert succeeded inside the transaction")
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (owner, balance) VALUES ('erin', 5)"); err != nil {
			return fmt.Errorf("insert after the failed one: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		n, err := countAccounts(ctx, db, "owner = 'erin'")
		if err == nil && n != 1 {
			err = fmt.Errorf("erin present %d times", n)
		}
		return err
	}()
	check(err, "a constraint error inside a transaction leaves it usable; COMMIT keeps the good row")
	// TEXT with a NUL inside ends at the NUL; the columns after it decode
	// (the driver used to misread them and panic with "unknown data type").
	err = func() error {
		var a, c string
		var b int64
		if err := db.QueryRowContext(ctx, "SELECT 'abcdefgh'||char(0)||'ijklmnopqrstuvwxyz', 2, 'after'").Scan(&a, &b, &c); err != nil {
			return err
		}
		if a != "abcdefgh" || b != 2 || c != "after" {
			return fmt.Errorf("got %q, %d, %q", a, b, c)
		}
		return nil
	}()
	check(err, "a TEXT value with a NUL byte is sent up to the NUL and the following columns decode")
	// Process-wide and corrupting pragmas are refused with SQLITE_AUTH (23).
	for _, q := range []string{"PRAGMA hard_heap_limit=2048", "PRAGMA writable_schema=ON"} {
		_, err = db.ExecContext(ctx, q)
		if errors.As(err, &derr) && derr.Code == 23 {
			ok("%s is refused with SQLITE_AUTH (%s)", q, derr.Message)
		} else {
			notOK("%s is refused with SQLITE_AUTH: got %v", q, err)
		}
	}
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	check(err, "the connection pool still works after the errors")
}

// extras covers less common statements the driver can send.
func extras(ctx context.Context, db *sql.DB) {
	// Column names of an empty result.
	err := func() error {
		rows, err := db.QueryContext(ctx, "SELECT id, owner AS who, balance * 2 FROM accounts WHERE 0")
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		if strings.Join(cols, ",") != "id,who,balance * 2" {
			return fmt.Errorf("columns %q", cols)
		}
		if rows.Next() {
			return fmt.Errorf("a row came back")
		}
		return rows.Err()
	}()
	check(err, "an empty result still names its columns (id, who, balance * 2)")

	// Parameter headers of every padding length, up to the 255 the driver allows.
	err = nil
	for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 100, 255} {
		marks := make([]string, n)
		args := make([]interface{}, n)
		want := int64(0)
		for i := range marks {
			marks[i] = "?"
			args[i] = int64(i * 3)
			want += int64(i * 3)
		}
		var got int64
		q := "SELECT " + strings.Join(marks, " + ")
		if err = db.QueryRowContext(ctx, q, args...).Scan(&got); err != nil {
			err = fmt.Errorf("%d parameters: %w", n, err)
			break
		}
		if got != want {
			err = fmt.Errorf("%d parameters: sum %d, want %d", n, got, want)
			break
		}
		stmt, perr := db.PrepareContext(ctx, q)
		if perr != nil {
			err = fmt.Errorf("prepare with %d parameters: %w", n, perr)
			break
		}
		err = stmt.QueryRowContext(ctx, args...).Scan(&got)
		stmt.Close()
		if err == nil && got != want {
			err = fmt.Errorf("prepared, %d parameters: sum %d, want %d", n, got, want)
		}
		if err != nil {
			break
		}
	}
	check(err, "1 to 255 parameters (every header padding) bind right, with QUERY_SQL and with PREPARE+QUERY")

	// Mixed parameter types in one statement.
	var mixed string
	err = db.QueryRowContext(ctx, "SELECT quote(?) || quote(?) || quote(?) || quote(?) || quote(?) || quote(?)",
		int64(-5), 2.5, "t'x", []byte{1, 2}, nil, true).Scan(&mixed)
	if err == nil && mixed != "-52.5't''x'X'0102'NULL1" {
		err = fmt.Errorf("got %s", mixed)
	}
	check(err, "six parameters of six types in one statement")

	// A write through QUERY: INSERT ... RETURNING. (A QUERY of a statement
	// that returns no columns, like a bare UPDATE, is not tried: newer
	// dqlite servers answer it with a zero-column ROWS response, and this
	// client version (go-dqlite 1.11) loops forever on such a result; its
	// Rows iterator was fixed upstream in go-dqlite PR #260.)
	err = func() error {
		var k string
		var v int64
		if err := db.QueryRowContext(ctx, "INSERT INTO kv (k, v, note) VALUES (?, ?, 'returning') RETURNING k, v * 10", "ret", 4).Scan(&k, &v); err != nil {
			return fmt.Errorf("INSERT RETURNING: %w", err)
		}
		if k != "ret" || v != 40 {
			return fmt.Errorf("RETURNING gave %s %d", k, v)
		}
		rows, err := db.QueryContext(ctx, "UPDATE kv SET v = v + 1 WHERE k LIKE 'ret%' RETURNING v")
		if err != nil {
			return fmt.Errorf("UPDATE RETURNING: %w", err)
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n != 1 || v != 5 {
			return fmt.Errorf("UPDATE RETURNING gave %d rows, v = %d, want 1 row with 5", n, v)
		}
		if err := db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 'ret'").Scan(&v); err != nil {
			return err
		}
		if v != 5 {
			return fmt.Errorf("v = %d after the UPDATE, want 5", v)
		}
		return nil
	}()
	check(err, "writes sent as queries (INSERT … RETURNING, UPDATE … RETURNING) take effect")

	// LastInsertId and RowsAffected of EXEC_SQL.
	err = func() error {
		res, err := db.ExecContext(ctx, "INSERT INTO accounts (owner, balance) VALUES ('frank', 1), ('grace', 2)")
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		n, _ := res.RowsAffected()
		var maxID int64
		if err := db.QueryRowContext(ctx, "SELECT max(id) FROM accounts").Scan(&maxID); err != nil {
			return err
		}
		if n != 2 || id != maxID {
			return fmt.Errorf("RowsAffected %d LastInsertId %d, want 2 and %d", n, id, maxID)
		}
		res, err = db.ExecContext(ctx, "DELETE FROM accounts WHERE owner IN ('frank', 'grace', 'nobody')")
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 2 {
			return fmt.Errorf("DELETE affected %d rows, want 2", n)
		}
		return nil
	}()
	check(err, "multi-row INSERT and DELETE report RowsAffected and LastInsertId")

	// Savepoints inside a transaction.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, q := range []string{
			"INSERT INTO kv (k, v) VALUES ('sp1', 1)",
			"SAVEPOINT a",
			"INSERT INTO kv (k, v) VALUES ('sp2', 2)",
			"ROLLBACK TO a",
			"INSERT INTO kv (k, v) VALUES ('sp3', 3)",
			"RELEASE a",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		var got string
		if err := db.QueryRowContext(ctx, "SELECT group_concat(k, ',') FROM (SELECT k FROM kv WHERE k LIKE 'sp%' ORDER BY k)").Scan(&got); err != nil {
			return err
		}
		if got != "sp1,sp3" {
			return fmt.Errorf("rows %s, want sp1,sp3", got)
		}
		return nil
	}()
	check(err, "SAVEPOINT / ROLLBACK TO / RELEASE inside a transaction")

	// Floating point edge values and an empty blob.
	err = func() error {
		if _, err := db.ExecContext(ctx, "CREATE TABLE edge (id INTEGER PRIMARY KEY, f REAL, b BLOB)"); err != nil {
			return err
		}
		vals := []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1e-310, math.Pi}
		for i, f := range vals {
			if _, err := db.ExecContext(ctx, "INSERT INTO edge (id, f, b) VALUES (?, ?, ?)", i, f, []byte{}); err != nil {
				return err
			}
		}
		rows, err := db.QueryContext(ctx, "SELECT id, f, b, typeof(b), length(b) FROM edge ORDER BY id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int
			var f float64
			var b []byte
			var tb string
			var lb int
			if err := rows.Scan(&id, &f, &b, &tb, &lb); err != nil {
				return err
			}
			if f != vals[id] && !(math.IsNaN(f) && math.IsNaN(vals[id])) {
				return fmt.Errorf("row %d: %v, want %v", id, f, vals[id])
			}
			if len(b) != 0 || tb != "blob" || lb != 0 {
				return fmt.Errorf("row %d: empty blob came back as %v (%s, length %d)", id, b, tb, lb)
			}
		}
		return rows.Err()
	}()
	check(err, "+Inf, -Inf, -0, a subnormal and pi round-trip as REAL; an empty []byte stays an empty BLOB")

	// PRAGMA statements.
	err = func() error {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('accounts')").Scan(&n); err != nil {
			return fmt.Errorf("pragma_table_info: %w", err)
		}
		if n != 3 {
			return fmt.Errorf("pragma_table_info: %d columns", n)
		}
		rows, err := db.QueryContext(ctx, "PRAGMA table_info(kv)")
		if err != nil {
			return fmt.Errorf("PRAGMA table_info: %w", err)
		}
		n = 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n != 3 {
			return fmt.Errorf("PRAGMA table_info(kv): %d rows", n)
		}
		return nil
	}()
	check(err, "PRAGMA table_info and pragma_table_info()")

	// A TEMP table belongs to the connection that made it, as in SQLite and
	// dqlite (which runs every statement of a client connection on that
	// connection's own SQLite connection).
	err = func() error {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		a, err := db.Conn(tctx)
		if err != nil {
			return err
		}
		defer a.Close()
		b, err := db.Conn(tctx)
		if err != nil {
			return err
		}
		defer b.Close()
		if _, err := a.ExecContext(tctx, "CREATE TEMP TABLE scratch (x)"); err != nil {
			return fmt.Errorf("connection A: CREATE TEMP TABLE scratch: %w", err)
		}
		if _, err := a.ExecContext(tctx, "INSERT INTO scratch VALUES (1), (2)"); err != nil {
			return fmt.Errorf("connection A: INSERT INTO scratch: %w", err)
		}
		var n int
		if err := a.QueryRowContext(tctx, "SELECT sum(x) FROM scratch").Scan(&n); err != nil {
			return fmt.Errorf("connection A: SELECT from its own TEMP table after CREATE and INSERT succeeded: %w", err)
		}
		if n != 3 {
			return fmt.Errorf("connection A: TEMP table sum %d, want 3", n)
		}
		if _, err := b.ExecContext(tctx, "CREATE TEMP TABLE scratch (y)"); err != nil {
			return fmt.Errorf("connection B: CREATE TEMP TABLE scratch (its own, A's must be invisible): %w", err)
		}
		return nil
	}()
	check(err, "a TEMP table is private to its connection: created, filled and read on connection A; connection B can create its own")
}

func concurrentWriters(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, "CREATE TABLE conc (w INTEGER, i INTEGER, PRIMARY KEY (w, i))")
	if !check(err, "CREATE TABLE conc") {
		return
	}
	const writers, each = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := db.ExecContext(ctx, "INSERT INTO conc (w, i) VALUES (?, ?)", w, i); err != nil {
					errs <- fmt.Errorf("writer %d insert %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	err = <-errs
	if err == nil {
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM conc").Scan(&n)
		if err == nil && n != writers*each {
			err = fmt.Errorf("%d rows, want %d", n, writers*each)
		}
	}
	check(err, "%d goroutines × %d autocommit INSERTs on the pool all succeed (%.1fs)", writers, each, time.Since(start).Seconds())
}

// -------------------------------------------------------------- failover mode

type writer struct {
	db      *sql.DB
	acked   map[int64]string
	next    int64
	errs    int
	lastAck time.Time
	maxGap  time.Duration
}

// write inserts the next id (or, every 4th time, the next two ids in one
// explicit transaction), retrying on a fresh connection until it is
// acknowledged or the context ends. INSERT OR IGNORE makes a retry of a write
// whose acknowledgement was lost harmless.
func (w *writer) write(ctx context.Context) error {
	ids := []int64{w.next}
	if w.next%4 == 0 {
		ids = append(ids, w.next+1)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("write of id %d not acknowledged before the deadline (%d errors so far)", ids[0], w.errs)
		}
		err := w.try(ctx, ids)
		if err == nil {
			now := time.Now()
			if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.maxGap {
				w.maxGap = now.Sub(w.lastAck)
			}
			w.lastAck = now
			for _, id := range ids {
				w.acked[id] = val(id)
			}
			w.next = ids[len(ids)-1] + 1
			return nil
		}
		w.errs++
		if w.errs <= 5 || w.errs%50 == 0 {
			info("write of id %d failed (error %d, will retry): %v", ids[0], w.errs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func val(id int64) string { return fmt.Sprintf("value-%d", id) }

func (w *writer) try(ctx context.Context, ids []int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if len(ids) == 1 {
		_, err := w.db.ExecContext(ctx, "INSERT OR IGNORE INTO failover (id, v) VALUES (?, ?)", ids[0], val(ids[0]))
		return err
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO failover (id, v) VALUES (?, ?)", id, val(id)); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func findLeader(ctx context.Context, addrs []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cli, err := client.FindLeader(ctx, newStore(addrs), client.WithLogFunc(logFunc))
	if err != nil {
		return "", err
	}
	defer cli.Close()
	leader, err := cli.Leader(ctx)
	if err != nil {
		return "", err
	}
	if leader == nil || leader.Address == "" {
		return "", fmt.Errorf("no leader known")
	}
	return leader.Address, nil
}

func runFailover(ctx context.Context, addrs []string) {
	if *flagLeaderFile == "" || *flagKilledFile == "" {
		notOK("failover mode needs -leader-file and -killed-file")
		return
	}
	db, err := openDB(addrs, *flagDB)
	if !check(err, "open database %q", *flagDB) {
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(2)

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = db.ExecContext(cctx, "CREATE TABLE IF NOT EXISTS failover (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
	cancel()
	if !check(err, "CREATE TABLE failover") {
		return
	}
	w := &writer{db: db, acked: map[int64]string{}, next: 1}

	for len(w.acked) < *flagWarmup {
		if err := w.write(ctx); err != nil {
			notOK("warm-up writes: %v", err)
			return
		}
	}
	ok("%d writes acknowledged before the kill", len(w.acked))

	leader, err := findLeader(ctx, addrs)
	if !check(err, "client.FindLeader + Leader() names the leader") {
		return
	}
	fmt.Printf("LEADER %s\n", leader)
	tmp := *flagLeaderFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(leader+"\n"), 0o644); err != nil {
		notOK("write %s: %v", tmp, err)
		return
	}
	if err := os.Rename(tmp, *flagLeaderFile); err != nil {
		notOK("rename to %s: %v", *flagLeaderFile, err)
		return
	}

	// Keep writing until the script says the leader is dead. The longest gap
	// between acknowledged writes is measured from here on, so that it covers
	// the kill.
	waitStart := time.Now()
	w.maxGap = 0
	w.lastAck = waitStart
	errsBefore := w.errs
	for {
		if _, err := os.Stat(*flagKilledFile); err == nil {
			break
		}
		if time.Since(waitStart) > 30*time.Second {
			notOK("the script did not create %s within 30s", filepath.Base(*flagKilledFile))
			return
		}
		if err := w.write(ctx); err != nil {
			notOK("writes while waiting for the kill: %v", err)
			return
		}
	}
	beforeKill := len(w.acked)
	killAt := time.Now()
	info("the script killed leader %s; %d writes acknowledged so far; writing on", leader, beforeKill)

	firstAfter := false
	for len(w.acked) < beforeKill+*flagAfter {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.write(wctx)
		cancel()
		if err != nil {
			notOK("writes after the kill: %v", err)
			break
		}
		if !firstAfter {
			firstAfter = true
			info("first write after the kill signal acknowledged %.2fs after it", time.Since(killAt).Seconds())
		}
	}
	after := len(w.acked) - beforeKill
	if after >= *flagAfter {
		ok("%d more writes acknowledged after the leader was killed; the driver found the new leader itself (failed attempts retried: %d, longest gap between acknowledged writes %.2fs)",
			after, w.errs-errsBefore, w.maxGap.Seconds())
	}

	newLeader, err := findLeader(ctx, addrs)
	if err == nil && newLeader == leader {
		err = fmt.Errorf("the killed node %s is still reported as leader", leader)
	}
	if check(err, "a different node leads after the kill") {
		fmt.Printf("NEW LEADER %s\n", newLeader)
	}

	// Every acknowledged write must be there, exactly as written.
	verify := func(q func(ctx context.Context, query string, args ...interface{}) (*sql.Rows, error)) error {
		rows, err := q(ctx, "SELECT id, v FROM failover ORDER BY id")
		if err != nil {
			return err
		}
		defer rows.Close()
		present := map[int64]string{}
		for rows.Next() {
			var id int64
			var v string
			if err := rows.Scan(&id, &v); err != nil {
				return err
			}
			present[id] = v
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var missing, wrong []int64
		for id, v := range w.acked {
			got, ok := present[id]
			if !ok {
				missing = append(missing, id)
			} else if got != v {
				wrong = append(wrong, id)
			}
		}
		extra := 0
		for id, v := range present {
			if _, ok := w.acked[id]; !ok {
				extra++
				if v != val(id) {
					wrong = append(wrong, id)
				}
			}
		}
		if len(missing) > 0 || len(wrong) > 0 {
			return fmt.Errorf("%d acknowledged writes missing (e.g. %v), %d with wrong values (e.g. %v)",
				len(missing), head(missing), len(wrong), head(wrong))
		}
		info("%d rows present: all %d acknowledged writes plus %d unacknowledged (in doubt at the kill)", len(present), len(w.acked), extra)
		return nil
	}
	check(verify(db.QueryContext), "every one of the %d acknowledged writes is present with its value", len(w.acked))

	// The same through a brand-new driver (fresh connections, fresh leader search).
	db2, err := openDB(addrs, *flagDB)
	if err == nil {
		defer db2.Close()
		err = verify(db2.QueryContext)
	}
	check(err, "a fresh client sees the same acknowledged writes")
}

func head(ids []int64) []int64 {
	if len(ids) > 5 {
		return ids[:5]
	}
	return ids
}
