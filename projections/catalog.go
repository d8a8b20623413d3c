package projections

// The catalog read model: one document per dataset (with the projector's per-stream
// checkpoint) and one per sample version, built from the dataset streams (events/catalog.go).

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/codeset/codeset/events"
)

// Collections of the catalog read model.
const (
	DatasetsCollection = "catalog_datasets"
	SamplesCollection  = "catalog_samples"
)

// DatasetDoc is a dataset as listed. AppliedVersion is the last event of the dataset's stream
// the projector applied: older deliveries are skipped, and listings use it to know when their
// in-memory index is stale.
type DatasetDoc struct {
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	SampleCount    int       `json:"sample_count"`
	CreatedAt      time.Time `json:"created_at"`
	AppliedVersion int64     `json:"applied_version"`
}

// SampleDoc is one version of a sample, with the environment it runs in. Environment.Archive,
// when set, is relative to the data dir (see SampleDoc.Env).
type SampleDoc struct {
	Dataset            string    `json:"dataset"`
	Version            int       `json:"version"`
	VersionDescription string    `json:"version_description"`
	Latest             bool      `json:"latest"`
	CreatedAt          time.Time `json:"created_at"`
	ContentHash        string    `json:"content_hash"`
	events.SampleContent
}

// Env returns the sample's environment with the archive path resolved against dataDir, so a
// runtime can open it whatever its working directory.
func (s SampleDoc) Env(dataDir string) events.Environment {
	env := s.Environment
	if env.Archive != "" && !filepath.IsAbs(env.Archive) {
		env.Archive = filepath.Join(dataDir, filepath.FromSlash(env.Archive))
	}
	return env
}

// SampleDocID is the document id of a sample version. Ids are escaped because sample ids may
// hold characters (like '/') that document stores do not allow in ids.
func SampleDocID(dataset, sampleID string, version int) string {
	return url.PathEscape(dataset) + "~" + url.QueryEscape(sampleID) + "~" + strconv.Itoa(version)
}

// ErrUnknownDataset, ErrUnknownSample, ErrUnknownVersion: what a catalog lookup did not find.
// Each wraps ErrNotFound.
var (
	ErrUnknownDataset = fmt.Errorf("dataset %w", ErrNotFound)
	ErrUnknownSample  = fmt.Errorf("sample %w", ErrNotFound)
	ErrUnknownVersion = fmt.Errorf("sample version %w", ErrNotFound)
)

// Sample returns the latest version of a sample (ErrUnknownDataset, ErrUnknownSample).
func Sample(ctx context.Context, docs DocStore, dataset, sampleID string) (SampleDoc, error) {
	return SampleVersion(ctx, docs, dataset, sampleID, 0)
}

// SampleVersion returns version of a sample, or its latest for version 0 (ErrUnknownDataset,
// ErrUnknownSample, ErrUnknownVersion).
func SampleVersion(ctx context.Context, docs DocStore, dataset, sampleID string, version int) (SampleDoc, error) {
	if _, err := Get[DatasetDoc](ctx, docs, DatasetsCollection, dataset); err != nil {
		if errors.Is(err, ErrNotFound) {
			return SampleDoc{}, fmt.Errorf("%s: %w", dataset, ErrUnknownDataset)
		}
		return SampleDoc{}, err
	}
	if version > 0 {
		s, err := Get[SampleDoc](ctx, docs, SamplesCollection, SampleDocID(dataset, sampleID, version))
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return SampleDoc{}, err
		}
		if _, lerr := SampleVersion(ctx, docs, dataset, sampleID, 0); lerr != nil {
			return SampleDoc{}, lerr
		}
		return SampleDoc{}, fmt.Errorf("%s/%s v%d: %w", dataset, sampleID, version, ErrUnknownVersion)
	}
	found, _, err := List[SampleDoc](ctx, docs, SamplesCollection, Query{
		Where:   []Filter{{Field: "dataset", Value: dataset}, {Field: "sample_id", Value: sampleID}},
		OrderBy: []Order{{Field: "version", Desc: true}},
		Limit:   1,
	})
	if err != nil {
		return SampleDoc{}, fmt.Errorf("latest %s/%s: %w", dataset, sampleID, err)
	}
	if len(found) == 0 {
		return SampleDoc{}, fmt.Errorf("%s/%s: %w", dataset, sampleID, ErrUnknownSample)
	}
	return found[0], nil
}

// Datasets lists every dataset by name.
func Datasets(ctx context.Context, docs DocStore) ([]DatasetDoc, error) {
	out, _, err := List[DatasetDoc](ctx, docs, DatasetsCollection, Query{OrderBy: []Order{{Field: "name"}}})
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return out, nil
}

// ApplyCatalog projects events of dataset streams (others are ignored) into the catalog read
// model. It is idempotent and safe to run concurrently with itself: events at or below a
// dataset's checkpoint are skipped, a gap before the first new event is filled from store, a
// sample version document is only ever created once, and a version's latest flag only ever goes
// from true to false. The checkpoint moves last, in one transaction that also counts the
// dataset's samples, so a crash in between only makes the next delivery redo idempotent work.
func ApplyCatalog(ctx context.Context, docs DocStore, store events.Store, evs ...events.Envelope) error {
	byStream := map[string][]events.Envelope{}
	var order []string
	for _, e := range evs {
		if len(e.Stream) <= len(events.DatasetStreamPrefix) || e.Stream[:len(events.DatasetStreamPrefix)] != events.DatasetStreamPrefix {
			continue
		}
		if _, ok := byStream[e.Stream]; !ok {
			order = append(order, e.Stream)
		}
		byStream[e.Stream] = append(byStream[e.Stream], e)
	}
	for _, stream := range order {
		if err := applyStream(ctx, docs, store, stream, byStream[stream]); err != nil {
			return err
		}
	}
	return nil
}

func applyStream(ctx context.Context, docs DocStore, store events.Store, stream string, evs []events.Envelope) error {
	name := stream[len(events.DatasetStreamPrefix):]
	cur, err := Get[DatasetDoc](ctx, docs, DatasetsCollection, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Version < evs[j].Version })
	fresh := evs[:0:0]
	for _, e := range evs {
		if e.Version > cur.AppliedVersion && (len(fresh) == 0 || e.Version > fresh[len(fresh)-1].Version) {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if first := fresh[0].Version; first != cur.AppliedVersion+1 || fresh[len(fresh)-1].Version != first+int64(len(fresh))-1 {
		// A gap: some events of the stream have not reached us yet; read them from the log.
		loaded, err := store.Load(ctx, stream, cur.AppliedVersion+1)
		if err != nil {
			return fmt.Errorf("fill %s from %d: %w", stream, cur.AppliedVersion+1, err)
		}
		last := fresh[len(fresh)-1].Version
		fresh = fresh[:0]
		for _, e := range loaded {
			if e.Version <= last {
				fresh = append(fresh, e)
			}
		}
	}
	if err := applySampleVersions(ctx, docs, fresh); err != nil {
		return err
	}
	return Update(ctx, docs, DatasetsCollection, name, func(d *DatasetDoc, exists bool) (bool, error) {
		wrote := false
		for _, e := range fresh {
			if e.Version <= d.AppliedVersion {
				continue
			}
			switch e.Type {
			case events.DatasetCreated:
				var c events.DatasetCreatedData
				if err := e.Decode(&c); err != nil {
					return false, err
				}
				d.Name, d.Description, d.CreatedAt = c.Name, c.Description, c.CreatedAt
			case events.DatasetDescribed:
				var c events.DatasetDescribedData
				if err := e.Decode(&c); err != nil {
					return false, err
				}
				d.Description = c.Description
			case events.SampleVersionAdded:
				var s struct {
					Version int `json:"version"`
				}
				if err := e.Decode(&s); err != nil {
					return false, err
				}
				if s.Version == 1 {
					d.SampleCount++
				}
			}
			if d.Name == "" {
				d.Name = name
			}
			d.AppliedVersion = e.Version
			wrote = true
		}
		return wrote, nil
	})
}

// applyParallelism bounds the sample documents written at once. Different samples are
// independent, and concurrent writes let the store commit them together (SQLite's group commit,
// Firestore's independent documents): an import of 10,000 samples is then a few hundred commits
// rather than 10,000.
const applyParallelism = 32

// applySampleVersions writes the sample documents of evs: the versions of one sample in order,
// different samples concurrently.
func applySampleVersions(ctx context.Context, docs DocStore, evs []events.Envelope) error {
	bySample := map[string][]events.Envelope{}
	var order []string
	for _, e := range evs {
		if e.Type != events.SampleVersionAdded {
			continue
		}
		var id struct {
			SampleID string `json:"sample_id"`
		}
		if err := e.Decode(&id); err != nil {
			return err
		}
		if _, ok := bySample[id.SampleID]; !ok {
			order = append(order, id.SampleID)
		}
		bySample[id.SampleID] = append(bySample[id.SampleID], e)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		slots    = make(chan struct{}, applyParallelism)
	)
	for _, id := range order {
		slots <- struct{}{}
		wg.Add(1)
		go func(evs []events.Envelope) {
			defer func() { <-slots; wg.Done() }()
			for _, e := range evs {
				if err := applySampleVersion(ctx, docs, e); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}(bySample[id])
	}
	wg.Wait()
	return firstErr
}

func applySampleVersion(ctx context.Context, docs DocStore, e events.Envelope) error {
	var s events.SampleVersionAddedData
	if err := e.Decode(&s); err != nil {
		return err
	}
	doc := SampleDoc{Dataset: s.Dataset, Version: s.Version, VersionDescription: s.VersionDescription,
		Latest: true, CreatedAt: s.CreatedAt, ContentHash: s.ContentHash, SampleContent: s.SampleContent}
	err := Update(ctx, docs, SamplesCollection, SampleDocID(s.Dataset, s.SampleID, s.Version), func(d *SampleDoc, exists bool) (bool, error) {
		if exists {
			return false, nil // created before; its latest flag may have moved on since
		}
		*d = doc
		return true, nil
	})
	if err != nil || s.Version == 1 {
		return err
	}
	return Update(ctx, docs, SamplesCollection, SampleDocID(s.Dataset, s.SampleID, s.Version-1), func(d *SampleDoc, exists bool) (bool, error) {
		if !exists || !d.Latest {
			return false, nil
		}
		d.Latest = false
		return true, nil
	})
}

// SampleView is a sample as the API shows it (the spec's Sample schema).
type SampleView struct {
	SampleID               string    `json:"sample_id"`
	Description            *string   `json:"description"`
	Language               string    `json:"language"`
	Verifier               string    `json:"verifier"`
	Dataset                string    `json:"dataset"`
	Version                int       `json:"version"`
	VersionDescription     *string   `json:"version_description"`
	Latest                 bool      `json:"latest"`
	CreatedAt              time.Time `json:"created_at"`
	InstanceID             string    `json:"instance_id"`
	Repo                   string    `json:"repo"`
	BaseCommit             string    `json:"base_commit"`
	Patch                  string    `json:"patch"`
	NonCodePatch           string    `json:"non_code_patch"`
	TestPatch              string    `json:"test_patch"`
	ProblemStatement       string    `json:"problem_statement"`
	HintsText              string    `json:"hints_text"`
	EnvironmentSetupCommit string    `json:"environment_setup_commit"`
	FailToPass             []string  `json:"fail_to_pass"`
	PassToPass             []string  `json:"pass_to_pass"`
	FailToFail             []string  `json:"fail_to_fail"`
}

// View returns the sample as the API shows it.
func (s SampleDoc) View() SampleView {
	orNil := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	orEmpty := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return SampleView{
		SampleID: s.SampleID, Description: orNil(s.Description), Language: s.Language, Verifier: s.Verifier,
		Dataset: s.Dataset, Version: s.Version, VersionDescription: orNil(s.VersionDescription), Latest: s.Latest,
		CreatedAt: s.CreatedAt, InstanceID: s.InstanceID, Repo: s.Repo, BaseCommit: s.BaseCommit, Patch: s.Patch,
		NonCodePatch: s.NonCodePatch, TestPatch: s.TestPatch, ProblemStatement: s.ProblemStatement, HintsText: s.HintsText,
		EnvironmentSetupCommit: s.EnvironmentSetupCommit, FailToPass: orEmpty(s.FailToPass), PassToPass: orEmpty(s.PassToPass),
		FailToFail: orEmpty(s.FailToFail),
	}
}
