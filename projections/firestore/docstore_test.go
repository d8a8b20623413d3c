package firestore_test

import (
	"context"
	"testing"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/projections/docstoretest"
	docfirestore "github.com/codeset/codeset/projections/firestore"
	"github.com/codeset/codeset/shared/emulator"
	"github.com/codeset/codeset/shared/firestoredb"
)

// open returns a store on the Firestore emulator in a project of its own.
func open(t *testing.T) projections.DocStore {
	t.Helper()
	emulator.Require(t, emulator.Firestore)
	c, err := firestoredb.Open(context.Background(), emulator.Project(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return docfirestore.New(c)
}

// TestContractOnFirestoreEmulator runs the read-model store contract on the emulator, with 8
// concurrent updaters of one document (16 pass too on an idle machine; SQLite's run takes more).
func TestContractOnFirestoreEmulator(t *testing.T) {
	emulator.Require(t, emulator.Firestore)
	docstoretest.Run(t, docstoretest.Options{Updaters: 8, Increments: 5}, open)
}
