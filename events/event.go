// Package events is the domain core: event envelopes, the Store and Publisher ports every
// adapter implements, and each aggregate's events, fold and decisions. It depends on no adapter;
// the write path that appends and publishes is app.Update.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Sentinel errors, wrapped with context by adapters and checked with errors.Is.
var (
	// ErrConcurrency: the stream is not at the expected version; nothing was written.
	ErrConcurrency = errors.New("events: stream is not at the expected version")
	// ErrIDConflict: an event id was reused with different content; nothing was written.
	ErrIDConflict = errors.New("events: event id reused with different data")
)

// Any is the expected version that skips the concurrency check (append at the current head).
const Any int64 = -1

// Envelope is one stored event. Version is the position in its stream, starting at 1.
type Envelope struct {
	ID            string          `json:"id"`
	Stream        string          `json:"stream"`
	Version       int64           `json:"version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	UserID        string          `json:"user_id"`
	Data          json.RawMessage `json:"data"`
}

// SameContent reports whether two envelopes carry the same event: used to tell an idempotent
// retry (same id, same content) from a conflicting reuse of an id.
func (e Envelope) SameContent(o Envelope) bool {
	return e.ID == o.ID && e.Stream == o.Stream && e.Type == o.Type &&
		e.SchemaVersion == o.SchemaVersion && e.UserID == o.UserID &&
		e.OccurredAt.Equal(o.OccurredAt) && jsonEqual(e.Data, o.Data)
}

func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return bytes.Equal(ca, cb)
}

// Decode unmarshals the event's data into v.
func (e Envelope) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s %s@%d: %w", e.Type, e.Stream, e.Version, err)
	}
	return nil
}

// New builds an envelope for data of a registered event type at its current schema version.
// Stream and version are set by the store on append.
func New(id, userID, typ string, at time.Time, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	return Envelope{ID: id, Type: typ, SchemaVersion: CurrentSchema(typ), OccurredAt: at.UTC().Truncate(time.Microsecond), UserID: userID, Data: raw}, nil
}

// Upcaster turns the data of one schema version into the data of the next.
type Upcaster func(json.RawMessage) (json.RawMessage, error)

var (
	schemaMu  sync.RWMutex
	schemas   = map[string]int{}
	upcasters = map[string]map[int]Upcaster{} // type -> from version -> upcaster to from+1
)

// RegisterUpcaster declares that events of typ at schema version from are turned into from+1 by
// up; the current schema of typ becomes at least from+1. Stored history is never rewritten: old
// events are upcast on every read.
func RegisterUpcaster(typ string, from int, up Upcaster) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if upcasters[typ] == nil {
		upcasters[typ] = map[int]Upcaster{}
	}
	upcasters[typ][from] = up
	if schemas[typ] < from+1 {
		schemas[typ] = from + 1
	}
}

// CurrentSchema is the schema version new events of typ are written with (1 unless upcasters
// registered a later one).
func CurrentSchema(typ string) int {
	schemaMu.RLock()
	defer schemaMu.RUnlock()
	if v := schemas[typ]; v > 0 {
		return v
	}
	return 1
}

// Upcast brings a stored envelope to the current schema of its type. Adapters call it on read.
func Upcast(e Envelope) (Envelope, error) {
	schemaMu.RLock()
	defer schemaMu.RUnlock()
	for {
		up, ok := upcasters[e.Type][e.SchemaVersion]
		if !ok {
			return e, nil
		}
		data, err := up(e.Data)
		if err != nil {
			return e, fmt.Errorf("upcast %s v%d of %s@%d: %w", e.Type, e.SchemaVersion, e.Stream, e.Version, err)
		}
		e.Data = data
		e.SchemaVersion++
	}
}
