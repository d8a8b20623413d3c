package sandbox

import (
	"context"
	"sync"
)

// Turns lets one holder at a time per key go on: runtimes run one oracle per session at a time,
// so that a session cannot multiply the machine it is billed for by asking for many
// verifications at once (they queue, as they would in one sandbox). The zero value is ready.
type Turns struct {
	m sync.Map // key -> chan struct{} (a semaphore of one)
}

// Take waits for key's turn, or for ctx to end; release ends the turn.
func (t *Turns) Take(ctx context.Context, key string) (release func(), err error) {
	v, _ := t.m.LoadOrStore(key, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Forget drops key (its session ended); a turn still held keeps working.
func (t *Turns) Forget(key string) { t.m.Delete(key) }
