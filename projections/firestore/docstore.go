// Package firestore is the read-model store on Cloud Firestore: one collection per read-model
// collection, each JSON document stored as Firestore fields (not a blob), so that queries by
// field equality and ordering run in Firestore itself.
//
// Queries that filter on one field and order by another need a composite index on GCP (the
// emulator needs none); each index is (filter fields..., order fields..., __name__ ASC). As in
// Firestore itself, a query ordered by a field leaves out documents that lack that field, so read
// models always write the fields they are ordered by (no omitempty on them).
package firestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/firestore/apiv1/firestorepb"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/firestoredb"
)

// Store implements projections.DocStore on Firestore.
type Store struct{ c *firestore.Client }

// New returns a store over client's database. It owns nothing: the caller closes the client.
func New(c *firestore.Client) *Store { return &Store{c: c} }

var _ projections.DocStore = (*Store)(nil)

func (s *Store) ref(coll, id string) *firestore.DocumentRef {
	return s.c.Collection(firestoredb.ID(coll)).Doc(firestoredb.ID(id))
}

func (s *Store) Get(ctx context.Context, coll, id string) (json.RawMessage, error) {
	snap, err := s.ref(coll, id).Get(ctx)
	if firestoredb.NotFound(err) {
		return nil, fmt.Errorf("%s/%s: %w", coll, id, projections.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	return toJSON(snap)
}

func (s *Store) Put(ctx context.Context, coll, id string, doc json.RawMessage) error {
	fields, err := toFields(doc)
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", coll, id, err)
	}
	if _, err := s.ref(coll, id).Set(ctx, fields); err != nil {
		return fmt.Errorf("put %s/%s: %w", coll, id, err)
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, coll, id string) error {
	if _, err := s.ref(coll, id).Delete(ctx); err != nil && !firestoredb.NotFound(err) {
		return fmt.Errorf("delete %s/%s: %w", coll, id, err)
	}
	return nil
}

// Update is optimistic: it reads the document, runs fn, and writes the result only if the
// document is unchanged since the read (or still absent); when another writer got there first
// it reads and runs fn again, up to firestoredb.Attempts times (then ErrConflict).
func (s *Store) Update(ctx context.Context, coll, id string, fn func(cur json.RawMessage) (json.RawMessage, error)) error {
	ref := s.ref(coll, id)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, firestoredb.Timeout)
	defer cancel()
	var lost error
	for attempt := range firestoredb.Attempts {
		err := error(nil)
		if attempt > 0 {
			err = firestoredb.Backoff(ctx, attempt)
		}
		if err == nil {
			if err = s.updateOnce(ctx, ref, fn); err == nil {
				return nil
			}
			if firestoredb.LostRace(err) {
				lost = err
				continue
			}
		}
		if lost != nil && ctx.Err() != nil && parent.Err() == nil {
			// Our own bound ran out while losing races.
			return fmt.Errorf("update %s/%s: still losing races after %v (%v): %w", coll, id, firestoredb.Timeout, lost, projections.ErrConflict)
		}
		return err
	}
	return fmt.Errorf("update %s/%s: lost %d races in a row (%v): %w", coll, id, firestoredb.Attempts, lost, projections.ErrConflict)
}

// updateOnce is one read, fn, guarded write. Errors of fn come back as they are; a lost race is
// a status error that firestoredb.LostRace recognises.
func (s *Store) updateOnce(ctx context.Context, ref *firestore.DocumentRef, fn func(cur json.RawMessage) (json.RawMessage, error)) error {
	snap, err := ref.Get(ctx)
	exists := err == nil
	if err != nil && !firestoredb.NotFound(err) {
		return fmt.Errorf("update %s: read: %w", ref.Path, err)
	}
	var cur json.RawMessage
	if exists {
		if cur, err = toJSON(snap); err != nil {
			return err
		}
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	fields, err := toFields(next)
	if err != nil {
		return fmt.Errorf("update %s: %w", ref.Path, err)
	}
	if !exists {
		_, err = ref.Create(ctx, fields)
		return err
	}
	// Replace the whole document, but only as it was read: set every new field, delete every
	// old field the new document lacks.
	var updates []firestore.Update
	for k, v := range fields {
		updates = append(updates, firestore.Update{FieldPath: firestore.FieldPath{k}, Value: v})
	}
	for k := range snap.Data() {
		if _, ok := fields[k]; !ok {
			updates = append(updates, firestore.Update{FieldPath: firestore.FieldPath{k}, Value: firestore.Delete})
		}
	}
	if len(updates) == 0 {
		return nil // {} over {}: nothing changes, whatever order it is taken in
	}
	_, err = ref.Update(ctx, updates, firestore.LastUpdateTime(snap.UpdateTime))
	return err
}

var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func field(name string) (firestore.FieldPath, error) {
	if !fieldName.MatchString(name) {
		return nil, fmt.Errorf("projections/firestore: bad field name %q", name)
	}
	return firestore.FieldPath{name}, nil
}

func (s *Store) filtered(coll string, where []projections.Filter) (firestore.Query, error) {
	q := s.c.Collection(firestoredb.ID(coll)).Query
	for _, f := range where {
		p, err := field(f.Field)
		if err != nil {
			return q, err
		}
		q = q.WherePath(p, "==", f.Value)
	}
	return q, nil
}

func (s *Store) Query(ctx context.Context, coll string, pq projections.Query) (projections.Page, error) {
	q, err := s.filtered(coll, pq.Where)
	if err != nil {
		return projections.Page{}, err
	}
	paths := make([]firestore.FieldPath, 0, len(pq.OrderBy))
	for _, o := range pq.OrderBy {
		p, err := field(o.Field)
		if err != nil {
			return projections.Page{}, err
		}
		dir := firestore.Asc
		if o.Desc {
			dir = firestore.Desc
		}
		q = q.OrderByPath(p, dir)
		paths = append(paths, p)
	}
	q = q.OrderBy(firestore.DocumentID, firestore.Asc) // ties by id, as the port says
	if pq.Cursor != "" {
		after, err := decodeCursor(pq.Cursor, len(paths))
		if err != nil {
			return projections.Page{}, err
		}
		q = q.StartAfter(after...)
	}
	if pq.Offset > 0 {
		// Skipped on the server: not sent, though Firestore still reads (and bills) them.
		q = q.Offset(pq.Offset)
	}
	if pq.Limit > 0 {
		q = q.Limit(pq.Limit + 1) // one more tells whether there is a next page
	}
	snaps, err := q.Documents(ctx).GetAll()
	if err != nil {
		return projections.Page{}, fmt.Errorf("query %s: %w", coll, err)
	}
	var page projections.Page
	if pq.Limit > 0 && len(snaps) > pq.Limit {
		snaps = snaps[:pq.Limit]
		if page.NextCursor, err = encodeCursor(snaps[len(snaps)-1], paths); err != nil {
			return projections.Page{}, fmt.Errorf("query %s: %w", coll, err)
		}
	}
	for _, snap := range snaps {
		doc, err := toJSON(snap)
		if err != nil {
			return projections.Page{}, err
		}
		page.Docs = append(page.Docs, doc)
	}
	return page, nil
}

func (s *Store) Count(ctx context.Context, coll string, where ...projections.Filter) (int, error) {
	q, err := s.filtered(coll, where)
	if err != nil {
		return 0, err
	}
	res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", coll, err)
	}
	v, ok := res["n"].(*firestorepb.Value)
	if !ok {
		return 0, fmt.Errorf("count %s: unexpected result %T", coll, res["n"])
	}
	return int(v.GetIntegerValue()), nil
}

// cursorValue is one position value of a cursor, tagged with its type so it decodes to exactly
// the Firestore value it was (an integer must not come back as a double).
type cursorValue struct {
	I *int64   `json:"i,omitempty"`
	F *float64 `json:"f,omitempty"`
	S *string  `json:"s,omitempty"`
	B *bool    `json:"b,omitempty"`
	// all nil: null
}

type cursor struct {
	V  []cursorValue `json:"v"`
	ID string        `json:"id"`
}

// encodeCursor is the position after snap: its values of the ordered fields and its id.
func encodeCursor(snap *firestore.DocumentSnapshot, paths []firestore.FieldPath) (string, error) {
	c := cursor{ID: snap.Ref.ID}
	for _, p := range paths {
		v, err := snap.DataAtPath(p)
		if err != nil {
			return "", fmt.Errorf("cursor field %s: %w", p[0], err)
		}
		var cv cursorValue
		switch x := v.(type) {
		case nil:
		case int64:
			cv.I = &x
		case float64:
			cv.F = &x
		case string:
			cv.S = &x
		case bool:
			cv.B = &x
		default:
			return "", fmt.Errorf("cannot page by field %s holding a %T", p[0], v)
		}
		c.V = append(c.V, cv)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// decodeCursor returns StartAfter's values: one per ordered field, then the document id.
func decodeCursor(s string, fields int) ([]any, error) {
	bad := fmt.Errorf("bad cursor %q: %w", s, projections.ErrBadCursor)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil || len(c.V) != fields || c.ID == "" {
		return nil, bad
	}
	out := make([]any, 0, fields+1)
	for _, v := range c.V {
		switch {
		case v.I != nil:
			out = append(out, *v.I)
		case v.F != nil:
			out = append(out, *v.F)
		case v.S != nil:
			out = append(out, *v.S)
		case v.B != nil:
			out = append(out, *v.B)
		default:
			out = append(out, nil)
		}
	}
	return append(out, c.ID), nil
}

// arrayKey wraps an array nested directly in an array, which Firestore cannot store, in a map.
const arrayKey = "~array"

// toFields turns a JSON object into Firestore fields: integers as integers (JSON numbers that are
// not integers as doubles), objects as maps, arrays as arrays.
func toFields(doc json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("document is not JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("document is not a JSON object")
	}
	return toValue(m, false).(map[string]any), nil
}

func toValue(v any, inArray bool) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = toValue(e, false)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = toValue(e, true)
		}
		if inArray {
			return map[string]any{arrayKey: x}
		}
		return x
	}
	return v
}

func toJSON(snap *firestore.DocumentSnapshot) (json.RawMessage, error) {
	raw, err := json.Marshal(fromValue(snap.Data()))
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", snap.Ref.Path, err)
	}
	return raw, nil
}

func fromValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if inner, ok := x[arrayKey]; ok && len(x) == 1 {
			return fromValue(inner)
		}
		for k, e := range x {
			x[k] = fromValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = fromValue(e)
		}
		if x == nil {
			return []any{}
		}
		return x
	}
	return v
}
