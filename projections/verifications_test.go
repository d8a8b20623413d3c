package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// verificationStream decides a job's life with end(v) as its last decision and versions the events.
func verificationStream(t *testing.T, end func(v events.Verification, at time.Time) ([]events.Envelope, error)) []events.Envelope {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var v events.Verification
	var out []events.Envelope
	add := func(evs []events.Envelope, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Stream, e.Version = events.VerificationStream("vj1"), v.Version+1
			if err := v.Apply(e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	req, err := events.RequestVerification("e1", events.VerificationRequestedData{JobID: "vj1", SessionID: "s1", UserID: "u1", Dataset: "d", SampleID: "x", SampleVersion: 1, CreatedAt: t0, TimeoutSeconds: 60})
	add([]events.Envelope{req}, err)
	add(v.Start("e2", t0.Add(time.Millisecond)))
	add(v.Run("e3", t0.Add(2*time.Millisecond)))
	add(end(v, t0.Add(time.Second)))
	return out
}

func TestVerificationProjection(t *testing.T) {
	t.Parallel()
	result := events.VerificationResult{Tool: "test_suite", Total: 1, Failed: 1, Resolution: "NO",
		Failures: []events.TestDetail{{Name: "t", Kind: "failure", Details: "boom", Count: 1}}, FailToPassFailed: []string{"t"}}
	cases := []struct {
		name   string
		end    func(v events.Verification, at time.Time) ([]events.Envelope, error)
		status string
		check  func(t *testing.T, d projections.VerificationDoc)
	}{
		{"completed", func(v events.Verification, at time.Time) ([]events.Envelope, error) {
			return v.Complete("e4", at, result)
		}, events.JobCompleted,
			func(t *testing.T, d projections.VerificationDoc) {
				if d.Result == nil || d.Result.IsSuccess || d.Result.Resolution != "NO" || len(d.Result.Failures) != 1 || d.Error != nil {
					t.Fatalf("result %+v error %+v", d.Result, d.Error)
				}
			}},
		{"error", func(v events.Verification, at time.Time) ([]events.Envelope, error) {
			return v.Fail("e4", at, events.CodeVerifierTimeout, "ran past 60s")
		}, events.JobError,
			func(t *testing.T, d projections.VerificationDoc) {
				if d.Result != nil || d.Error == nil || d.Error.Code != events.CodeVerifierTimeout {
					t.Fatalf("result %+v error %+v", d.Result, d.Error)
				}
			}},
		{"cancelled", func(v events.Verification, at time.Time) ([]events.Envelope, error) {
			return v.Cancel("e4", at, "session closed")
		}, events.JobCancelled,
			func(t *testing.T, d projections.VerificationDoc) {
				if d.Result != nil || d.Error == nil || d.Error.Message != "session closed" {
					t.Fatalf("result %+v error %+v", d.Result, d.Error)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ds := docStore(t)
			evs := verificationStream(t, c.end)
			load := func(ctx context.Context, stream string, from int64) ([]events.Envelope, error) {
				return evs[from-1:], nil
			}
			// The end first (crossing inline projections), then everything twice, out of order.
			for _, e := range []events.Envelope{evs[3], evs[1], evs[0], evs[2], evs[3], evs[0]} {
				if err := projections.ProjectStream(ctx, ds, projections.VerificationCollection, "vj1", e, projections.ApplyVerification, load); err != nil {
					t.Fatal(err)
				}
			}
			d, err := projections.Get[projections.VerificationDoc](ctx, ds, projections.VerificationCollection, "vj1")
			if err != nil {
				t.Fatal(err)
			}
			if d.Version != 4 || d.Status != c.status || d.JobID != "vj1" || d.SessionID != "s1" || d.UserID != "u1" || d.SampleID != "x" ||
				d.StartedAt == nil || d.CompletedAt == nil || !d.CompletedAt.After(*d.StartedAt) {
				t.Fatalf("%+v", d)
			}
			c.check(t, d)
			// Fields the spec requires are present even for a job still pending.
			raw, _ := json.Marshal(projections.VerificationDoc{JobID: "j", Status: events.JobPending})
			var m map[string]any
			json.Unmarshal(raw, &m)
			for _, f := range []string{"job_id", "sample_id", "session_id", "status", "created_at", "started_at", "completed_at", "result", "error"} {
				if _, ok := m[f]; !ok {
					t.Fatalf("field %s missing from %s", f, raw)
				}
			}
		})
	}
}
