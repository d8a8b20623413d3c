package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// sessionStream decides a whole session life and gives the events their versions.
func sessionStream(t *testing.T) []events.Envelope {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s events.Session
	var out []events.Envelope
	add := func(evs []events.Envelope, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Stream, e.Version = events.SessionStream("s1"), s.Version+1
			if err := s.Apply(e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	req, err := events.RequestSession("e1", events.SessionRequestedData{SessionID: "s1", UserID: "u1", Dataset: "d", SampleID: "x", TTLMinutes: 10, RequestedAt: t0, CentsPerMinute: 6})
	add([]events.Envelope{req}, err)
	add(s.MarkReady("e2", t0.Add(time.Second), events.Sandbox{Name: "sb-s1", URL: "unix:///tmp/s1.sock", Location: "local", SecretNonce: "n"}))
	add(s.End("e3", t0.Add(91*time.Second), events.EndClosed))
	return out
}

func TestSessionProjectionIdempotentAndFillsGaps(t *testing.T) {
	ctx := context.Background()
	ds := docStore(t)
	evs := sessionStream(t)
	load := func(ctx context.Context, stream string, from int64) ([]events.Envelope, error) {
		return evs[from-1:], nil
	}
	project := func(e events.Envelope) {
		t.Helper()
		if err := projections.ProjectStream(ctx, ds, projections.SessionCollection, "s1", e, projections.ApplySession, load); err != nil {
			t.Fatal(err)
		}
	}
	// The end arrives first (a crossing of inline projections), then everything twice.
	project(evs[2])
	for _, e := range append(evs, evs...) {
		project(e)
	}
	d, err := projections.Get[projections.SessionDoc](ctx, ds, projections.SessionCollection, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 3 || d.Status != events.StatusClosed || d.Active || d.CreatedAt == nil || *d.DurationSeconds != 90 ||
		d.ContainerInfo == nil || d.ContainerInfo.Status != "stopped" || d.ContainerInfo.ContainerName != "sb-s1" {
		t.Fatalf("%+v", d)
	}
}

func TestInteractionProjection(t *testing.T) {
	ctx := context.Background()
	ds := docStore(t)
	req, _ := events.RequestExec("a", events.ExecRequestedData{InteractionHeader: events.InteractionHeader{InteractionID: "i1", SessionID: "s1", UserID: "u1", CreatedAt: time.Now()}, Command: "echo", CommandTimeout: 3})
	var it events.Interaction
	evs := []events.Envelope{req}
	it.Apply(withVersion(req, 1))
	st, _ := it.Start("b", time.Now())
	it.Apply(withVersion(st[0], 2))
	usage := events.Usage{PeakMemoryBytes: 3 << 20, CPUSeconds: 0.25}
	done, _ := it.Complete("c", time.Now(), events.InteractionResult{ExitCode: 0, Stdout: "x", Success: true, Usage: &usage})
	evs = append(evs, st[0], done[0])
	for i := range evs {
		evs[i] = withVersion(evs[i], int64(i+1))
	}
	load := func(ctx context.Context, stream string, from int64) ([]events.Envelope, error) {
		return evs[from-1:], nil
	}
	for _, e := range []events.Envelope{evs[0], evs[2], evs[1], evs[0]} {
		if err := projections.ProjectStream(ctx, ds, projections.InteractionCollection, "i1", e, projections.ApplyInteraction, load); err != nil {
			t.Fatal(err)
		}
	}
	d, err := projections.Get[projections.InteractionDoc](ctx, ds, projections.InteractionCollection, "i1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != events.InteractionCompleted || d.ExitCode == nil || *d.ExitCode != 0 || *d.Stdout != "x" || d.Command != "echo" || d.Version != 3 {
		t.Fatalf("%+v", d)
	}
	if d.Usage == nil || *d.Usage != usage {
		t.Errorf("usage %+v, want %+v", d.Usage, usage)
	}
}

func withVersion(e events.Envelope, v int64) events.Envelope {
	e.Stream, e.Version = events.InteractionStream("i1"), v
	return e
}
