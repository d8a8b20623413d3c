package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/projections"
	docsqlite "github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// catalogLog appends two imports to a dataset's stream: three samples, then a new version of
// one of them and a fourth sample. It returns the store and the stored events.
func catalogLog(t *testing.T) (*evsqlite.Store, projections.DocStore, []events.Envelope) {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	es, err := evsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := docsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sample := func(id, patch string) events.SampleContent {
		return events.SampleContent{SampleID: id, InstanceID: "org__" + id, Repo: "org/r", Patch: patch, Language: "go", Verifier: "test_suite",
			FailToPass: []string{"TestA"}, PassToPass: []string{}, FailToFail: []string{}}
	}
	var all []events.Envelope
	var d events.Dataset
	for i, rows := range [][]events.SampleContent{
		{sample("a", "1"), sample("b", "1"), sample("c", "1")},
		{sample("a", "1"), sample("b", "2"), sample("c", "1"), sample("d", "1")},
	} {
		plan, err := events.DecideImport(&d, "set", "a set", "", rows, time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := es.Append(ctx, events.DatasetStream("set"), d.Version, plan.Events...)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range stored {
			d.Apply(e)
		}
		all = append(all, stored...)
	}
	if len(all) != 6 {
		t.Fatalf("%d events, want 6 (created, a, b, c, then b v2, d)", len(all))
	}
	return es, ds, all
}

// catalogState is what the catalog read model holds, for comparison.
func catalogState(t *testing.T, ds projections.DocStore) string {
	t.Helper()
	ctx := context.Background()
	d, err := projections.Get[projections.DatasetDoc](ctx, ds, projections.DatasetsCollection, "set")
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("count=%d applied=%d desc=%q;", d.SampleCount, d.AppliedVersion, d.Description)
	page, err := ds.Query(ctx, projections.SamplesCollection, projections.Query{OrderBy: []projections.Order{{Field: "sample_id"}, {Field: "version"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range page.Docs {
		var s projections.SampleDoc
		json.Unmarshal(raw, &s)
		out += fmt.Sprintf(" %s@%d(latest=%v,patch=%s)", s.SampleID, s.Version, s.Latest, s.Patch)
	}
	return out
}

const wantCatalog = "count=4 applied=6 desc=\"a set\"; a@1(latest=true,patch=1) b@1(latest=false,patch=1) b@2(latest=true,patch=2) c@1(latest=true,patch=1) d@1(latest=true,patch=1)"

func TestApplyCatalogInOrder(t *testing.T) {
	es, ds, all := catalogLog(t)
	for _, e := range all {
		if err := projections.ApplyCatalog(context.Background(), ds, es, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := catalogState(t, ds); got != wantCatalog {
		t.Fatalf("got  %s\nwant %s", got, wantCatalog)
	}
}

// Deliveries in any order, any number of times, and concurrently end in the same read model:
// late and repeated events are skipped, gaps are filled from the log.
func TestApplyCatalogShuffledDuplicatedConcurrent(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			es, ds, all := catalogLog(t)
			rng := rand.New(rand.NewSource(seed))
			var wg sync.WaitGroup
			for w := 0; w < 3; w++ {
				deliveries := append(append([]events.Envelope{}, all...), all[rng.Intn(len(all))], all[rng.Intn(len(all))])
				rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, e := range deliveries {
						if err := projections.ApplyCatalog(context.Background(), ds, es, e); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			if got := catalogState(t, ds); got != wantCatalog {
				t.Fatalf("got  %s\nwant %s", got, wantCatalog)
			}
		})
	}
}

// One batch out of order with a duplicate, as an importer or a relay may hand it over.
func TestApplyCatalogBatch(t *testing.T) {
	es, ds, all := catalogLog(t)
	batch := []events.Envelope{all[5], all[2], all[0], all[2], all[4], all[1], all[3]}
	if err := projections.ApplyCatalog(context.Background(), ds, es, batch...); err != nil {
		t.Fatal(err)
	}
	if got := catalogState(t, ds); got != wantCatalog {
		t.Fatalf("got  %s\nwant %s", got, wantCatalog)
	}
}

func TestSampleLookups(t *testing.T) {
	es, ds, all := catalogLog(t)
	ctx := context.Background()
	if err := projections.ApplyCatalog(ctx, ds, es, all...); err != nil {
		t.Fatal(err)
	}
	if s, err := projections.Sample(ctx, ds, "set", "b"); err != nil || s.Version != 2 || s.Patch != "2" {
		t.Fatalf("latest b: %+v %v", s, err)
	}
	if s, err := projections.SampleVersion(ctx, ds, "set", "b", 1); err != nil || s.Version != 1 || s.Latest {
		t.Fatalf("b v1: %+v %v", s, err)
	}
	for _, c := range []struct {
		dataset, id string
		version     int
		want        error
	}{
		{"nope", "b", 0, projections.ErrUnknownDataset},
		{"set", "zz", 0, projections.ErrUnknownSample},
		{"set", "zz", 3, projections.ErrUnknownSample},
		{"set", "b", 3, projections.ErrUnknownVersion},
	} {
		if _, err := projections.SampleVersion(ctx, ds, c.dataset, c.id, c.version); !errorsIs(err, c.want) || !errorsIs(err, projections.ErrNotFound) {
			t.Errorf("%s/%s v%d: %v, want %v", c.dataset, c.id, c.version, err, c.want)
		}
	}
	var ix projections.SampleIndex
	found, total, err := ix.Find(ctx, ds, projections.SampleFilter{Search: "ORG__B"}, 0, -1)
	if err != nil || total != 1 || found[0].Version != 2 || !found[0].Latest {
		t.Fatalf("index search: %d %+v %v", total, found, err)
	}
	found, total, _ = ix.Find(ctx, ds, projections.SampleFilter{}, 1, 2)
	if total != 4 || len(found) != 2 || found[0].SampleID != "b" || found[1].SampleID != "c" {
		t.Fatalf("index page: %d %+v", total, found)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
