package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
)

// A relaxed transaction runs at synchronous=NORMAL (1), and the writer is back at FULL (2) for
// every durable write after it, whether the relaxed one committed or rolled back.
func TestBeginRelaxedRestoresFull(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	full := func() int {
		var n int
		if err := db.W.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := full(); n != 2 {
		t.Fatalf("writer opens at synchronous=%d, want 2 (FULL)", n)
	}
	if _, err := db.W.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{true, false} {
		tx, done, err := db.BeginRelaxed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(`PRAGMA synchronous`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("relaxed transaction at synchronous=%d (%v), want 1 (NORMAL)", n, err)
		}
		if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		done()
		if n := full(); n != 2 {
			t.Fatalf("after a relaxed transaction (commit %v) the writer is at synchronous=%d, want 2", commit, n)
		}
	}
	var rows int
	if err := db.R.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows (%v), want the committed one", rows, err)
	}
}
