// Package firestore is the event store on Cloud Firestore. Each stream has a head document
// streams/{stream} holding its version, and its events are streams/{stream}/events/{version,
// zero-padded}; an append creates the events and moves the head in one transaction (of writes
// guarded by preconditions), so appends to different streams never contend (there is no global
// counter document). An index
// event_ids/{id} -> (stream, version), written in the same transaction, makes a retry with the
// same ids idempotent and a reuse of an id with other data an error. Events are written with
// published=false: the outbox is a collection-group query over them.
//
// Indexes needed on GCP beyond Firestore's automatic ones: a collection-group composite index on
// events (published ASC, stored_at ASC, version ASC) for Unpublished, and collection-group
// single-field indexing of events.published.
package firestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/firestoredb"
)

const (
	streamsColl = "streams"
	eventsColl  = "events"
	idsColl     = "event_ids"
	scanPage    = 500
)

// Store implements events.Store on Firestore.
type Store struct{ c *firestore.Client }

// New returns a store over client's database. It owns nothing: the caller closes the client.
func New(c *firestore.Client) *Store { return &Store{c: c} }

var _ events.Store = (*Store)(nil)

// head is the stream's head document.
type head struct {
	Stream  string `firestore:"stream"`
	Version int64  `firestore:"version"`
}

// idEntry is the event-id index document: where the event with that id is stored.
type idEntry struct {
	Stream  string `firestore:"stream"`
	Version int64  `firestore:"version"`
}

// eventDoc is one stored event. Data is the JSON text as given, so it reads back unchanged.
type eventDoc struct {
	ID            string    `firestore:"id"`
	Stream        string    `firestore:"stream"`
	Version       int64     `firestore:"version"`
	Type          string    `firestore:"type"`
	SchemaVersion int64     `firestore:"schema_version"`
	OccurredAt    time.Time `firestore:"occurred_at"`
	UserID        string    `firestore:"user_id"`
	Data          string    `firestore:"data"`
	Published     bool      `firestore:"published"`
	// StoredAt is the commit time: the outbox is read oldest first by it.
	StoredAt time.Time `firestore:"stored_at,serverTimestamp"`
}

func toDoc(e events.Envelope) eventDoc {
	return eventDoc{ID: e.ID, Stream: e.Stream, Version: e.Version, Type: e.Type, SchemaVersion: int64(e.SchemaVersion),
		OccurredAt: e.OccurredAt, UserID: e.UserID, Data: string(e.Data)}
}

func (d eventDoc) envelope() events.Envelope {
	e := events.Envelope{ID: d.ID, Stream: d.Stream, Version: d.Version, Type: d.Type, SchemaVersion: int(d.SchemaVersion),
		OccurredAt: d.OccurredAt.UTC(), UserID: d.UserID}
	if d.Data != "" {
		e.Data = []byte(d.Data)
	}
	return e
}

func (s *Store) headRef(stream string) *firestore.DocumentRef {
	return s.c.Collection(streamsColl).Doc(firestoredb.ID(stream))
}

func (s *Store) eventRef(stream string, version int64) *firestore.DocumentRef {
	return s.headRef(stream).Collection(eventsColl).Doc(fmt.Sprintf("%020d", version))
}

func (s *Store) idRef(id string) *firestore.DocumentRef {
	return s.c.Collection(idsColl).Doc(firestoredb.ID(id))
}

// normal is e as it will be stored in stream: the same normalisation as the SQLite store, so a
// retry compares equal to what was stored.
func normal(stream string, e events.Envelope) events.Envelope {
	e.Stream = stream
	if e.SchemaVersion == 0 {
		e.SchemaVersion = 1
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	return e
}

// Append is optimistic: it reads the id index and the head outside any transaction, then
// commits the events, their index entries and the new head in one transaction made only of
// writes, guarded by preconditions (the head unchanged since it was read, or still absent; each
// event and index document new). A transaction that read the head would hold locks that the
// emulator resolves only by timing out when many appenders race for one stream; preconditions
// fail at once instead, and the loser re-reads and decides again: an idempotent retry, a
// conflict, ErrConcurrency, or (at Any) another try at the new head.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	want := make([]events.Envelope, len(evs))
	idRefs := make([]*firestore.DocumentRef, len(evs))
	seen := make(map[string]bool, len(evs))
	for i, e := range evs {
		if seen[e.ID] {
			return nil, fmt.Errorf("append %s: event id %s twice in one batch: %w", stream, e.ID, events.ErrIDConflict)
		}
		seen[e.ID] = true
		want[i] = normal(stream, e)
		idRefs[i] = s.idRef(e.ID)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, firestoredb.Timeout)
	defer cancel()
	var lost error
	// fail says why the loop ends with err; when it is our own bound that ran out (the caller's
	// context is live) after lost races, that is a lost race too: ErrConcurrency.
	fail := func(err error) ([]events.Envelope, error) {
		if lost != nil && ctx.Err() != nil && parent.Err() == nil {
			return nil, fmt.Errorf("%s: still losing races after %v (%v): %w", stream, firestoredb.Timeout, lost, events.ErrConcurrency)
		}
		return nil, fmt.Errorf("append %s: %w", stream, err)
	}
	for attempt := range firestoredb.Attempts {
		if attempt > 0 {
			if err := firestoredb.Backoff(ctx, attempt); err != nil {
				return fail(err)
			}
		}
		idSnaps, err := s.c.GetAll(ctx, idRefs)
		if err != nil {
			return fail(fmt.Errorf("read id index: %w", err))
		}
		if stored, done, err := s.existing(ctx, stream, want, idSnaps); done || err != nil {
			if err != nil && !errors.Is(err, events.ErrIDConflict) {
				return fail(err)
			}
			return stored, err
		}
		headSnap, err := s.headRef(stream).Get(ctx)
		cur, err := s.version(headSnap, err)
		if err != nil {
			return fail(err)
		}
		if expected != events.Any && cur != expected {
			return nil, fmt.Errorf("%s at %d, expected %d: %w", stream, cur, expected, events.ErrConcurrency)
		}
		out, err := s.commit(ctx, stream, cur, headSnap, want, idRefs)
		if err == nil {
			return out, nil
		}
		if !firestoredb.LostRace(err) {
			return fail(err)
		}
		lost = err // someone else appended (or stored these ids) meanwhile: decide again
	}
	return nil, fmt.Errorf("%s: lost %d races in a row (%v): %w", stream, firestoredb.Attempts, lost, events.ErrConcurrency)
}

// commit writes want at versions cur+1.. with their index entries and the new head, all or
// nothing, provided the head is as read (headSnap) and none of the documents exists yet.
func (s *Store) commit(ctx context.Context, stream string, cur int64, headSnap *firestore.DocumentSnapshot, want []events.Envelope, idRefs []*firestore.DocumentRef) ([]events.Envelope, error) {
	out := make([]events.Envelope, len(want))
	for i, e := range want {
		e.Version = cur + int64(i) + 1
		out[i] = e
	}
	next := head{Stream: stream, Version: cur + int64(len(want))}
	err := s.c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for i, e := range out {
			if err := tx.Create(s.eventRef(stream, e.Version), toDoc(e)); err != nil {
				return err
			}
			if err := tx.Create(idRefs[i], idEntry{Stream: stream, Version: e.Version}); err != nil {
				return err
			}
		}
		if headSnap != nil && headSnap.Exists() {
			return tx.Update(s.headRef(stream), []firestore.Update{{Path: "version", Value: next.Version}},
				firestore.LastUpdateTime(headSnap.UpdateTime))
		}
		return tx.Create(s.headRef(stream), next)
	}, firestore.MaxAttempts(2))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// existing tells an idempotent retry (every event already stored in stream with the same content:
// done, with the events as stored) from a reuse of an id (ErrIDConflict) and from new events (not
// done).
func (s *Store) existing(ctx context.Context, stream string, want []events.Envelope, idSnaps []*firestore.DocumentSnapshot) ([]events.Envelope, bool, error) {
	refs := make([]*firestore.DocumentRef, 0, len(want))
	for i, snap := range idSnaps {
		if !snap.Exists() {
			if len(refs) > 0 || anyExists(idSnaps[i:]) {
				return nil, true, fmt.Errorf("%s: batch mixes stored and new event ids (%s is new): %w", stream, want[i].ID, events.ErrIDConflict)
			}
			return nil, false, nil
		}
		var ie idEntry
		if err := snap.DataTo(&ie); err != nil {
			return nil, true, fmt.Errorf("id index %s: %w", want[i].ID, err)
		}
		if ie.Stream != stream {
			return nil, true, fmt.Errorf("%s: event %s is stored in %s: %w", stream, want[i].ID, ie.Stream, events.ErrIDConflict)
		}
		refs = append(refs, s.eventRef(ie.Stream, ie.Version))
	}
	snaps, err := s.c.GetAll(ctx, refs)
	if err != nil {
		return nil, true, fmt.Errorf("read stored events: %w", err)
	}
	stored := make([]events.Envelope, len(snaps))
	for i, snap := range snaps {
		var d eventDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, true, fmt.Errorf("stored event %s: %w", want[i].ID, err)
		}
		stored[i] = d.envelope()
		if !stored[i].SameContent(want[i]) {
			return nil, true, fmt.Errorf("%s: event %s: %w", stream, want[i].ID, events.ErrIDConflict)
		}
	}
	return stored, true, nil
}

func anyExists(snaps []*firestore.DocumentSnapshot) bool {
	for _, s := range snaps {
		if s.Exists() {
			return true
		}
	}
	return false
}

// version reads a head snapshot: 0 for a stream never written.
func (s *Store) version(snap *firestore.DocumentSnapshot, err error) (int64, error) {
	if firestoredb.NotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read head: %w", err)
	}
	var h head
	if err := snap.DataTo(&h); err != nil {
		return 0, fmt.Errorf("decode head: %w", err)
	}
	return h.Version, nil
}

func (s *Store) Version(ctx context.Context, stream string) (int64, error) {
	v, err := s.version(s.headRef(stream).Get(ctx))
	if err != nil {
		return 0, fmt.Errorf("version %s: %w", stream, err)
	}
	return v, nil
}

// collect runs q to the end and returns its events, upcast.
func collect(ctx context.Context, q firestore.Query) ([]events.Envelope, error) {
	it := q.Documents(ctx)
	defer it.Stop()
	var out []events.Envelope
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var d eventDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
		}
		e, err := events.Upcast(d.envelope())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

func (s *Store) loadQuery(stream string, from int64) firestore.Query {
	return s.headRef(stream).Collection(eventsColl).Where("version", ">=", from).OrderBy("version", firestore.Asc)
}

func (s *Store) Load(ctx context.Context, stream string, from int64) ([]events.Envelope, error) {
	evs, err := collect(ctx, s.loadQuery(stream, from))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	return evs, nil
}

func (s *Store) Unpublished(ctx context.Context, limit int) ([]events.Envelope, error) {
	q := s.c.CollectionGroup(eventsColl).Where("published", "==", false).
		OrderBy("stored_at", firestore.Asc).OrderBy("version", firestore.Asc)
	if limit > 0 {
		q = q.Limit(limit)
	}
	evs, err := collect(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("unpublished: %w", err)
	}
	return evs, nil
}

func (s *Store) MarkPublished(ctx context.Context, evs ...events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	bw := s.c.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, 0, len(evs))
	for _, e := range evs {
		j, err := bw.Update(s.eventRef(e.Stream, e.Version), []firestore.Update{{Path: "published", Value: true}})
		if err != nil {
			bw.End()
			return fmt.Errorf("mark published %s@%d: %w", e.Stream, e.Version, err)
		}
		jobs = append(jobs, j)
	}
	bw.End()
	var errs []error
	for i, j := range jobs {
		// An event that is not stored has nothing to mark, as in the SQLite store.
		if _, err := j.Results(); err != nil && !firestoredb.NotFound(err) {
			errs = append(errs, fmt.Errorf("mark published %s@%d: %w", evs[i].Stream, evs[i].Version, err))
		}
	}
	return errors.Join(errs...)
}

// Scan walks the heads of the streams whose name starts with prefix, in name order, a page at a
// time, and each stream's events a page at a time, so no query stays open while fn runs.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(events.Envelope) error) error {
	after := ""
	first := true
	for {
		q := s.c.Collection(streamsColl).OrderBy("stream", firestore.Asc).Limit(scanPage)
		if first {
			q = q.StartAt(prefix)
		} else {
			q = q.StartAfter(after)
		}
		first = false
		snaps, err := q.Documents(ctx).GetAll()
		if err != nil {
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		for _, snap := range snaps {
			var h head
			if err := snap.DataTo(&h); err != nil {
				return fmt.Errorf("scan %q: decode head %s: %w", prefix, snap.Ref.ID, err)
			}
			if !strings.HasPrefix(h.Stream, prefix) {
				return nil // ordered by name: past the prefix
			}
			if err := s.scanStream(ctx, h.Stream, fn); err != nil {
				return err
			}
			after = h.Stream
		}
		if len(snaps) < scanPage {
			return nil
		}
	}
}

func (s *Store) scanStream(ctx context.Context, stream string, fn func(events.Envelope) error) error {
	from := int64(1)
	for {
		page, err := collect(ctx, s.loadQuery(stream, from).Limit(scanPage))
		if err != nil {
			return fmt.Errorf("scan %s: %w", stream, err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			from = e.Version + 1
		}
		if len(page) < scanPage {
			return nil
		}
	}
}
