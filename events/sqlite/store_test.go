package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/events/storetest"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// open returns a store over a fresh database file, closed at the end of the test.
func open(tb testing.TB) *sqlite.Store {
	tb.Helper()
	db, err := sqlitedb.Open(filepath.Join(tb.TempDir(), "events.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	s, err := sqlite.New(db)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	// SQLite takes the heavy concurrency: 64 appenders racing for one version.
	storetest.Run(t, storetest.Options{Appenders: 64}, func(t *testing.T) events.Store { return open(t) })
}

// TestContractSharedStore runs the suite with every test on one store, as a backend that cannot
// be reset per test (the Firestore emulator) does.
func TestContractSharedStore(t *testing.T) {
	s := open(t)
	storetest.Run(t, storetest.Options{Appenders: 16}, func(*testing.T) events.Store { return s })
}
