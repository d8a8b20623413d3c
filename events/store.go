package events

import "context"

// Store is the event store port. Adapters: events/sqlite (embedded) and events/firestore (GCP);
// both pass the contract suite in events/storetest.
type Store interface {
	// Append writes events to stream at versions expected+1.. all or nothing. If the stream is not
	// at expected (and expected is not Any) it returns ErrConcurrency and writes nothing, unless
	// the events are exactly the ones already stored at those versions (an idempotent retry), in
	// which case it returns them as stored. An id already stored with other content is
	// ErrIDConflict. New events are stored unpublished (the outbox).
	Append(ctx context.Context, stream string, expected int64, evs ...Envelope) ([]Envelope, error)
	// Load returns the events of stream with version >= from, in order, upcast.
	Load(ctx context.Context, stream string, from int64) ([]Envelope, error)
	// Version returns the stream's current version (0 for a stream with no events).
	Version(ctx context.Context, stream string) (int64, error)
	// Unpublished returns up to limit events not yet marked published, oldest first.
	Unpublished(ctx context.Context, limit int) ([]Envelope, error)
	// MarkPublished marks events (by stream and version) published. Marking twice is harmless.
	MarkPublished(ctx context.Context, evs ...Envelope) error
	// Scan calls fn for every stored event whose stream starts with prefix (all events for ""),
	// each stream in version order. Used by replays and rebuilds, never on a request path.
	Scan(ctx context.Context, prefix string, fn func(Envelope) error) error
}

// Publisher hands appended events to their consumers. It is responsible for marking them
// published in the store once they are safely handed over (acknowledged by Pub/Sub, or handled by
// every in-process consumer), so that a crash in between leaves them for the relay.
type Publisher interface {
	Publish(ctx context.Context, evs ...Envelope) error
}

// WithoutSync returns a context under which Append may commit without flushing to stable storage
// itself: the events then survive a crash of the process at once, and a crash of the machine
// once the next durable commit (or SQLite's checkpoint) has flushed them, since the log keeps
// its order. Only for events whose loss in a power cut does no harm because what they record
// dies with the machine too (the executor's claim on a command, whose sandbox is a process of
// that machine), or that a durable append follows at once (a session slot's reservation, then
// the session's request). Stores whose every commit is durable (Firestore) ignore it.
func WithoutSync(ctx context.Context) context.Context {
	return context.WithValue(ctx, withoutSyncKey{}, true)
}

// SyncWaived reports whether ctx came from WithoutSync.
func SyncWaived(ctx context.Context) bool {
	v, _ := ctx.Value(withoutSyncKey{}).(bool)
	return v
}

type withoutSyncKey struct{}
