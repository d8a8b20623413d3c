package projections

import "sync"

// Completions wakes the requests waiting on an interaction (GET ?wait=N) when it completes: the
// executor signals it as soon as it has recorded the result, the interaction projector when it
// applies it (the executor may have run in another process). One per running application.
type Completions struct {
	mu      sync.Mutex
	waiting map[string]map[*Waiter]struct{}
}

// NewCompletions returns a Completions with nobody waiting.
func NewCompletions() *Completions {
	return &Completions{waiting: map[string]map[*Waiter]struct{}{}}
}

// Waiter is one waiting request. Done is closed when the interaction completes; Doc, set before,
// is the completed interaction when the notifier knew it.
type Waiter struct {
	Done chan struct{}
	Doc  *InteractionDoc
}

// Subscribe returns a waiter woken when id completes, and the function that unsubscribes.
func (n *Completions) Subscribe(id string) (*Waiter, func()) {
	w := &Waiter{Done: make(chan struct{})}
	n.mu.Lock()
	if n.waiting[id] == nil {
		n.waiting[id] = map[*Waiter]struct{}{}
	}
	n.waiting[id][w] = struct{}{}
	n.mu.Unlock()
	return w, func() {
		n.mu.Lock()
		if set, ok := n.waiting[id]; ok {
			if _, still := set[w]; still {
				delete(set, w)
				if len(set) == 0 {
					delete(n.waiting, id)
				}
			}
		}
		n.mu.Unlock()
	}
}

// Notify wakes every waiter of id, handing them doc (nil: they read the interaction again).
func (n *Completions) Notify(id string, doc *InteractionDoc) {
	n.mu.Lock()
	set := n.waiting[id]
	delete(n.waiting, id)
	n.mu.Unlock()
	for w := range set {
		w.Doc = doc
		close(w.Done)
	}
}
