package functions

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/cloudrun"
	"github.com/codeset/codeset/shared/sandbox/cloudrun/fakerun"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// overlapping runs pass n times at once, as two Cloud Scheduler calls (or a retry and the next
// run) may, and returns their errors.
func overlapping(n int, pass func() error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = pass() })
	}
	wg.Wait()
	return errs
}

// TestReaperBillsOnceWhenPassesOverlap: passes of the reaper that run at once end each expired
// session once, with one usage charge, whatever pass gets there first; on both backends (on
// the Firestore emulator, which handles contention badly, two passes rather than four).
func TestReaperBillsOnceWhenPassesOverlap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		backend string
		passes  int
	}{{"embedded", 4}, {"gcp", 2}} {
		t.Run(c.backend, func(t *testing.T) {
			t.Parallel()
			reaperBillsOnce(t, newBillingHarnessOn(t, c.backend, nil), c.passes)
		})
	}
}

func reaperBillsOnce(t *testing.T, h *billingHarness, passes int) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	h.a.Clock = fake
	ctx := context.Background()
	h.grant("u", "g-u", 100_000)
	ids := []string{"x1", "x2", "x3"}
	for _, id := range ids {
		startReadySession(t, h, "u", id, 10, t0) // 600 minutes at 10 cents: 6,000 cents at expiry
	}
	fake.Advance(601 * time.Minute)
	for _, err := range overlapping(passes, func() error { _, err := reapPass(ctx, h.a, passCap); return err }) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		evs, err := h.a.Events.Load(ctx, events.SessionStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		ended := slices.DeleteFunc(evs, func(e events.Envelope) bool { return e.Type != events.SessionEnded })
		if len(ended) != 1 {
			t.Fatalf("%s: %d end events", id, len(ended))
		}
	}
	if b := h.balance("u"); b.TotalSpentCents != 3*6000 || b.BalanceCents != 100_000-3*6000 {
		t.Fatalf("balance after overlapping passes: %+v", b)
	}
}

// TestReaperPassIsBounded: a pass ends at most its cap of sessions and says more are due; the
// next passes take the rest.
func TestReaperPassIsBounded(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	h.a.Clock = fake
	ctx := context.Background()
	for i := range 5 {
		startReadySession(t, h, "u", fmt.Sprintf("b%d", i), 10, t0)
	}
	fake.Advance(601 * time.Minute)
	var got []reaped
	for range 4 {
		res, err := reapPass(ctx, h.a, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res)
	}
	want := []reaped{{Expired: 2, More: true}, {Expired: 2, More: true}, {Expired: 1}, {}}
	if !slices.Equal(got, want) {
		t.Fatalf("passes %+v, want %+v", got, want)
	}
}

// TestSpentBalancePassIsBounded: the spent-balance reaper stops at its cap between users, and
// overlapping passes end each session once.
func TestSpentBalancePassIsBounded(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	h.a.Clock = fake
	ctx := context.Background()
	for _, u := range []string{"p", "q", "r"} {
		h.grant(u, "g-"+u, 50)
		startReadySession(t, h, u, "s-"+u, 10, t0)
	}
	fake.Advance(5 * time.Minute)
	ended, more, err := spentPass(ctx, h.a, 1)
	if err != nil || len(ended) != 1 || !more {
		t.Fatalf("first pass: %v more %v, %v", ended, more, err)
	}
	var mu sync.Mutex
	var all []string
	for _, err := range overlapping(3, func() error {
		e, _, err := spentPass(ctx, h.a, passCap)
		mu.Lock()
		all = append(all, e...)
		mu.Unlock()
		return err
	}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"p", "q", "r"} {
		if b := h.balance(u); b.TotalSpentCents != 50 {
			t.Errorf("%s charged %d cents, want 50", u, b.TotalSpentCents)
		}
	}
}

// TestLeakedSandboxReaper: the sweep stops a sandbox whose session ended without its sandbox
// being stopped, one whose session never existed, an oracle of an ended session and an oracle
// older than any verification, and leaves a live session's sandbox and its fresh oracle alone.
// Its passes are bounded.
func TestLeakedSandboxReaper(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	rt, err := local.New(local.Options{DataDir: data, Binary: sandboxBinary(t), Isolation: local.Process, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	h := newBillingHarness(t, nil)
	h.a.Sandboxes = rt
	ctx := context.Background()
	t0 := time.Now().UTC()
	arch := sampleArchive(t)
	start := func(id string) sandbox.Info {
		info, err := rt.Start(ctx, sandbox.Spec{SessionID: id, UserID: "u", Env: sandbox.Environment{Archive: arch, WorkDir: "/workspace/repo"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Stop(context.Background(), info) })
		return info
	}
	startReadySession(t, h, "u", "live", 10, t0)
	startReadySession(t, h, "u", "ended", 10, t0)
	live, ended, stranger := start("live"), start("ended"), start("stranger")
	// Ended with no sandbox recorded: nothing stopped it (as a stop that failed).
	if _, err := endSession(ctx, h.a, "ended", events.EndClosed, time.Now()); err != nil {
		t.Fatal(err)
	}
	oracle := func(name string, age time.Duration) {
		dir := filepath.Join(data, "oracles", name)
		os.MkdirAll(dir, 0o700)
		f := filepath.Join(dir, "request.json")
		os.WriteFile(f, []byte("{}"), 0o600)
		os.Chtimes(f, time.Now().Add(-age), time.Now().Add(-age))
	}
	oracle("live-100", 2*time.Hour)  // older than 30 min + 2 min + 10 min
	oracle("live-101", time.Minute)  // a verification under way
	oracle("ended-102", time.Minute) // its session ended

	first, more, err := ReapLeakedSandboxes(ctx, h.a, 3)
	if err != nil || len(first) != 3 || !more {
		t.Fatalf("first pass: %+v more %v, %v", first, more, err)
	}
	second, more, err := ReapLeakedSandboxes(ctx, h.a, 3)
	if err != nil || len(second) != 1 || more {
		t.Fatalf("second pass: %+v more %v, %v", second, more, err)
	}
	var stopped []string
	for _, r := range append(first, second...) {
		stopped = append(stopped, r.Name)
	}
	slices.Sort(stopped)
	if want := []string{"ended", "ended-102", "live-100", "stranger"}; !slices.Equal(stopped, want) {
		t.Fatalf("stopped %v, want %v", stopped, want)
	}
	for _, info := range []sandbox.Info{ended, stranger} {
		if rt.Alive(ctx, info) {
			t.Errorf("%s still answers", info.Name)
		}
	}
	if !rt.Alive(ctx, live) {
		t.Error("the live session's sandbox was stopped")
	}
	if _, err := os.Stat(filepath.Join(data, "oracles", "live-101")); err != nil {
		t.Errorf("the fresh oracle was removed: %v", err)
	}
	if out, more, err := ReapLeakedSandboxes(ctx, h.a, 3); err != nil || len(out) != 0 || more {
		t.Fatalf("a third pass: %+v %v %v", out, more, err)
	}
}

// TestStuckVerificationReaper: a job started longer ago than its timeout, the verifier's grace
// and the margin allow is failed with VERIFIER_INTERRUPTED, once, by overlapping passes; one
// within its time and one completed are left alone.
func TestStuckVerificationReaper(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	h.a.Clock = fake
	ctx := context.Background()
	job := func(id string, timeout int, started time.Time, more ...string) {
		t.Helper()
		req, err := events.RequestVerification("req-"+id, events.VerificationRequestedData{JobID: id, SessionID: "s", UserID: "u",
			Dataset: "d", SampleID: "x", CreatedAt: started, TimeoutSeconds: timeout})
		if err != nil {
			t.Fatal(err)
		}
		evs := []events.Envelope{req}
		add := func(typ string, data any) {
			e, err := events.New(typ+"-"+id, "u", typ, started, data)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		add(events.VerificationStarted, events.VerificationStartedData{StartedAt: started})
		for _, typ := range more {
			add(typ, struct{}{})
		}
		if _, err := record(ctx, h.a, events.VerificationStream(id), 0, evs...); err != nil {
			t.Fatal(err)
		}
	}
	job("vj_stuck", 60, t0, events.VerificationRunning)
	job("vj_slow", 3600, t0)
	job("vj_done", 60, t0, events.VerificationRunning, events.VerificationCompleted)
	// Requests nothing took up (a delivery dead-lettered): the one left for long is failed.
	request := func(id string, at time.Time) {
		t.Helper()
		req, err := events.RequestVerification("req-"+id, events.VerificationRequestedData{JobID: id, SessionID: "s", UserID: "u",
			Dataset: "d", SampleID: "x", CreatedAt: at, TimeoutSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := record(ctx, h.a, events.VerificationStream(id), 0, req); err != nil {
			t.Fatal(err)
		}
	}
	request("vj_unclaimed", t0)
	request("vj_queued", t0.Add(10*time.Minute))

	limit := time.Minute + verifyGrace + stuckMargin
	fake.Advance(limit) // not past it yet
	if failed, _, err := ReapStuckVerifications(ctx, h.a, passCap); err != nil || len(failed) != 0 {
		t.Fatalf("at the limit: %v %v", failed, err)
	}
	fake.Advance(time.Second)
	for _, err := range overlapping(3, func() error { _, _, err := ReapStuckVerifications(ctx, h.a, passCap); return err }) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"vj_stuck": events.JobError, "vj_slow": events.JobStarting, "vj_done": events.JobCompleted} {
		v, _, err := loadVerification(ctx, h.a, id)
		if err != nil || v.Status != want {
			t.Fatalf("%s: %s, want %s (%v)", id, v.Status, want, err)
		}
		if id == "vj_stuck" && (v.Error == nil || v.Error.Code != events.CodeVerifierInterrupted || v.Version != 4) {
			t.Fatalf("%s: error %+v, version %d (one failure event)", id, v.Error, v.Version)
		}
	}
	fake.Advance(pendingLimit - limit) // vj_unclaimed waited past the limit, vj_queued not
	for _, err := range overlapping(2, func() error { _, _, err := ReapStuckVerifications(ctx, h.a, passCap); return err }) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"vj_unclaimed": events.JobError, "vj_queued": events.JobPending} {
		v, _, err := loadVerification(ctx, h.a, id)
		if err != nil || v.Status != want {
			t.Fatalf("%s: %s, want %s (%v)", id, v.Status, want, err)
		}
		if id == "vj_unclaimed" && (v.Error == nil || v.Error.Code != events.CodeVerifierInterrupted || v.Version != 2) {
			t.Fatalf("%s: error %+v, version %d (one failure event)", id, v.Error, v.Version)
		}
	}
}

// TestLeakedSandboxReaperOnCloudRun: on Cloud Run (its Admin API faked) the sweep deletes the
// service of an ended session and an oracle service older than any verification, and leaves a
// live session's service alone.
func TestLeakedSandboxReaperOnCloudRun(t *testing.T) {
	t.Parallel()
	fake := fakerun.New(t)
	rt, err := cloudrun.New(context.Background(), cloudrun.Options{Project: "proj", Region: "europe-west1", Invoker: "api@proj.iam.gserviceaccount.com",
		PollInterval: time.Millisecond, ClientOptions: []option.ClientOption{option.WithEndpoint(fake.URL), option.WithoutAuthentication()},
		HTTPClient: func(context.Context, string) (*http.Client, error) { return &http.Client{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	h := newBillingHarness(t, nil)
	h.a.Sandboxes = rt
	ctx := context.Background()
	t0 := time.Now().UTC()
	startReadySession(t, h, "u", "live", 10, t0)
	startReadySession(t, h, "u", "gone", 10, t0)
	if _, err := endSession(ctx, h.a, "gone", events.EndClosed, t0); err != nil {
		t.Fatal(err)
	}
	parent := "projects/proj/locations/europe-west1/services/"
	plant := func(id, session, role string, age time.Duration) {
		fake.Plant(parent+id, map[string]string{"managed-by": "codeset", "codeset-session": session, "codeset-role": role}, time.Now().Add(-age))
	}
	plant("sbx-live", "live", "session", time.Hour)
	plant("sbx-live-o1", "live", "oracle", 3*time.Hour)
	plant("sbx-live-o2", "live", "oracle", time.Minute)
	plant("sbx-gone", "gone", "session", time.Minute)

	out, more, err := ReapLeakedSandboxes(ctx, h.a, leakedCap)
	if err != nil || more {
		t.Fatal(err, more)
	}
	var stopped []string
	for _, r := range out {
		stopped = append(stopped, r.Name)
	}
	slices.Sort(stopped)
	if want := []string{parent + "sbx-gone", parent + "sbx-live-o1"}; !slices.Equal(stopped, want) {
		t.Fatalf("stopped %v, want %v", stopped, want)
	}
	for _, id := range []string{"sbx-live", "sbx-live-o2"} {
		if !fake.Exists(parent + id) {
			t.Errorf("%s was deleted", id)
		}
	}
}
