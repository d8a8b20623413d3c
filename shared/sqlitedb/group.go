package sqlitedb

import "sync"

// Group commits concurrent writes together: callers queue a request with Do, and one goroutine
// at a time hands everything queued to Commit as one group, so one durable commit (an fsync with
// synchronous=FULL) is shared by every request waiting for it. When Commit reports that the
// group must not stand (an error that may have rolled the whole transaction back), each request
// is committed again in a group of its own.
type Group[R any] struct {
	// Commit writes group in one transaction and records each request's outcome in it; false
	// asks for the requests to be retried one at a time.
	Commit func(group []R) bool
	// Weight of a request against Max (nil: 1 each); a group holds at least one request.
	Weight func(R) int
	Max    int

	mu      sync.Mutex
	queue   []pending[R]
	running bool // a goroutine is draining the queue
}

type pending[R any] struct {
	req  R
	done chan struct{}
}

// Do queues r and returns once it has been committed or has failed. It waits even if the
// caller's context ends meanwhile: once queued the write may commit, and the caller must learn
// whether it did.
func (g *Group[R]) Do(r R) {
	p := pending[R]{req: r, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if !g.running {
		g.running = true
		go g.drain()
	}
	g.mu.Unlock()
	<-p.done
}

func (g *Group[R]) drain() {
	for {
		g.mu.Lock()
		n, size := 0, 0
		for n < len(g.queue) {
			w := 1
			if g.Weight != nil {
				w = g.Weight(g.queue[n].req)
			}
			if n > 0 && size+w > g.Max {
				break
			}
			size += w
			n++
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		if n == 0 {
			g.running = false
			g.queue = nil
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		reqs := make([]R, n)
		for i, p := range batch {
			reqs[i] = p.req
		}
		if !g.Commit(reqs) {
			for _, r := range reqs {
				g.Commit([]R{r})
			}
		}
		for _, p := range batch {
			close(p.done)
		}
	}
}
