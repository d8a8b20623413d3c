package projections_test

import (
	"path/filepath"
	"testing"

	"github.com/codeset/codeset/projections"
	docsqlite "github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// docStore is a SQLite document store of the test's own, closed when the test ends.
func docStore(t *testing.T) projections.DocStore {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := docsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
