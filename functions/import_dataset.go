package functions

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
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
func ImportDataset(ctx context.Context, a *App, rows []dataset.Row, invalid []*dataset.RowError, opts ImportOptions) (ImportResult, error) {
	if err := events.ValidDatasetName(opts.Dataset); err != nil {
		return ImportResult{}, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	blobs := &dataset.Blobs{DataDir: a.Config.DataDir}
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
	history, err := a.Events.Load(ctx, stream, 1)
	if err != nil {
		return ImportResult{}, fmt.Errorf("load %s: %w", stream, err)
	}
	var ds events.Dataset
	for _, e := range history {
		if err := ds.Apply(e); err != nil {
			return ImportResult{}, err
		}
	}
	contents := make([]events.SampleContent, len(valid))
	for i, r := range valid {
		contents[i] = r.Content
	}
	plan, err := events.DecideImport(&ds, opts.Dataset, opts.Description, opts.VersionDescription, contents, a.Clock.Now())
	if err != nil {
		return ImportResult{}, err
	}
	expected := ds.Version
	for start, end := 0, 0; start < len(plan.Events); start = end {
		size := 0
		for end = start; end < len(plan.Events) && end-start < ImportBatch && (end == start || size+len(plan.Events[end].Data) <= ImportBatchBytes); end++ {
			size += len(plan.Events[end].Data)
		}
		batch := plan.Events[start:end]
		stored, err := a.Events.Append(ctx, stream, expected, batch...)
		if err != nil {
			return ImportResult{}, fmt.Errorf("import into %s after %d of %d events: %w", opts.Dataset, start, len(plan.Events), err)
		}
		expected += int64(len(stored))
		// Project the batch before publishing it, so the bus's deliveries find it applied and
		// skip it, instead of racing this projection on the same documents (which Firestore
		// makes slow). The events are durable: a failure here is repaired by the bus, and one
		// left unpublished by a crash is published by the outbox relay.
		if err := projections.ApplyCatalog(ctx, a.Docs, a.Events, stored...); err != nil {
			a.Logger.WarnContext(ctx, "catalog projection of an import batch failed; the bus will retry", "dataset", opts.Dataset, "error", err.Error())
		}
		if a.Log.Publisher != nil {
			if err := a.Log.Publisher.Publish(context.WithoutCancel(ctx), stored...); err != nil {
				a.Logger.WarnContext(ctx, "publish after commit failed; the relay will retry", "stream", stream, "error", err.Error())
			}
		}
		progress("append", start+len(batch), len(plan.Events))
	}
	return ImportResult{Rows: len(valid), New: plan.New, Versioned: plan.Versioned, Unchanged: plan.Unchanged, Invalid: invalid}, nil
}
