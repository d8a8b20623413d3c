package events

import (
	"context"
	"fmt"
	"log/slog"
)

// Log is the write side every command uses: append to the store at an expected version, then
// publish. Publishing is best effort after the commit: a failure is logged and left to the
// relay, because the events are already durable in the outbox.
type Log struct {
	Store     Store
	Publisher Publisher
	Logger    *slog.Logger
}

// Append appends evs to stream at expected and publishes what was stored.
func (l *Log) Append(ctx context.Context, stream string, expected int64, evs ...Envelope) ([]Envelope, error) {
	stored, err := l.Store.Append(ctx, stream, expected, evs...)
	if err != nil {
		return nil, fmt.Errorf("append %s@%d: %w", stream, expected, err)
	}
	if l.Publisher != nil {
		if perr := l.Publisher.Publish(context.WithoutCancel(ctx), stored...); perr != nil && l.Logger != nil {
			l.Logger.Warn("publish after commit failed; the relay will retry", "stream", stream, "error", perr.Error())
		}
	}
	return stored, nil
}

// Load is Store.Load, for callers that only hold the Log.
func (l *Log) Load(ctx context.Context, stream string, from int64) ([]Envelope, error) {
	return l.Store.Load(ctx, stream, from)
}

// Relay publishes up to limit events still unpublished, oldest first, and returns how many it
// handed over. Run at start and on a schedule; one pass per call, because a publisher may mark
// events published only later (the in-process dispatcher marks them once consumed).
func (l *Log) Relay(ctx context.Context, limit int) (int, error) {
	evs, err := l.Store.Unpublished(ctx, limit)
	if err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	if len(evs) == 0 {
		return 0, nil
	}
	if err := l.Publisher.Publish(ctx, evs...); err != nil {
		return 0, fmt.Errorf("relay publish: %w", err)
	}
	return len(evs), nil
}
