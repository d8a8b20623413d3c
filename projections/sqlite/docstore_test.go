package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/projections/docstoretest"
	"github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/sqlitedb"
)

func open(tb testing.TB) *sqlite.Store {
	tb.Helper()
	db, err := sqlitedb.Open(filepath.Join(tb.TempDir(), "docs.db"))
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
	docstoretest.Run(t, docstoretest.Options{Updaters: 32, Increments: 20}, func(t *testing.T) projections.DocStore { return open(t) })
}

// TestContractSharedStore runs every test on one store, as a backend that cannot be reset per
// test does.
func TestContractSharedStore(t *testing.T) {
	s := open(t)
	docstoretest.Run(t, docstoretest.Options{}, func(*testing.T) projections.DocStore { return s })
}
