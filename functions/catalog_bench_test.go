package functions

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/dataset"
)

// benchFile writes n small SWE-bench-style rows (image environments, so the figure is the
// catalog's own cost) to a JSONL file.
func benchFile(b *testing.B, n int) string {
	b.Helper()
	rows := make([]any, n)
	for i := range rows {
		r := testRow(fmt.Sprint(i), fmt.Sprintf("diff --git a/f%d.py b/f%d.py\n--- a/f%d.py\n+++ b/f%d.py\n@@ -1 +1 @@\n-x = %d\n+x = %d\n", i, i, i, i, i, i+1))
		r["problem_statement"] = fmt.Sprintf("Sample %d: the function returns the wrong value when the input is empty. %s", i, "Steps to reproduce follow. ")
		rows[i] = r
	}
	return writeJSONL(b, b.TempDir(), "bench.jsonl", rows...)
}

// importBench reads file and imports it into dataset "bench", as `codeset dataset import` does.
func importBench(b *testing.B, a *app.App, file string, n int) {
	b.Helper()
	rows, bad, err := dataset.ReadFile(file)
	if err != nil || len(bad) > 0 || len(rows) != n {
		b.Fatalf("bench rows: %d read, %v, %v", len(rows), bad, err)
	}
	res, err := ImportDataset(context.Background(), a, rows, nil, ImportOptions{Dataset: "bench"})
	if err != nil || res.New != n {
		b.Fatalf("import: %+v %v", res, err)
	}
}

// BenchmarkImport10000 reads and imports a 10,000-row JSONL file into an empty dataset on the
// embedded default (target: under 30 s).
func BenchmarkImport10000(b *testing.B) {
	file := benchFile(b, 10000)
	for b.Loop() {
		b.StopTimer()
		h := newCatalogHarness(b, nil)
		b.StartTimer()
		importBench(b, h.a, file, 10000)
	}
}

// BenchmarkListSamplesSearch: GET /samples?search=...&page=1&page_size=50 over HTTP with 10,000
// samples imported (target: p50 at most 5 ms). Reports p50 and p99 in ms, and the first request
// (which builds the in-memory index).
func BenchmarkListSamplesSearch(b *testing.B) {
	h := newCatalogHarness(b, nil)
	importBench(b, h.a, benchFile(b, 10000), 10000)
	url := h.url + app.Prefix + "/samples?search=PROJ-12&page=1&page_size=50"
	get := func() {
		resp, err := http.DefaultClient.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	first := time.Now()
	get() // builds the in-memory index once, as the first request after a start does
	firstDur := time.Since(first)
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		get()
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(firstDur.Microseconds())/1000, "first-ms")
}
