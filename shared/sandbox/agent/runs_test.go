package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
)

// A run outlives the request that started it: a caller that stops waiting finds it again by its
// id, and a second start of the same id, however many at once, never runs the command again.
func TestRunOutlivesItsRequest(t *testing.T) {
	t.Parallel()
	c, dir := start(t)
	ctx := context.Background()
	gate := filepath.Join(dir, "gate")
	// Each start of the command adds a line to "starts"; it then waits for the gate file.
	cmd := `echo x >> starts; while [ ! -e gate ]; do sleep 0.01; done; echo finished; echo oops >&2; exit 3`
	st, err := c.Run(ctx, sandbox.RunRequest{ID: "it-1", Command: cmd, Timeout: time.Minute})
	if err != nil || st.Done || st.ID != "it-1" {
		t.Fatalf("start: %+v, %v; want a run under way", st, err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if st, err := c.Run(ctx, sandbox.RunRequest{ID: "it-1", Command: cmd, Timeout: time.Minute, Wait: 10 * time.Millisecond}); err != nil || st.Done {
				t.Errorf("start again: %+v, %v", st, err)
			}
		})
	}
	wg.Wait()
	if st, err := c.Await(ctx, "it-1", 20*time.Millisecond); err != nil || st.Done {
		t.Fatalf("await before the end: %+v, %v", st, err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = c.Await(ctx, "it-1", time.Minute)
	if err != nil || !st.Done || st.Result == nil {
		t.Fatalf("await: %+v, %v", st, err)
	}
	if r := st.Result; r.ExitCode != 3 || r.Stdout != "finished\n" || r.Stderr != "oops\n" {
		t.Errorf("result = %+v", r)
	}
	starts, _ := os.ReadFile(filepath.Join(dir, "starts"))
	if n := strings.Count(string(starts), "x"); n != 1 {
		t.Errorf("the command started %d times, want once", n)
	}
	// The result stays for whoever asks again, and a start of the same id answers it.
	if st, err := c.Run(ctx, sandbox.RunRequest{ID: "it-1", Command: cmd}); err != nil || !st.Done || st.Result.ExitCode != 3 {
		t.Errorf("start after the end: %+v, %v", st, err)
	}
}

func TestRunUnknownAndBadRequests(t *testing.T) {
	t.Parallel()
	c, _ := start(t)
	ctx := context.Background()
	if _, err := c.Await(ctx, "never-started", 0); !errors.Is(err, sandbox.ErrNoSuchRun) {
		t.Errorf("await of an unknown run: %v, want ErrNoSuchRun", err)
	}
	for _, r := range []sandbox.RunRequest{{Command: "true"}, {ID: strings.Repeat("x", sandbox.MaxRunID+1), Command: "true"}, {ID: "a"}} {
		if _, err := c.Run(ctx, r); !errors.Is(err, sandbox.ErrRejected) {
			t.Errorf("run %+v: %v, want a rejection", r, err)
		}
	}
	st, err := c.Run(ctx, sandbox.RunRequest{ID: "quick", Command: "echo hi", Wait: time.Minute})
	if err != nil || !st.Done || st.Result.Stdout != "hi\n" {
		t.Errorf("a quick run waited for: %+v, %v", st, err)
	}
}
