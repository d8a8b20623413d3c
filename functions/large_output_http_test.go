package functions

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/sandbox"
)

// TestLargeOutputOverHTTP: a command writing 1 MiB to stdout and 1 MiB to stderr in a local
// sandbox comes back whole through the API, while its event and its read model stay small; a
// verification with a large report likewise.
func TestLargeOutputOverHTTP(t *testing.T) {
	checkLargeOutput(t, newVerifyEnv(t, nil))
}

// TestLargeOutputOverHTTPOnGCPBackend: the same on Firestore and Pub/Sub (their emulators) and
// the Cloud Storage emulator.
func TestLargeOutputOverHTTPOnGCPBackend(t *testing.T) {
	checkLargeOutput(t, newVerifyEnvOn(t, "gcp", nil))
}

// seqText is what `seq from step to` prints.
func seqText(from, step, to int) string {
	var b strings.Builder
	for i := from; (step > 0 && i <= to) || (step < 0 && i >= to); i += step {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func checkLargeOutput(t *testing.T, env *verifyEnv) {
	ctx := context.Background()
	env.credit("alice")
	row := env.samples["sh-semver-1"]
	row.Content.SampleID = "sh-semver-noisy"
	// The verifier also writes 100000 lines to stderr: the result keeps its last 64 KiB, and
	// with the tests' details it is too large for an event.
	row.Content.Environment.VerifierCommand += "; seq 1 100000 >&2"
	env.importRowsAs(t, "large-output", row)
	sid := env.openSession("alice", "sh-semver-noisy")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)

	n := sandbox.OutputLimit
	wantOut, wantErr := seqText(1, 1, 300000)[:n], seqText(300000, -1, 1)[:n]
	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	env.expect(http.StatusAccepted, "alice", "POST", "/sessions/"+sid+"/exec", map[string]any{
		"command": fmt.Sprintf("seq 1 300000 | head -c %d; seq 300000 -1 1 | head -c %d >&2; exit 7", n, n), "command_timeout": 120}, &started)
	iid := started.InteractionID
	type view struct {
		Status   string  `json:"status"`
		ExitCode *int    `json:"exit_code"`
		Stdout   *string `json:"stdout"`
		Stderr   *string `json:"stderr"`
		Message  *string `json:"message"`
	}
	check := func(how string, it view) {
		t.Helper()
		if it.ExitCode == nil || *it.ExitCode != 7 || it.Stdout == nil || it.Stderr == nil {
			t.Fatalf("%s: %+v", how, it)
		}
		if *it.Stdout != wantOut || *it.Stderr != wantErr {
			t.Fatalf("%s: stdout %d bytes, stderr %d bytes, want %d each, byte for byte (message %q)", how, len(*it.Stdout), len(*it.Stderr), n, *it.Message)
		}
	}
	var it view
	eventually(t, 3*time.Minute, func() (bool, string) { // each GET waits up to 30 s itself
		it = view{}
		env.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s?wait=30", sid, iid), nil, &it)
		return it.ExitCode != nil, "the command never completed"
	})
	check("GET ?wait", it)

	// The event and the read model hold references, far under a document's 1 MiB.
	evs, err := env.a.Events.Load(ctx, events.InteractionStream(iid), 1)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Type != events.ExecCompleted || len(last.Data) > 8<<10 {
		t.Fatalf("the last event is %s of %d bytes", last.Type, len(last.Data))
	}
	eventually(t, time.Minute, func() (bool, string) {
		d, err := projections.Get[projections.InteractionDoc](ctx, env.a.Docs, projections.InteractionCollection, iid)
		return err == nil && d.Status == events.InteractionCompleted, fmt.Sprintf("the read model: %v %s", err, d.Status)
	})
	d, _ := projections.Get[projections.InteractionDoc](ctx, env.a.Docs, projections.InteractionCollection, iid)
	if d.StdoutRef == nil || d.StderrRef == nil || len(*d.Stdout) > outputHead || d.StdoutRef.Size != int64(n) {
		t.Fatalf("the read model keeps %d bytes of stdout, refs %+v %+v", len(*d.Stdout), d.StdoutRef, d.StderrRef)
	}
	it = view{}
	env.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s", sid, iid), nil, &it)
	check("GET from the read model", it)

	// A string_replace may carry a megabyte of strings: the event keeps references too.
	old, new := strings.Repeat("a", 600<<10), strings.Repeat("b", 400<<10)
	env.expect(http.StatusAccepted, "alice", "POST", "/sessions/"+sid+"/exec", map[string]any{
		"command": fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a > big.txt", len(old)), "command_timeout": 60}, &started)
	eventually(t, time.Minute, func() (bool, string) {
		it = view{}
		env.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s?wait=30", sid, started.InteractionID), nil, &it)
		return it.ExitCode != nil, "the file was never written"
	})
	var edit struct {
		Success       bool   `json:"success"`
		Message       string `json:"message"`
		InteractionID string `json:"interaction_id"`
	}
	env.expect(http.StatusOK, "alice", "POST", "/sessions/"+sid+"/str_replace", map[string]any{"file_path": "big.txt", "str_to_replace": old, "str_to_insert": new}, &edit)
	if !edit.Success {
		t.Fatalf("the large edit: %s", edit.Message)
	}
	var edited struct {
		StrToReplace string `json:"str_to_replace"`
		StrToInsert  string `json:"str_to_insert"`
	}
	env.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s", sid, edit.InteractionID), nil, &edited)
	if edited.StrToReplace != old || edited.StrToInsert != new {
		t.Fatalf("the edit reads back %d and %d bytes, want %d and %d", len(edited.StrToReplace), len(edited.StrToInsert), len(old), len(new))
	}
	if eevs, err := env.a.Events.Load(ctx, events.InteractionStream(edit.InteractionID), 1); err != nil || len(eevs) != 1 || len(eevs[0].Data) > 8<<10 {
		t.Fatalf("the edit's events: %d, %v", len(eevs), err)
	}

	j := env.verify("alice", sid)
	checkJobSchema(t, j)
	if j.Status != events.JobCompleted || j.Result.Total == 0 || len(j.Result.Failures) != len(row.Content.FailToPass) || len(j.Result.Passes) != len(row.Content.PassToPass) {
		t.Fatalf("the noisy verification: %s %+v", j.Status, j.Error)
	}
	if !strings.HasSuffix(j.Result.Stderr, seqText(1, 1, 100000)[len(seqText(1, 1, 100000))-(64<<10):]) || j.Result.ReportRef != nil {
		t.Fatalf("the verifier's stderr: %d bytes", len(j.Result.Stderr))
	}
	vevs, err := env.a.Events.Load(ctx, events.VerificationStream(j.JobID), 1)
	if err != nil {
		t.Fatal(err)
	}
	done := vevs[len(vevs)-1]
	if done.Type != events.VerificationCompleted || len(done.Data) > 8<<10 || !strings.Contains(string(done.Data), `"report_ref"`) {
		t.Fatalf("the result event is %s of %d bytes", done.Type, len(done.Data))
	}
}
