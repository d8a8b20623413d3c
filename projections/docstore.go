// Package projections holds the read models: the document-store port and its contract suite,
// the pure projector folds, the consumer runner (checkpoints, retries, dead letters) and billing
// replay. Read models are disposable: every one of them can be rebuilt from the event log.
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotFound: no document with that id in that collection.
var ErrNotFound = errors.New("projections: document not found")

// ErrConflict: a transaction kept colliding with concurrent writers until its bound ran out.
var ErrConflict = errors.New("projections: too much contention")

// Filter selects documents whose top-level field equals Value (a string, bool or integer).
type Filter struct {
	Field string
	Value any
}

// Order sorts by a top-level field; ties are broken by document id, ascending.
type Order struct {
	Field string
	Desc  bool
}

// Query selects documents of one collection. Cursor is the opaque NextCursor of the previous
// page ("" for the first).
type Query struct {
	Where   []Filter
	OrderBy []Order
	Limit   int // 0: no limit
	Cursor  string
	// Offset skips that many matching documents (after Cursor) before the page: the store skips
	// them without handing them over, for pages addressed by number.
	Offset int
}

// Page is one page of a query: the raw JSON documents and the cursor of the next page ("" at
// the end).
type Page struct {
	Docs       []json.RawMessage
	NextCursor string
}

// DocStore is the read-model port. Documents are JSON objects stored by (collection, id).
// Adapters: projections/sqlite and projections/firestore; both pass projections/docstoretest.
type DocStore interface {
	// Get returns the document or ErrNotFound.
	Get(ctx context.Context, coll, id string) (json.RawMessage, error)
	// Put writes the whole document.
	Put(ctx context.Context, coll, id string, doc json.RawMessage) error
	// Delete removes the document; deleting a missing one is not an error.
	Delete(ctx context.Context, coll, id string) error
	// Update runs fn inside one transaction with the current document (nil when absent) and
	// writes what fn returns; fn returning (nil, nil) writes nothing, an error aborts. fn may run
	// more than once when transactions collide, so it must not have side effects.
	Update(ctx context.Context, coll, id string, fn func(cur json.RawMessage) (json.RawMessage, error)) error
	// Query returns documents matching every filter, in order, a page at a time.
	Query(ctx context.Context, coll string, q Query) (Page, error)
	// Count returns how many documents match every filter.
	Count(ctx context.Context, coll string, where ...Filter) (int, error)
}

// Get reads a document into a T.
func Get[T any](ctx context.Context, s DocStore, coll, id string) (T, error) {
	var v T
	raw, err := s.Get(ctx, coll, id)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return v, nil
}

// Put writes a T as a document.
func Put[T any](ctx context.Context, s DocStore, coll, id string, v T) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", coll, id, err)
	}
	return s.Put(ctx, coll, id, raw)
}

// Update runs fn on the current T (exists=false and the zero T when absent) in one transaction;
// fn returns whether to write.
func Update[T any](ctx context.Context, s DocStore, coll, id string, fn func(v *T, exists bool) (write bool, err error)) error {
	return s.Update(ctx, coll, id, func(cur json.RawMessage) (json.RawMessage, error) {
		var v T
		if cur != nil {
			if err := json.Unmarshal(cur, &v); err != nil {
				return nil, fmt.Errorf("decode %s/%s: %w", coll, id, err)
			}
		}
		write, err := fn(&v, cur != nil)
		if err != nil || !write {
			return nil, err
		}
		return json.Marshal(v)
	})
}

// List runs q and decodes every document of the page into a T.
func List[T any](ctx context.Context, s DocStore, coll string, q Query) ([]T, string, error) {
	p, err := s.Query(ctx, coll, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, 0, len(p.Docs))
	for _, raw := range p.Docs {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", coll, err)
		}
		out = append(out, v)
	}
	return out, p.NextCursor, nil
}

// ErrBadCursor: the cursor was not one this store handed out.
var ErrBadCursor = errors.New("projections: bad cursor")
