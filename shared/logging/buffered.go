package logging

import (
	"io"
	"sync"
	"time"
)

// Buffered collects log lines and writes them in one system call every interval (or when a
// buffer's worth is waiting), instead of one write per line: at tens of thousands of requests
// a second the access log's write is a large share of a request's cost. Loggers made by New
// over a Buffered flush it at once after every WARNING or ERROR line, so the lines that matter
// are never held back; Close flushes the rest. Only a crash loses the last interval of INFO lines.
type Buffered struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	err    error
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// bufferedLimit is the size at which a write flushes without waiting for the interval.
const bufferedLimit = 64 << 10

// NewBuffered returns a Buffered over w flushing every interval (10ms if <= 0).
func NewBuffered(w io.Writer, interval time.Duration) *Buffered {
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	b := &Buffered{w: w, buf: make([]byte, 0, bufferedLimit), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop(interval)
	return b
}

func (b *Buffered) loop(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Flush()
		}
	}
}

// Write queues p (a whole log line: slog writes each record in one call).
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= bufferedLimit {
		b.flushLocked()
	}
	return len(p), nil
}

// Flush writes what is waiting and returns the first write error met so far.
func (b *Buffered) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.err
}

func (b *Buffered) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	b.buf = b.buf[:0]
}

// Close flushes and stops the background flushing; later writes go straight to the writer.
func (b *Buffered) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.flushLocked()
	err := b.err
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return err
}
