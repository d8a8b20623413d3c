package functions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

func TestSessionLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", nil, nil)
	h.addSample(events.Environment{Archive: sampleArchive(t), WorkDir: "/workspace/repo"})
	h.credit("alice", 500)
	sid := h.openSession("alice")

	var s map[string]any
	h.expect(http.StatusOK, "alice", "GET", "/sessions/"+sid, nil, &s)
	ci, _ := s["container_info"].(map[string]any)
	if s["created_at"] == nil || ci == nil || ci["service_url"] == "" || ci["status"] != "running" || ci["sample_id"] != testSample {
		t.Fatalf("ready session: %v", s)
	}
	for _, k := range []string{"sandbox", "active", "version", "secret"} {
		if _, leak := s[k]; leak {
			t.Fatalf("GET /sessions serves internal field %q: %v", k, s)
		}
	}

	if it := h.run("alice", sid, "echo hi; cat README", 30); *it.ExitCode != 0 || *it.Stdout != "hi\nhello from "+testSample+"\n" || !*it.Success || it.InteractionType != "exec_command" || it.Command == "" || it.CommandTimeout != 30 {
		t.Fatalf("echo: %+v", it)
	}
	if it := h.run("alice", sid, "echo oops >&2; exit 3", 30); *it.ExitCode != 3 || *it.Stderr != "oops\n" || *it.Success {
		t.Fatalf("exit 3: %+v", it)
	}

	content := []byte("alpha beta gamma\n")
	var up map[string]any
	h.expect(http.StatusOK, "alice", "POST", "/sessions/"+sid+"/upload", map[string]any{"file_path": "probe/probe.txt", "content_base64": base64.StdEncoding.EncodeToString(content), "make_executable": true}, &up)
	if up["success"] != true || up["size_bytes"] != float64(len(content)) || up["file_path"] != "probe/probe.txt" {
		t.Fatalf("upload: %v", up)
	}
	var rep map[string]any
	h.expect(http.StatusOK, "alice", "POST", "/sessions/"+sid+"/str_replace", map[string]any{"file_path": "probe/probe.txt", "str_to_replace": "beta", "str_to_insert": "BETA"}, &rep)
	if rep["success"] != true {
		t.Fatalf("str_replace: %v", rep)
	}
	if it := h.run("alice", sid, "cat probe/probe.txt; test -x probe/probe.txt && echo exec", 30); *it.Stdout != "alpha BETA gamma\nexec\n" {
		t.Fatalf("after edit: %q", *it.Stdout)
	}
	h.expect(http.StatusOK, "alice", "POST", "/sessions/"+sid+"/str_replace", map[string]any{"file_path": "probe/probe.txt", "str_to_replace": "nowhere", "str_to_insert": "x"}, &rep)
	if rep["success"] != false || rep["message"] == "" {
		t.Fatalf("str_replace of an absent string: %v", rep)
	}
	// Edits and uploads are interactions too, in their own shapes.
	var edit, upl interactionView
	h.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s", sid, rep["interaction_id"]), nil, &edit)
	h.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s", sid, up["interaction_id"]), nil, &upl)
	if edit.InteractionType != "string_replace" || *edit.Success || edit.FilePath != "probe/probe.txt" || upl.InteractionType != "file_upload" || *upl.SizeBytes != int64(len(content)) {
		t.Fatalf("edit %+v upload %+v", edit, upl)
	}

	start := time.Now()
	it := h.run("alice", sid, "sleep 30", 1)
	if time.Since(start) > 10*time.Second || *it.ExitCode == 0 || !strings.Contains(strings.ToLower(*it.Message), "timed out") {
		t.Fatalf("timeout: %+v %s after %s", it, *it.Message, time.Since(start))
	}

	var list struct {
		Sessions   []sessionView `json:"sessions"`
		TotalCount int           `json:"total_count"`
		HasMore    bool          `json:"has_more"`
	}
	h.expect(http.StatusOK, "alice", "GET", "/sessions", nil, &list)
	if list.TotalCount != 1 || list.HasMore || list.Sessions[0].SessionID != sid || list.Sessions[0].Status != "ready" || list.Sessions[0].DurationSeconds == nil {
		t.Fatalf("list: %+v", list)
	}

	var closed, again struct {
		Message         string   `json:"message"`
		DurationSeconds *float64 `json:"duration_seconds"`
	}
	h.expect(http.StatusOK, "alice", "DELETE", "/sessions/"+sid, nil, &closed)
	h.expect(http.StatusOK, "alice", "DELETE", "/sessions/"+sid, nil, &again)
	if closed.DurationSeconds == nil || *closed.DurationSeconds <= 0 || *again.DurationSeconds != *closed.DurationSeconds {
		t.Fatalf("close %+v then %+v", closed, again)
	}
	got := h.waitStatus("alice", sid, "closed")
	if got.DurationSeconds == nil || *got.DurationSeconds != *closed.DurationSeconds || got.ContainerInfo.Status != "stopped" {
		t.Fatalf("closed session: %+v", got)
	}
	h.expectStopped(sid)
	var conflict map[string]any
	h.expect(http.StatusConflict, "alice", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "true"}, &conflict)
	if d, _ := conflict["detail"].(string); !strings.Contains(d, "ended") {
		t.Fatalf("409 detail: %v", conflict)
	}
	h.expect(http.StatusConflict, "alice", "POST", "/sessions/"+sid+"/str_replace", map[string]any{"file_path": "a", "str_to_replace": "b", "str_to_insert": "c"}, nil)

	// One end, billed once, at the price captured at the start.
	evs, err := h.a.Events.Load(context.Background(), events.SessionStream(sid), 1)
	if err != nil {
		t.Fatal(err)
	}
	ends := 0
	for _, e := range evs {
		if e.Type == events.SessionEnded {
			ends++
			var d events.SessionEndedData
			e.Decode(&d)
			if d.Reason != events.EndClosed || d.CentsPerMinute != h.cfg.CostPerMinuteCents || d.ChargeCents != events.ChargeCents(d.BillableSeconds, h.cfg.CostPerMinuteCents) || d.BillableSeconds != *closed.DurationSeconds {
				t.Fatalf("ended: %+v", d)
			}
		}
	}
	if ends != 1 {
		t.Fatalf("%d session.ended events", ends)
	}
}

func TestOtherUsersAndUnknownIDsAre404(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", newAgentRuntime(t), nil)
	h.addSample(events.Environment{})
	h.credit("alice", 500)
	sid := h.openSession("alice")
	it := h.run("alice", sid, "true", 10)
	up := map[string]any{"file_path": "f", "content_base64": "eA=="}
	rep := map[string]any{"file_path": "f", "str_to_replace": "x", "str_to_insert": "y"}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/sessions/" + sid, nil},
		{"DELETE", "/sessions/" + sid, nil},
		{"POST", "/sessions/" + sid + "/exec", map[string]any{"command": "true"}},
		{"GET", "/sessions/" + sid + "/interactions/" + it.InteractionID, nil},
		{"POST", "/sessions/" + sid + "/str_replace", rep},
		{"POST", "/sessions/" + sid + "/upload", up},
	} {
		h.expect(http.StatusNotFound, "mallory", c.method, c.path, c.body, nil)
		unknown := strings.Replace(c.path, sid, "sess_unknown", 1)
		h.expect(http.StatusNotFound, "alice", c.method, unknown, c.body, nil)
	}
	h.expect(http.StatusNotFound, "alice", "GET", "/sessions/"+sid+"/interactions/int_unknown", nil, nil)
	// An interaction is only found under its own session.
	h.credit("alice", 500)
	other := h.openSession("alice")
	h.expect(http.StatusNotFound, "alice", "GET", "/sessions/"+other+"/interactions/"+it.InteractionID, nil, nil)
	var list struct {
		TotalCount int `json:"total_count"`
	}
	h.expect(http.StatusOK, "mallory", "GET", "/sessions", nil, &list)
	if list.TotalCount != 0 {
		t.Fatalf("mallory lists %d sessions", list.TotalCount)
	}
	// The session is untouched by mallory's DELETE.
	h.waitStatus("alice", sid, "ready")
	h.expect(http.StatusUnauthorized, "", "GET", "/sessions", nil, nil)
}

func TestCreateSessionRules(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", newAgentRuntime(t), func(c *config.Config) { c.MaxActiveSessions = 2 })
	h.addSample(events.Environment{})
	body := func(ttl any) map[string]any {
		return map[string]any{"dataset": testDataset, "sample_id": testSample, "ttl_minutes": ttl}
	}
	h.expect(http.StatusPaymentRequired, "bob", "POST", "/sessions", body(10), nil)
	h.credit("bob", 100)
	for _, ttl := range []any{0, 1441, -5, "ten"} {
		var v struct {
			Detail []struct {
				Loc []any `json:"loc"`
			} `json:"detail"`
		}
		h.expect(http.StatusUnprocessableEntity, "bob", "POST", "/sessions", body(ttl), &v)
		if len(v.Detail) != 1 || v.Detail[0].Loc[1] != "ttl_minutes" {
			t.Fatalf("ttl %v: %+v", ttl, v)
		}
	}
	h.expect(http.StatusUnprocessableEntity, "bob", "POST", "/sessions", map[string]any{"dataset": testDataset}, nil)
	h.expect(http.StatusNotFound, "bob", "POST", "/sessions", map[string]any{"dataset": "nope", "sample_id": testSample}, nil)
	h.expect(http.StatusNotFound, "bob", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": "nope"}, nil)

	var created map[string]any
	h.expect(http.StatusCreated, "bob", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, &created)
	req, _ := time.Parse(time.RFC3339Nano, created["requested_at"].(string))
	exp, _ := time.Parse(time.RFC3339Nano, created["expires_at"].(string))
	if created["status"] != "creating" || exp.Sub(req) != 30*time.Minute {
		t.Fatalf("default ttl: %v", created)
	}
	h.expect(http.StatusCreated, "bob", "POST", "/sessions", body(1440), nil)
	h.expect(http.StatusTooManyRequests, "bob", "POST", "/sessions", body(5), nil)
	// Closing one frees a place.
	h.expect(http.StatusOK, "bob", "DELETE", "/sessions/"+created["session_id"].(string), nil, nil)
	h.expect(http.StatusCreated, "bob", "POST", "/sessions", body(5), nil)
}

// gatedRuntime holds every Start until the gate opens (or the start is cancelled, as when the
// application stops).
type gatedRuntime struct {
	*agentRuntime
	gate chan struct{}
}

func (g *gatedRuntime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return sandbox.Info{}, ctx.Err()
	}
	return g.agentRuntime.Start(ctx, spec)
}

func TestExecRulesAndSessionClosedWhileCreating(t *testing.T) {
	t.Parallel()
	rt := &gatedRuntime{agentRuntime: newAgentRuntime(t), gate: make(chan struct{})}
	h := newSessionHarness(t, "", rt, func(c *config.Config) { c.MaxCommandTimeout = 3600 })
	h.addSample(events.Environment{})
	h.credit("carol", 100)
	var created struct {
		SessionID string `json:"session_id"`
	}
	h.expect(http.StatusCreated, "carol", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, &created)
	sid := created.SessionID
	var conflict map[string]any
	h.expect(http.StatusConflict, "carol", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "true"}, &conflict)
	if d, _ := conflict["detail"].(string); !strings.Contains(d, "creating") {
		t.Fatalf("exec while creating: %v", conflict)
	}
	h.expect(http.StatusUnprocessableEntity, "carol", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "true", "command_timeout": 3601}, nil)
	h.expect(http.StatusUnprocessableEntity, "carol", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "true", "command_timeout": 0}, nil)
	h.expect(http.StatusUnprocessableEntity, "carol", "POST", "/sessions/"+sid+"/exec", map[string]any{}, nil)
	h.expect(http.StatusUnprocessableEntity, "carol", "GET", "/sessions/"+sid+"/interactions/x?wait=61", nil, nil)

	// Closed while its sandbox starts: never billed, and the sandbox is stopped once it is up.
	var closed struct {
		DurationSeconds float64 `json:"duration_seconds"`
	}
	h.expect(http.StatusOK, "carol", "DELETE", "/sessions/"+sid, nil, &closed)
	close(rt.gate)
	h.waitStatus("carol", sid, "closed")
	eventually(t, 10*time.Second, func() (bool, string) {
		return rt.startCount() > 0 && rt.running() == 0, fmt.Sprintf("sandbox of a session closed while creating still runs (%d starts)", rt.startCount())
	})
	if closed.DurationSeconds != 0 {
		t.Fatalf("closed while creating billed %v s", closed.DurationSeconds)
	}
}

func TestUploadLimits(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", newAgentRuntime(t), nil)
	h.addSample(events.Environment{})
	h.credit("dan", 100)
	sid := h.openSession("dan")
	var v struct {
		Detail []struct {
			Loc []any `json:"loc"`
		} `json:"detail"`
	}
	h.expect(http.StatusUnprocessableEntity, "dan", "POST", "/sessions/"+sid+"/upload", map[string]any{"file_path": "x", "content_base64": "not base64!"}, &v)
	if v.Detail[0].Loc[1] != "content_base64" {
		t.Fatalf("%+v", v)
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxUploadBytes+1))
	h.expect(http.StatusRequestEntityTooLarge, "dan", "POST", "/sessions/"+sid+"/upload", map[string]any{"file_path": "x", "content_base64": big}, nil)
	fits := base64.StdEncoding.EncodeToString(make([]byte, MaxUploadBytes))
	var up map[string]any
	h.expect(http.StatusOK, "dan", "POST", "/sessions/"+sid+"/upload", map[string]any{"file_path": "big.bin", "content_base64": fits}, &up)
	if up["size_bytes"] != float64(MaxUploadBytes) {
		t.Fatalf("10 MiB upload: %v", up)
	}
}

func TestConcurrentExecsInOneSession(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", nil, nil)
	h.addSample(events.Environment{Archive: sampleArchive(t)})
	h.credit("erin", 100)
	sid := h.openSession("erin")
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it := h.run("erin", sid, fmt.Sprintf("echo %d", i), 60)
			if *it.ExitCode != 0 || *it.Stdout != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("exec %d: %+v", i, it)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnreachableSandboxIsExitMinus1000(t *testing.T) {
	t.Parallel()
	rt := newAgentRuntime(t)
	h := newSessionHarness(t, "", rt, nil)
	h.addSample(events.Environment{})
	h.credit("fay", 100)
	sid := h.openSession("fay")
	s, _, _ := loadSession(context.Background(), h.a, sid)
	rt.Stop(context.Background(), h.a.SandboxInfo(s.SessionID, s.Sandbox)) // behind the session's back
	h.a.ForgetSandboxClient(sid)
	it := h.run("fay", sid, "true", 10)
	if *it.ExitCode != sandbox.InfraExitCode || *it.Success || !strings.Contains(*it.Message, "could not be reached") {
		t.Fatalf("%+v %s", it, *it.Message)
	}
	var rep map[string]any
	h.expect(http.StatusOK, "fay", "POST", "/sessions/"+sid+"/str_replace", map[string]any{"file_path": "a", "str_to_replace": "b", "str_to_insert": "c"}, &rep)
	if rep["success"] != false {
		t.Fatalf("%v", rep)
	}
}

func TestStartFailureIsErrorStatus(t *testing.T) {
	t.Parallel()
	rt := newAgentRuntime(t)
	rt.failStart = errors.New("no space left on device")
	h := newSessionHarness(t, "", rt, nil)
	h.addSample(events.Environment{})
	h.credit("gus", 100)
	var created struct {
		SessionID string `json:"session_id"`
	}
	h.expect(http.StatusCreated, "gus", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, &created)
	s := h.waitStatus("gus", created.SessionID, "error")
	if s.Error == nil || s.Error.Code != codeStartFailed || !strings.Contains(s.Error.Message, "no space left") || s.CreatedAt != nil {
		t.Fatalf("%+v", s)
	}
	h.expect(http.StatusConflict, "gus", "POST", "/sessions/"+created.SessionID+"/exec", map[string]any{"command": "true"}, nil)
	// A failed session does not count against the limit and is never billed.
	var closed struct {
		DurationSeconds float64 `json:"duration_seconds"`
	}
	h.expect(http.StatusOK, "gus", "DELETE", "/sessions/"+created.SessionID, nil, &closed)
	if closed.DurationSeconds != 0 {
		t.Fatal(closed)
	}
}

func TestDuplicateDeliveriesRunOnce(t *testing.T) {
	t.Parallel()
	rt := newAgentRuntime(t)
	h := newSessionHarness(t, "", rt, nil)
	h.addSample(events.Environment{})
	h.credit("hal", 100)
	sid := h.openSession("hal")
	// Record an exec request without publishing, then deliver it many times at once.
	a := h.a
	ctx := context.Background()
	e, _ := events.RequestExec("dup-1", events.ExecRequestedData{InteractionHeader: events.InteractionHeader{InteractionID: "int_dup", SessionID: sid, UserID: "hal", CreatedAt: time.Now()}, Command: "echo x >> runs.txt", CommandTimeout: 10})
	stored, err := a.Events.Append(ctx, events.InteractionStream("int_dup"), 0, e)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	x := &executor{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.execute(ctx, a, stored[0]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	it := h.run("hal", sid, "wc -l < runs.txt", 10)
	if strings.TrimSpace(*it.Stdout) != "1" {
		t.Fatalf("the command ran %s times", *it.Stdout)
	}
	// A redelivered session request starts nothing more.
	starts := rt.startCount()
	req, _ := a.Events.Load(ctx, events.SessionStream(sid), 1)
	p := &provisioner{}
	for range 3 {
		if err := p.provision(ctx, a, req[0]); err != nil {
			t.Fatal(err)
		}
	}
	if rt.startCount() != starts {
		t.Fatalf("a redelivered request started %d more sandboxes", rt.startCount()-starts)
	}
}

func TestReaperExpiresSessionsWithFakeClock(t *testing.T) {
	t.Parallel()
	rt := newAgentRuntime(t)
	fake := clock.NewFake(time.Now())
	h := newSessionHarnessAt(t, "", rt, fake, nil)
	h.addSample(events.Environment{})
	h.credit("ivy", 100)
	var created struct {
		SessionID string `json:"session_id"`
	}
	h.expect(http.StatusCreated, "ivy", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample, "ttl_minutes": 2}, &created)
	sid := created.SessionID
	ready := h.waitStatus("ivy", sid, "ready")

	fake.Advance(119 * time.Second)
	if err := Reap(context.Background(), h.a); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("ivy", sid, "ready")
	fake.Advance(time.Hour) // the reaper comes late: billing still stops at expires_at
	if err := Reap(context.Background(), h.a); err != nil {
		t.Fatal(err)
	}
	s := h.waitStatus("ivy", sid, "terminated")
	want := ready.ExpiresAt.Sub(*ready.CreatedAt).Seconds()
	if s.DurationSeconds == nil || *s.DurationSeconds != want {
		t.Fatalf("billed %v s, want %v", s.DurationSeconds, want)
	}
	if rt.running() != 0 {
		t.Fatal("the expired session's sandbox still runs")
	}
	h.expect(http.StatusConflict, "ivy", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "true"}, nil)
}

func TestReaperFailsSessionsStuckCreating(t *testing.T) {
	t.Parallel()
	rt := &gatedRuntime{agentRuntime: newAgentRuntime(t), gate: make(chan struct{})}
	defer close(rt.gate)
	fake := clock.NewFake(time.Now())
	h := newSessionHarnessAt(t, "", rt, fake, func(c *config.Config) { c.SessionStartTimeout = time.Minute })
	h.addSample(events.Environment{})
	h.credit("jon", 100)
	var created struct {
		SessionID string `json:"session_id"`
	}
	h.expect(http.StatusCreated, "jon", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, &created)
	fake.Advance(2 * time.Minute)
	if err := Reap(context.Background(), h.a); err != nil {
		t.Fatal(err)
	}
	s := h.waitStatus("jon", created.SessionID, "error")
	if s.Error.Code != codeStartTimeout {
		t.Fatalf("%+v", s.Error)
	}
}

func TestRestartReattachesOrEndsReadySessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h1 := newSessionHarness(t, dir, nil, nil)
	h1.addSample(events.Environment{Archive: sampleArchive(t)})
	h1.credit("kim", 100)
	alive := h1.openSession("kim")
	lost := h1.openSession("kim")
	h1.run("kim", alive, "echo before > state.txt", 10)
	sl, _, err := loadSession(context.Background(), h1.a, lost)
	if err != nil {
		t.Fatal(err)
	}
	h1.stop() // the server stops; its sandboxes do not
	if !sandboxtest.Alive(sl.Sandbox.PID) {
		t.Fatal("a sandbox died with the server")
	}
	sandboxtest.Kill(sl.Sandbox.PID) // this one dies while the server is down

	h2 := newSessionHarness(t, dir, nil, nil) // its start-up reattaches or ends
	h2.waitStatus("kim", alive, "ready")
	if it := h2.run("kim", alive, "cat state.txt", 10); *it.Stdout != "before\n" {
		t.Fatalf("reattached session: %+v", it)
	}
	s := h2.waitStatus("kim", lost, "terminated")
	if s.DurationSeconds == nil || *s.DurationSeconds <= 0 {
		t.Fatalf("lost session billed %v", s.DurationSeconds)
	}
	h2.expectStopped(lost)
	h2.expect(http.StatusOK, "kim", "DELETE", "/sessions/"+alive, nil, nil)
	h2.expectStopped(alive)
}

func TestRestartInterruptsClaimedCommands(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", newAgentRuntime(t), nil)
	h.addSample(events.Environment{})
	h.credit("lou", 100)
	sid := h.openSession("lou")
	ctx := context.Background()
	// A command claimed by an executor that died with the server before it answered.
	e, _ := events.RequestExec("lost-1", events.ExecRequestedData{InteractionHeader: events.InteractionHeader{InteractionID: "int_lost", SessionID: sid, UserID: "lou", CreatedAt: time.Now()}, Command: "sleep 1000", CommandTimeout: 10})
	var it events.Interaction
	e.Version = 1
	it.Apply(e)
	claim, _ := it.Start("lost-2", time.Now())
	// Both at once, so that the executor of this process never sees the request unclaimed.
	if _, err := h.a.Events.Append(ctx, events.InteractionStream("int_lost"), 0, append([]events.Envelope{e}, claim...)...); err != nil {
		t.Fatal(err)
	}
	if err := RecoverSandboxes(ctx, h.a); err != nil {
		t.Fatal(err)
	}
	got := h.await("lou", sid, "int_lost")
	if *got.ExitCode != sandbox.InfraExitCode || !strings.Contains(*got.Message, "interrupted") {
		t.Fatalf("%+v", got)
	}
}

// A command claimed by an executor that then vanished (on GCP, an instance gone mid-command)
// is recorded as interrupted by the reaper once its timeout and the executor's grace have long
// passed; a command claimed recently is left to its executor.
func TestReaperInterruptsCommandsWhoseExecutorVanished(t *testing.T) {
	t.Parallel()
	a := openApp(t, appSpec{}).App // no bus, no executor: nobody else touches the streams
	ctx := context.Background()
	now := time.Now()
	claim := func(id string, at time.Time) {
		e, _ := events.RequestExec(id+"-req", events.ExecRequestedData{InteractionHeader: events.InteractionHeader{InteractionID: id, SessionID: "sess_x", UserID: "mo", CreatedAt: at}, Command: "make test", CommandTimeout: 60})
		var it events.Interaction
		e.Version = 1
		it.Apply(e)
		started, _ := it.Start(id+"-claim", at)
		stored, err := a.Events.Append(ctx, events.InteractionStream(id), 0, append([]events.Envelope{e}, started...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stored {
			if err := a.Deliver(ctx, "ProjectInteractions", s); err != nil {
				t.Fatal(err)
			}
		}
	}
	claim("int_vanished", now.Add(-10*time.Minute))
	claim("int_running", now.Add(-time.Minute)) // within 60 s + the graces
	if err := Reap(ctx, a); err != nil {
		t.Fatal(err)
	}
	lost, err := interaction(ctx, a, "int_vanished", true)
	if err != nil || lost.Status != events.InteractionCompleted || *lost.ExitCode != sandbox.InfraExitCode || !strings.Contains(*lost.Message, "executor stopped") {
		t.Fatalf("vanished executor's command: %+v %v", lost, err)
	}
	running, err := interaction(ctx, a, "int_running", true)
	if err != nil || running.Status != events.InteractionProcessing {
		t.Fatalf("a command claimed a minute ago: %+v %v", running, err)
	}
}

// `make run` serves with the default data dir, ./.codeset: a relative path. Sessions must start
// from it all the same (the archive's path once reached the runtime relative and was resolved
// against the data dir twice).
func TestRelativeDataDirStartsSessions(t *testing.T) {
	dir := t.TempDir()
	rt := localRuntime(t, filepath.Join(dir, ".codeset")) // before the Chdir: it builds the binary from this tree
	t.Chdir(dir)
	h := newSessionHarness(t, ".codeset", rt, nil)
	if !filepath.IsAbs(h.a.Config.DataDir) {
		t.Errorf("the App kept the data dir relative: %q", h.a.Config.DataDir)
	}
	// As the importer stores it: relative to the data dir.
	rel := "blobs/environments/test.tar.gz"
	raw, err := os.ReadFile(sampleArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(".codeset", filepath.Dir(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(".codeset", rel), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	h.addSample(events.Environment{Archive: rel, WorkDir: "/workspace/repo"})
	h.credit("rel", 100)
	sid := h.openSession("rel")
	if it := h.run("rel", sid, "cat README", 10); *it.ExitCode != 0 || !strings.Contains(*it.Stdout, "hello") {
		t.Fatalf("exec in a session of a relative data dir: %+v", it)
	}
	h.expect(http.StatusOK, "rel", "DELETE", "/sessions/"+sid, nil, nil)
}

// A command that outlasts one delivery's wait runs on in the sandbox; each delivery hands the wait
// to the next through an exec-running event, and the result is recorded once, however many
// deliveries of those events arrive (from other instances, or redelivered).
func TestLongCommandHandsItsWaitOver(t *testing.T) {
	t.Parallel()
	h := newSessionHarness(t, "", newAgentRuntime(t), func(c *config.Config) { c.DeliveryWait = 150 * time.Millisecond })
	h.addSample(events.Environment{})
	h.credit("hal", 100)
	sid := h.openSession("hal")
	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	h.expect(http.StatusAccepted, "hal", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "echo x >> runs.txt; sleep 1.2; echo done", "command_timeout": 30}, &started)
	stream := events.InteractionStream(started.InteractionID)
	ctx := context.Background()
	handover := firstEvent(t, h.a, stream, events.ExecRunning)
	// Other instances get the same hand-over meanwhile.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := (&executor{}).execute(ctx, h.a, handover); err != nil {
				t.Error(err)
			}
		})
	}
	it := h.await("hal", sid, started.InteractionID)
	wg.Wait()
	if *it.ExitCode != 0 || *it.Stdout != "done\n" {
		t.Fatalf("result: exit %d, stdout %q, message %q", *it.ExitCode, *it.Stdout, *it.Message)
	}
	evs, _ := h.a.Events.Load(ctx, stream, 1)
	count := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count[events.ExecCompleted] != 1 || count[events.ExecStarted] != 1 || count[events.ExecRunning] < 2 {
		t.Fatalf("events: %v; want one claim, one result, and hand-overs between", count)
	}
	// Every late delivery finds the result in: nothing more is appended, nothing runs again.
	for _, e := range evs {
		if e.Type == events.ExecRunning || e.Type == events.ExecRequested {
			if err := (&executor{}).execute(ctx, h.a, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if again, _ := h.a.Events.Load(ctx, stream, 1); len(again) != len(evs) {
		t.Fatalf("late deliveries appended %d events", len(again)-len(evs))
	}
	if it := h.run("hal", sid, "wc -l < runs.txt", 10); strings.TrimSpace(*it.Stdout) != "1" {
		t.Fatalf("the command ran %s times", *it.Stdout)
	}
}

// firstEvent waits for the first event of type typ in stream, and returns it.
func firstEvent(t *testing.T, a *app.App, stream, typ string) events.Envelope {
	t.Helper()
	var found events.Envelope
	eventually(t, time.Minute, func() (bool, string) {
		evs, err := a.Events.Load(context.Background(), stream, 1)
		for _, e := range evs {
			if e.Type == typ {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("no %s in %d events of %s (%v)", typ, len(evs), stream, err)
	})
	return found
}

// TestCommandOutlivesARestart: a command running when the server stops goes on in its sandbox,
// whose agent runs it on its own; the restarted server waits for it again and records its real
// result, once.
func TestCommandOutlivesARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h1 := newSessionHarness(t, dir, nil, nil)
	h1.addSample(events.Environment{Archive: sampleArchive(t)})
	h1.credit("kim", 100)
	sid := h1.openSession("kim")
	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	h1.expect(http.StatusAccepted, "kim", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "echo x >> runs.txt; sleep 3; echo survived", "command_timeout": 60}, &started)
	stream := events.InteractionStream(started.InteractionID)
	// The command runs in the sandbox (a command that never reached it is lost, and said so).
	eventually(t, 10*time.Second, func() (bool, string) {
		it := h1.run("kim", sid, "cat runs.txt 2>/dev/null", 10)
		return *it.Stdout == "x\n", "the command has not started"
	})
	h1.stop() // the server stops; the sandbox and its command do not

	h2 := newSessionHarness(t, dir, nil, nil)
	it := h2.await("kim", sid, started.InteractionID)
	if *it.ExitCode != 0 || *it.Stdout != "survived\n" {
		t.Fatalf("the command across the restart: exit %d, stdout %q, message %q", *it.ExitCode, *it.Stdout, *it.Message)
	}
	evs, _ := h2.a.Events.Load(context.Background(), stream, 1)
	done := 0
	for _, e := range evs {
		if e.Type == events.ExecCompleted {
			done++
		}
	}
	if done != 1 {
		t.Fatalf("%d results recorded", done)
	}
	if it := h2.run("kim", sid, "wc -l < runs.txt", 10); strings.TrimSpace(*it.Stdout) != "1" {
		t.Fatalf("the command ran %s times", *it.Stdout)
	}
	h2.expect(http.StatusOK, "kim", "DELETE", "/sessions/"+sid, nil, nil)
}
