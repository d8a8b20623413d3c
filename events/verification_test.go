package events

import (
	"testing"
	"time"
)

// storeVerification gives decided events the stream position a store would.
func storeVerification(v *Verification, t *testing.T, evs []Envelope, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		e.Stream, e.Version = VerificationStream(v.JobID), v.Version+1
		if err := v.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
}

func requestedVerification(t *testing.T) Verification {
	t.Helper()
	e, err := RequestVerification("e1", VerificationRequestedData{JobID: "vj_1", SessionID: "s1", UserID: "u1", Dataset: "d", SampleID: "x", SampleVersion: 2, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC), TimeoutSeconds: 1800})
	if err != nil {
		t.Fatal(err)
	}
	e.Stream, e.Version = VerificationStream("vj_1"), 1
	v, ok, err := FoldVerification([]Envelope{e})
	if err != nil || !ok {
		t.Fatalf("fold: %v %v", ok, err)
	}
	return v
}

func TestVerificationLifecycle(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	result := VerificationResult{Tool: "test_suite", IsSuccess: true, Total: 1, Passed: 1, Resolution: "FULL"}
	type step func(v Verification) ([]Envelope, error)
	start := func(v Verification) ([]Envelope, error) { return v.Start("s", at) }
	run := func(v Verification) ([]Envelope, error) { return v.Run("r", at) }
	complete := func(v Verification) ([]Envelope, error) { return v.Complete("c", at, result) }
	fail := func(v Verification) ([]Envelope, error) { return v.Fail("f", at, CodeVerifierTimeout, "too slow") }
	cancel := func(v Verification) ([]Envelope, error) { return v.Cancel("x", at, "the session ended") }
	cases := []struct {
		name   string
		steps  []step
		events []int // events each step decides
		status string
	}{
		{"the happy path", []step{start, run, complete}, []int{1, 1, 1}, JobCompleted},
		{"a second claim decides nothing", []step{start, start, run, complete}, []int{1, 0, 1, 1}, JobCompleted},
		{"no result before running", []step{start, complete, run, complete}, []int{1, 0, 1, 1}, JobCompleted},
		{"a timeout while running", []step{start, run, fail}, []int{1, 1, 1}, JobError},
		{"cancelled while pending", []step{cancel, start, run, complete}, []int{1, 0, 0, 0}, JobCancelled},
		{"cancelled while running keeps its end", []step{start, run, cancel, complete, fail}, []int{1, 1, 1, 0, 0}, JobCancelled},
		{"a completed job is never cancelled or failed", []step{start, run, complete, cancel, fail}, []int{1, 1, 1, 0, 0}, JobCompleted},
		{"failed before running", []step{start, fail, run}, []int{1, 1, 0}, JobError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v := requestedVerification(t)
			if v.Status != JobPending || v.SampleVersion != 2 || v.CreatedAt.Nanosecond()%1000 != 0 {
				t.Fatalf("requested: %+v", v)
			}
			for i, s := range c.steps {
				evs, err := s(v)
				if len(evs) != c.events[i] {
					t.Fatalf("step %d decided %d events, want %d (status %s)", i, len(evs), c.events[i], v.Status)
				}
				storeVerification(&v, t, evs, err)
			}
			if v.Status != c.status {
				t.Fatalf("status %s, want %s", v.Status, c.status)
			}
			switch v.Status {
			case JobCompleted:
				if v.Result == nil || !v.Result.IsSuccess || v.Error != nil || v.CompletedAt.IsZero() {
					t.Fatalf("completed without its result: %+v", v)
				}
			case JobError:
				if v.Error == nil || v.Error.Code != CodeVerifierTimeout || v.Result != nil {
					t.Fatalf("error without its code: %+v", v)
				}
			case JobCancelled:
				if v.Error == nil || v.Error.Message != "the session ended" || v.Result != nil {
					t.Fatalf("cancelled without its reason: %+v", v)
				}
			}
			if !v.Done() || v.StartedAt.IsZero() && c.status != JobCancelled {
				t.Fatalf("done %v started %v", v.Done(), v.StartedAt)
			}
		})
	}
}

func TestVerificationEmptyStream(t *testing.T) {
	t.Parallel()
	v, ok, err := FoldVerification(nil)
	if ok || err != nil {
		t.Fatalf("ok %v err %v", ok, err)
	}
	for _, evs := range [][]Envelope{
		mustDecide(v.Start("a", time.Now())), mustDecide(v.Fail("b", time.Now(), "X", "y")), mustDecide(v.Cancel("c", time.Now(), "z")),
	} {
		if len(evs) != 0 {
			t.Fatal("decided events for a job that does not exist")
		}
	}
}

func mustDecide(evs []Envelope, err error) []Envelope {
	if err != nil {
		panic(err)
	}
	return evs
}
