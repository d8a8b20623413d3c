package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to read while the flusher writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

func TestBufferedHoldsInfoAndFlushesWarningsAtOnce(t *testing.T) {
	var out lockedBuffer
	b := NewBuffered(&out, time.Hour) // only explicit flushes in this test
	log := New(b, slog.LevelInfo)
	log.Info("request", "status", 200)
	if got := out.lines(); got[0] != "" {
		t.Fatalf("an INFO line was written at once: %q", got)
	}
	log.Warn("slow", "ms", 900)
	got := out.lines()
	if len(got) != 2 {
		t.Fatalf("after a WARNING: %d lines, want the held INFO line and the WARNING", len(got))
	}
	for i, want := range []string{"INFO", "WARNING"} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(got[i]), &rec); err != nil || rec["severity"] != want {
			t.Fatalf("line %d = %q (%v), want severity %s", i, got[i], err, want)
		}
	}
	log.Info("last")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.lines(); len(got) != 3 {
		t.Fatalf("Close left %d lines, want 3", len(got))
	}
	log.Info("after close") // straight through
	if got := out.lines(); len(got) != 4 {
		t.Fatalf("a line after Close was not written: %d lines", len(got))
	}
}

func TestBufferedFlushesOnItsInterval(t *testing.T) {
	var out lockedBuffer
	b := NewBuffered(&out, 5*time.Millisecond)
	defer b.Close()
	New(b, slog.LevelInfo).Info("request")
	deadline := time.Now().Add(5 * time.Second)
	for out.lines()[0] == "" {
		if time.Now().After(deadline) {
			t.Fatal("the line was never flushed")
		}
		time.Sleep(time.Millisecond)
	}
}
