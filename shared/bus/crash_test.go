package bus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/projections"
	docsqlite "github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/bus"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// The crash test re-executes the test binary as a child process (crashChildEnv names its data
// file). The child appends through an outbox (append, then publish) and runs the dispatcher, and is SIGKILLed while:
// appenders are blocked in Publish after their commit; a consumer is in the middle of delivering
// the "held" stream; other deliveries and MarkPublished calls are under way. The parent then opens
// the same file, runs the dispatcher, and checks that every event the child committed is
// delivered and marked published.
const crashChildEnv = "CODESET_BUS_CRASH_CHILD_DB"

const (
	crashAppenders = 6
	crashPerStream = 10
	crashHeld      = 3
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// seenConsumer records every event it is given in the read model, idempotently (a Put per
// event id), through a runner, as the real consumers do.
func seenConsumer(es events.Store, ds projections.DocStore, block func(events.Envelope) bool) bus.Consumer {
	r := projections.NewRunner("seen", func(ctx context.Context, e events.Envelope) error {
		if block != nil && block(e) {
			<-ctx.Done() // a delivery that never ends before the kill
			return ctx.Err()
		}
		return projections.Put(ctx, ds, "seen", e.ID, map[string]any{"stream": e.Stream, "version": e.Version})
	}, es, ds, projections.RunnerOptions{Logger: quiet})
	return bus.Consumer{Name: "seen", Deliver: r.Deliver}
}

func openBoth(path string) (*sqlitedb.DB, *evsqlite.Store, *docsqlite.Store, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	es, err := evsqlite.New(db)
	if err != nil {
		return nil, nil, nil, err
	}
	ds, err := docsqlite.New(db)
	if err != nil {
		return nil, nil, nil, err
	}
	return db, es, ds, nil
}

// printingPublisher reports each committed event on stdout (the parent counts them), wakes the
// dispatcher, and blocks forever in Publish for the last event of each stream: the process dies
// between that commit and its publication.
type printingPublisher struct {
	mu sync.Mutex
	d  *bus.Dispatcher
}

func (p *printingPublisher) Publish(ctx context.Context, evs ...events.Envelope) error {
	p.mu.Lock()
	for _, e := range evs {
		fmt.Fprintf(os.Stdout, "committed %s %d %s\n", e.Stream, e.Version, e.ID)
	}
	p.mu.Unlock()
	last := evs[len(evs)-1]
	if strings.HasPrefix(last.Stream, "s-") && last.Version == crashPerStream {
		select {} // killed here
	}
	return p.d.Publish(ctx, evs...)
}

func crashChild(path string) {
	_, es, ds, err := openBoth(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	held := func(e events.Envelope) bool { return e.Stream == "held" }
	d := bus.New(es, []bus.Consumer{seenConsumer(es, ds, held)}, bus.Options{Poll: 20 * time.Millisecond, Logger: quiet})
	go d.Run(context.Background())
	log := &outbox{store: es, pub: &printingPublisher{d: d}}
	ctx := context.Background()
	for i := range crashAppenders {
		go func() {
			for v := range crashPerStream {
				e, _ := events.New(fmt.Sprintf("ev-s%d-%d", i, v+1), "u", "test.a", time.Now(), map[string]int{"v": v})
				if _, err := log.Append(ctx, fmt.Sprint("s-", i), int64(v), e); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
			}
		}()
	}
	go func() {
		for v := range crashHeld {
			e, _ := events.New(fmt.Sprintf("ev-held-%d", v+1), "u", "test.a", time.Now(), map[string]int{"v": v})
			if _, err := log.Append(ctx, "held", int64(v), e); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}()
	select {}
}

func TestCrashBetweenCommitAndPublishLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{} // event ids the child reported committed
	want := crashAppenders*crashPerStream + crashHeld
	lines := bufio.NewScanner(out)
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	for len(committed) < want && lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) == 4 && f[0] == "committed" {
			committed[f[3]] = true
		}
	}
	timeout.Stop()
	if len(committed) < want {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child reported %d commits before dying, want %d", len(committed), want)
	}
	// Let some deliveries and marks run, then kill without warning.
	time.Sleep(30 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}

	db, es, ds, err := openBoth(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	left, err := es.Unpublished(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) < crashHeld {
		t.Fatalf("only %d events unpublished after the kill; the held stream's %d at least should be", len(left), crashHeld)
	}
	t.Logf("after SIGKILL: %d committed events, %d unpublished", len(committed), len(left))

	d := bus.New(es, []bus.Consumer{seenConsumer(es, ds, nil)}, bus.Options{Poll: time.Hour, Logger: quiet})
	runBus(t, d)
	waitFor(t, "the restarted dispatcher to empty the outbox", outboxEmpty(t, es))

	stored := 0
	err = es.Scan(ctx, "", func(e events.Envelope) error {
		stored++
		raw, err := ds.Get(ctx, "seen", e.ID)
		if err != nil {
			return fmt.Errorf("%s@%d (%s) was never delivered: %w", e.Stream, e.Version, e.ID, err)
		}
		var seen struct {
			Stream  string `json:"stream"`
			Version int64  `json:"version"`
		}
		if err := json.Unmarshal(raw, &seen); err != nil || seen.Stream != e.Stream || seen.Version != e.Version {
			return fmt.Errorf("%s delivered as %s", e.ID, raw)
		}
		delete(committed, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != 0 {
		t.Fatalf("events reported committed but not in the store: %v", committed)
	}
	if stored != want {
		t.Fatalf("%d events stored, want %d", stored, want)
	}
	for i := range crashAppenders {
		cp, err := projections.Get[projections.Checkpoint](ctx, ds, projections.CheckpointsColl, fmt.Sprintf("seen:s-%d", i))
		if err != nil || cp.Version != crashPerStream {
			t.Fatalf("checkpoint of s-%d: %+v, %v", i, cp, err)
		}
	}
}
