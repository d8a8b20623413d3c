package events

import (
	"errors"
	"testing"
	"time"
)

func applyI(t *testing.T, it *Interaction, evs ...Envelope) {
	t.Helper()
	for i, e := range evs {
		e.Version = it.Version + int64(i) + 1
		if err := it.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExecLifecycleRunsOnce(t *testing.T) {
	if _, err := RequestExec("e", ExecRequestedData{Command: "true"}); !errors.Is(err, ErrBadCommandTimeout) {
		t.Fatal("a zero timeout was accepted")
	}
	e, err := RequestExec("e1", ExecRequestedData{InteractionHeader: InteractionHeader{InteractionID: "i1", SessionID: "s1", UserID: "u1", CreatedAt: t0}, Command: "echo hi", CommandTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	var it Interaction
	applyI(t, &it, e)
	if it.Status != InteractionPending || it.Kind != InteractionExec || it.Exec.Command != "echo hi" {
		t.Fatalf("%+v", it)
	}
	claim, _ := it.Start("e2", t0)
	if len(claim) != 1 {
		t.Fatal("no claim on a pending exec")
	}
	applyI(t, &it, claim...)
	if it.Status != InteractionProcessing {
		t.Fatal(it.Status)
	}
	if again, _ := it.Start("e2b", t0); again != nil {
		t.Fatal("a processing exec was claimed twice")
	}
	done, _ := it.Complete("e3", t0.Add(time.Second), InteractionResult{ExitCode: 0, Stdout: "hi\n", Success: true})
	applyI(t, &it, done...)
	if it.Status != InteractionCompleted || it.Result.Stdout != "hi\n" {
		t.Fatalf("%+v", it)
	}
	if again, _ := it.Complete("e4", t0, InteractionResult{}); again != nil {
		t.Fatal("completed twice")
	}
	if again, _ := it.Start("e5", t0); again != nil {
		t.Fatal("a completed exec was claimed")
	}
}

func TestRecordedEditsAndUploads(t *testing.T) {
	h := InteractionHeader{InteractionID: "i", SessionID: "s", UserID: "u", CreatedAt: t0}
	e, _ := RecordStringReplace("e", StringReplacedData{InteractionHeader: h, FilePath: "a.txt", StrToReplace: "a", StrToInsert: "b", InteractionResult: InteractionResult{Success: true, Message: "ok"}})
	var it Interaction
	applyI(t, &it, e)
	if it.Kind != InteractionEdit || it.Status != InteractionCompleted || !it.Result.Success || it.Edit.FilePath != "a.txt" {
		t.Fatalf("%+v", it)
	}
	if evs, _ := it.Start("x", t0); evs != nil {
		t.Fatal("an edit was claimed as an exec")
	}
	u, _ := RecordFileUpload("u", FileUploadedData{InteractionHeader: h, FilePath: "b", SizeBytes: 3, MakeExecutable: true})
	var up Interaction
	applyI(t, &up, u)
	if up.Kind != InteractionUpload || up.Upload.SizeBytes != 3 || !up.Upload.MakeExecutable {
		t.Fatalf("%+v", up)
	}
}

// A command's usage is recorded with its result; a result recorded before usage was measured
// reads without it.
func TestExecUsage(t *testing.T) {
	var it Interaction
	req, _ := RequestExec("e1", ExecRequestedData{InteractionHeader: InteractionHeader{InteractionID: "i1", UserID: "u1", CreatedAt: t0}, Command: "true", CommandTimeout: 5})
	applyI(t, &it, req)
	claim, _ := it.Start("e2", t0)
	applyI(t, &it, claim...)
	old := claim[0]
	old.ID, old.Type = "e3", ExecCompleted
	old.Data = []byte(`{"completed_at":"2026-01-02T03:04:06Z","exit_code":0,"stdout":"","stderr":"","execution_time_seconds":0.1,"success":true,"message":""}`)
	before := it
	applyI(t, &before, old)
	if before.Status != InteractionCompleted || before.Result.Usage != nil {
		t.Fatalf("an old result: %+v", before.Result)
	}
	u := Usage{PeakMemoryBytes: 5 << 20, CPUSeconds: 1.5}
	done, _ := it.Complete("e4", t0, InteractionResult{Success: true, Usage: &u})
	applyI(t, &it, done...)
	if it.Result.Usage == nil || *it.Result.Usage != u {
		t.Fatalf("usage %+v, want %+v", it.Result.Usage, u)
	}
}
