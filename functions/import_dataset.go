package functions

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/dataset"
)

// An import appends its events in batches: big enough that 10,000 rows take a few dozen
// appends, small enough for one Firestore transaction (at most 500 writes, two per event on the
// Firestore event store, and a request of at most 10 MiB).
const (
	ImportBatch      = 200
	ImportBatchBytes = 4 << 20
)

// ImportOptions describe one import into one dataset.
type ImportOptions struct {
	Dataset            string
	Description        string // the dataset's description; "" keeps the current one
	VersionDescription string // describes every new version; "" says what changed
	SkipInvalid        bool   // import the valid rows even when some are invalid
	// Progress, when set, is told how far the import is: stage "prepare" (environments) then
	// "append" (events), done out of total.
	Progress func(stage string, done, total int)
}

// ImportResult says what an import did.
type ImportResult struct {
	Rows      int // valid rows
	New       int // samples seen for the first time
	Versioned int // samples given a new version
	Unchanged int
	Invalid   []*dataset.RowError // rows left out (only with SkipInvalid; otherwise the import fails)
}

// InvalidRowsError: some rows are invalid and SkipInvalid was not given; nothing was imported.
type InvalidRowsError struct{ Rows []*dataset.RowError }

func (e *InvalidRowsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid row(s), nothing imported (--skip-invalid imports the others):", len(e.Rows))
	for i, r := range e.Rows {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Rows)-i)
			break
		}
		b.WriteString("\n  " + r.Error())
	}
	return b.String()
}

// ImportDataset imports rows (already read, with the rows that failed to read in invalid) into
// a dataset: it prepares every environment, folds the dataset's stream, decides the events
// (changed content is a new version, the same content nothing) and appends them in batches at
// the expected version, projecting each batch at once. Environments are checked before anything
// is appended, so an invalid row stops the whole import unless SkipInvalid. A concurrent import
// into the same dataset makes the later one fail with events.ErrConcurrency; running it again
// completes it, since what was already imported is unchanged.
func ImportDataset(ctx context.Context, a *app.App, rows []dataset.Row, invalid []*dataset.RowError, opts ImportOptions) (ImportResult, error) {
	if err := events.ValidDatasetName(opts.Dataset); err != nil {
		return ImportResult{}, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	known, err := storedArchives(ctx, a, opts.Dataset)
	if err != nil {
		return ImportResult{}, err
	}
	blobs := &dataset.Blobs{Store: a.Blobs, Known: known}
	valid := rows[:0:0]
	for i := range rows {
		if rerr := blobs.Prepare(ctx, &rows[i]); rerr != nil {
			invalid = append(invalid, rerr)
		} else {
			valid = append(valid, rows[i])
		}
		progress("prepare", i+1, len(rows))
		if err := ctx.Err(); err != nil {
			return ImportResult{}, err
		}
	}
	sort.SliceStable(invalid, func(i, j int) bool { return invalid[i].Line < invalid[j].Line })
	if len(invalid) > 0 && !opts.SkipInvalid {
		return ImportResult{}, &InvalidRowsError{Rows: invalid}
	}
	if len(valid) == 0 {
		return ImportResult{Invalid: invalid}, errors.New("no valid rows to import")
	}

	stream := events.DatasetStream(opts.Dataset)
	contents := make([]events.SampleContent, len(valid))
	for i, r := range valid {
		contents[i] = r.Content
	}
	// The first batch is decided on the dataset as folded, with the whole plan; the others only
	// check that nothing else was appended since (the import's own versions).
	var (
		plan     events.ImportPlan
		planned  bool
		expected int64
		start    int
	)
	batch := func() []events.Envelope {
		size, end := 0, start
		for ; end < len(plan.Events) && end-start < ImportBatch && (end == start || size+len(plan.Events[end].Data) <= ImportBatchBytes); end++ {
			size += len(plan.Events[end].Data)
		}
		return plan.Events[start:end]
	}
	moved := func(version int64) error {
		return fmt.Errorf("import into %s after %d of %d events: another writer appended at version %d: %w", opts.Dataset, start, len(plan.Events), version, events.ErrConcurrency)
	}
	var stored []events.Envelope
	_, stored, err = app.Update(ctx, a, stream, events.DatasetOf, func(ds *events.Dataset) ([]events.Envelope, error) {
		if planned {
			return nil, moved(ds.Version)
		}
		p, err := events.DecideImport(ds, opts.Dataset, opts.Description, opts.VersionDescription, contents, a.Clock.Now())
		plan, planned, expected = p, true, ds.Version
		return batch(), err
	})
	for {
		if err != nil {
			return ImportResult{}, fmt.Errorf("import into %s after %d of %d events: %w", opts.Dataset, start, len(plan.Events), err)
		}
		start += len(stored)
		expected += int64(len(stored))
		if len(stored) > 0 {
			progress("append", start, len(plan.Events))
		}
		if start >= len(plan.Events) {
			break
		}
		_, stored, err = app.Update(ctx, a, stream, app.FoldHead, func(h *app.Head) ([]events.Envelope, error) {
			if h.Version != expected {
				return nil, moved(h.Version)
			}
			return batch(), nil
		}, app.From(&app.Head{Version: expected}))
	}
	return ImportResult{Rows: len(valid), New: plan.New, Versioned: plan.Versioned, Unchanged: plan.Unchanged, Invalid: invalid}, nil
}

// storedArchives are the archives the dataset's samples keep in the blob store, by environment
// digest: an import of the same environments stores nothing again.
func storedArchives(ctx context.Context, a *app.App, name string) (map[string]events.BlobRef, error) {
	evs, err := a.Events.Load(ctx, events.DatasetStream(name), 1)
	if err != nil {
		return nil, fmt.Errorf("import into %s: %w", name, err)
	}
	ds, err := events.DatasetOf(evs)
	if err != nil {
		return nil, fmt.Errorf("import into %s: %w", name, err)
	}
	known := map[string]events.BlobRef{}
	for _, head := range ds.Samples {
		if ref := head.Content.Environment.ArchiveRef; ref != nil && head.Content.EnvironmentDigest != "" {
			known[head.Content.EnvironmentDigest] = *ref
		}
	}
	return known, nil
}
