package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/codeset/codeset/events"
)

// Versioned is a read-model document built from one stream: it remembers the stream version it
// has applied, which is what makes its projector idempotent.
type Versioned interface{ StreamVersion() int64 }

func (d SessionDoc) StreamVersion() int64     { return d.Version }
func (d InteractionDoc) StreamVersion() int64 { return d.Version }

var errGap = errors.New("projections: gap in the stream")

// ProjectStream applies e to the document (coll, id) built from e's stream, in one transaction:
// an event already applied changes nothing (a duplicate or late delivery), the next one is applied,
// and when events are missing in between (two writers' inline projections crossing) the gap is
// read from the store with load and applied in order first.
func ProjectStream[T Versioned](ctx context.Context, s DocStore, coll, id string, e events.Envelope,
	apply func(*T, events.Envelope) error, load func(ctx context.Context, stream string, from int64) ([]events.Envelope, error)) error {
	var have int64
	err := Update(ctx, s, coll, id, func(d *T, exists bool) (bool, error) {
		have = (*d).StreamVersion()
		switch {
		case e.Version <= have:
			return false, nil
		case e.Version != have+1:
			return false, errGap
		}
		return true, apply(d, e)
	})
	if !errors.Is(err, errGap) {
		return err
	}
	return CatchUp(ctx, s, coll, id, e.Stream, have, apply, load)
}

// CatchUp applies to the document (coll, id) every event of stream after version have (what the
// caller last read of it), up to the stream's head, in one write. A projector that expects more
// events of the stream right behind the one delivered uses it to apply them together; their own
// deliveries then find them applied.
func CatchUp[T Versioned](ctx context.Context, s DocStore, coll, id, stream string, have int64,
	apply func(*T, events.Envelope) error, load func(ctx context.Context, stream string, from int64) ([]events.Envelope, error)) error {
	evs, err := load(ctx, stream, have+1)
	if err != nil {
		return fmt.Errorf("fill %s from %d: %w", stream, have+1, err)
	}
	return Update(ctx, s, coll, id, func(d *T, exists bool) (bool, error) {
		write := false
		for _, ev := range evs {
			if ev.Version != (*d).StreamVersion()+1 {
				continue
			}
			if err := apply(d, ev); err != nil {
				return false, err
			}
			write = true
		}
		return write, nil
	})
}
