// Package sqlitedb opens the embedded default's one SQLite file (modernc.org/sqlite, no cgo) in
// WAL mode, with one writer connection and a pool of readers: SQLite allows one writer at a time
// anyway, and queueing writers in Go is cheaper than letting them spin on the busy handler.
package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"runtime"

	"modernc.org/sqlite" // registers the "sqlite" driver
)

func init() {
	// Commit with fdatasync(2) rather than fsync(2), as SQLite built by its own configure script
	// does on Linux: the same durability (the data and the size needed to read it back) without
	// the timestamp update an fsync pushes through the file system's journal. Where the platform
	// has no fdatasync, the library keeps fsync.
	sqlite.Fdatasync(true)
}

// DB is the pair of pools over one database file.
type DB struct {
	W *sql.DB // the single writer; its transactions start IMMEDIATE
	R *sql.DB // readers
}

// Open opens (creating if needed) the database file at path.
func Open(path string) (*DB, error) {
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-32000)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{W: w, R: r}, nil
}

// BeginRelaxed begins a write transaction whose commit is not fsynced by itself
// (synchronous=NORMAL for that transaction only): the next durable commit's fsync covers it,
// because WAL frames are written in commit order and recovery keeps a prefix of them. So a
// crash can lose only relaxed commits made after the last durable one, never one before it.
// Only for writes that are derived from durable ones and made again when lost: the outbox's
// published marks (a lost mark means a redelivery) and the read models (rebuilt by that
// redelivery, since they are written before the mark of the event they apply). Call done once
// the transaction has ended: it restores synchronous=FULL and gives the connection back.
func (d *DB) BeginRelaxed(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	conn, err := d.W.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	restore := func() {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); err != nil {
			// Never hand a relaxed connection back to the pool: drop it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		restore()
		return nil, nil, fmt.Errorf("relaxed write: %w", err)
	}
	if tx, err = conn.BeginTx(ctx, nil); err != nil {
		restore()
		return nil, nil, err
	}
	return tx, restore, nil
}

// Close closes both pools.
func (d *DB) Close() error {
	return errjoin(d.R.Close(), d.W.Close())
}

func errjoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
