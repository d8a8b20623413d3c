package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Use is the latest use of an API key seen by this process.
type Use struct {
	KeyID  string
	UserID string
	At     time.Time
}

// Usage keeps the last use of each API key in memory and writes it out in the background, at
// most once per key per flush interval, so that authenticating never waits on a write.
type Usage struct {
	// Flush writes uses out (the user read model). A failed flush is retried on the next tick.
	Flush  func(ctx context.Context, uses []Use) error
	Logger *slog.Logger

	mu    sync.Mutex
	last  map[string]Use // key id -> latest use seen
	dirty map[string]bool
}

// Touch records a use. It only takes a mutex.
func (u *Usage) Touch(keyID, userID string, at time.Time) {
	u.mu.Lock()
	if u.last == nil {
		u.last, u.dirty = map[string]Use{}, map[string]bool{}
	}
	if prev, ok := u.last[keyID]; !ok || at.After(prev.At) {
		// Minute precision is all a listing shows; it also keeps a busy key's entry from
		// changing on every request.
		if !ok || at.Sub(prev.At) >= time.Second {
			u.last[keyID] = Use{KeyID: keyID, UserID: userID, At: at}
			u.dirty[keyID] = true
		}
	}
	u.mu.Unlock()
}

// LastUsed returns the latest use of keyID this process has seen.
func (u *Usage) LastUsed(keyID string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	use, ok := u.last[keyID]
	return use.At, ok
}

// FlushNow writes out every use not yet written.
func (u *Usage) FlushNow(ctx context.Context) error {
	u.mu.Lock()
	var uses []Use
	for id := range u.dirty {
		uses = append(uses, u.last[id])
	}
	clear(u.dirty)
	u.mu.Unlock()
	if len(uses) == 0 {
		return nil
	}
	if err := u.Flush(ctx, uses); err != nil {
		u.mu.Lock()
		for _, use := range uses {
			u.dirty[use.KeyID] = true
		}
		u.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (u *Usage) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			u.flush(final)
			cancel()
			return
		case <-t.C:
			u.flush(ctx)
		}
	}
}

func (u *Usage) flush(ctx context.Context) {
	if err := u.FlushNow(ctx); err != nil && u.Logger != nil {
		u.Logger.Warn("API key last-used flush failed; retrying on the next tick", "error", err.Error())
	}
}
