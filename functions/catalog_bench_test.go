package functions

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/dataset"
)

// benchRows writes n SWE-bench-sized-ish rows (image environments, so the figure is the
// catalog's own cost) to a JSONL file and reads them back as the importer would.
func benchRows(b *testing.B, n int) ([]dataset.Row, []*dataset.RowError) {
	b.Helper()
	rows := make([]any, n)
	for i := range rows {
		r := testRow(fmt.Sprint(i), fmt.Sprintf("diff --git a/f%d.py b/f%d.py\n--- a/f%d.py\n+++ b/f%d.py\n@@ -1 +1 @@\n-x = %d\n+x = %d\n", i, i, i, i, i, i+1))
		r["problem_statement"] = fmt.Sprintf("Sample %d: the function returns the wrong value when the input is empty. %s", i, "Steps to reproduce follow. ")
		rows[i] = r
	}
	file := writeJSONL(b, b.TempDir(), "bench.jsonl", rows...)
	got, bad, err := dataset.ReadFile(file)
	if err != nil || len(bad) > 0 || len(got) != n {
		b.Fatalf("bench rows: %d read, %v, %v", len(got), bad, err)
	}
	return got, bad
}

// BenchmarkImport10000 imports 10,000 rows into an empty dataset (target: under 30 s).
func BenchmarkImport10000(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		rows, _ := benchRows(b, 10000)
		h := newCatalogHarness(b, nil)
		b.StartTimer()
		res, err := ImportDataset(context.Background(), h.a, rows, nil, ImportOptions{Dataset: "bench"})
		if err != nil || res.New != 10000 {
			b.Fatalf("import: %+v %v", res, err)
		}
	}
}

// BenchmarkListSamplesSearch: GET /samples?search=...&page=1&page_size=50 over HTTP with 10,000
// samples imported (target: p50 at most 5 ms). Reports p50 and p99 in ms.
func BenchmarkListSamplesSearch(b *testing.B) {
	rows, _ := benchRows(b, 10000)
	h := newCatalogHarness(b, nil)
	if _, err := ImportDataset(context.Background(), h.a, rows, nil, ImportOptions{Dataset: "bench"}); err != nil {
		b.Fatal(err)
	}
	url := h.srv.URL + Prefix + "/samples?search=PROJ-12&page=1&page_size=50"
	get := func() {
		resp, err := h.srv.Client().Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get() // builds the in-memory index once, as the first request after a start does
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		get()
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
