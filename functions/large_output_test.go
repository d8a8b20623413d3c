package functions

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/sandbox"
)

// blobApp is an App with only a blob store in dir: what the store and resolve functions use.
func blobApp(t *testing.T) (*app.App, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &app.App{Blobs: s}, dir
}

// noisyText is n bytes of varied text, multi-byte characters and newlines included, the same for
// the same seed.
func noisyText(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	alphabet := []rune("abcdefghijklmnopqrstuvwxyz0123456789 \t\n{}\"\\é€😀")
	var b strings.Builder
	for b.Len() < n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	s := b.String()
	for len(s) > n { // whole characters only
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// completedDoc folds a command's request and its recorded result into the read model, as the
// projector does, and returns the document and the result event's stored size.
func completedDoc(t *testing.T, res events.InteractionResult) (projections.InteractionDoc, int) {
	t.Helper()
	req, err := events.RequestExec("e1", events.ExecRequestedData{InteractionHeader: events.InteractionHeader{InteractionID: "i1", SessionID: "s1", UserID: "u1", CreatedAt: time.Now()}, Command: "big", CommandTimeout: 10})
	if err != nil {
		t.Fatal(err)
	}
	req.Version = 1
	var it events.Interaction
	if err := it.Apply(req); err != nil {
		t.Fatal(err)
	}
	it.Status = events.InteractionProcessing
	done, err := it.Complete("e2", time.Now(), res)
	if err != nil || len(done) != 1 {
		t.Fatal(err)
	}
	done[0].Version = 2
	var d projections.InteractionDoc
	for _, e := range []events.Envelope{req, done[0]} {
		if err := projections.ApplyInteraction(&d, e); err != nil {
			t.Fatal(err)
		}
	}
	return d, len(done[0].Data)
}

func httpStatus(err error) int {
	var he *httpapi.Error
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// A stream past the threshold goes to the blob store and comes back byte for byte; the event
// keeps its head; a stream under it stays inline.
func TestLargeOutputStoredAndResolved(t *testing.T) {
	a, _ := blobApp(t)
	ctx := context.Background()
	small := events.InteractionResult{ExitCode: 0, Stdout: "hi\n", Stderr: strings.Repeat("w", largeOutput), Success: true}
	if got := storeLargeOutput(ctx, a, small); !reflect.DeepEqual(got, small) {
		t.Fatalf("output under the threshold changed: %+v", got)
	}

	res := events.InteractionResult{ExitCode: 3, Stdout: noisyText(1, sandbox.OutputLimit), Stderr: noisyText(2, largeOutput+1), ExecutionTimeSeconds: 1.5, Message: "m"}
	stored := storeLargeOutput(ctx, a, res)
	if stored.StdoutRef == nil || stored.StderrRef == nil || stored.StdoutRef.Size != int64(len(res.Stdout)) || stored.ExitCode != 3 || stored.Message != "m" {
		t.Fatalf("stored: exit %d refs %+v %+v message %q", stored.ExitCode, stored.StdoutRef, stored.StderrRef, stored.Message)
	}
	if !strings.HasPrefix(res.Stdout, stored.Stdout) || len(stored.Stdout) > outputHead || len(stored.Stdout) < outputHead-4 || !utf8.ValidString(stored.Stdout) {
		t.Fatalf("the head kept inline: %d bytes, valid %v", len(stored.Stdout), utf8.ValidString(stored.Stdout))
	}
	// Content addressed: storing the same output again (a retried record) names the same blobs.
	if again := storeLargeOutput(ctx, a, res); *again.StdoutRef != *stored.StdoutRef || *again.StderrRef != *stored.StderrRef {
		t.Fatal("the same output stored twice under different refs")
	}

	d, size := completedDoc(t, stored)
	if size > 8<<10 {
		t.Fatalf("the result event is %d bytes", size)
	}
	whole, err := resolveOutput(ctx, a, d)
	if err != nil {
		t.Fatal(err)
	}
	if *whole.Stdout != res.Stdout || *whole.Stderr != res.Stderr || whole.StdoutRef != nil || whole.StderrRef != nil {
		t.Fatalf("resolved: %d and %d bytes, want %d and %d", len(*whole.Stdout), len(*whole.Stderr), len(res.Stdout), len(res.Stderr))
	}
	if *d.Stdout != stored.Stdout || d.StdoutRef == nil {
		t.Fatal("resolving changed the document it was given")
	}
	// An interaction recorded before output was stored this way reads as it is.
	old, _ := completedDoc(t, small)
	if got, err := resolveOutput(ctx, a, old); err != nil || *got.Stdout != "hi\n" || *got.Stderr != small.Stderr {
		t.Fatalf("an inline result: %v", err)
	}
}

// A stored output that is gone or damaged is a 500 that names it; a store that does not answer
// is a 503. Never an empty or cut output.
func TestLargeOutputMissingOrCorrupt(t *testing.T) {
	a, dir := blobApp(t)
	ctx := context.Background()
	res := events.InteractionResult{Stdout: noisyText(3, 200<<10), Stderr: noisyText(4, 100<<10)}
	d, _ := completedDoc(t, storeLargeOutput(ctx, a, res))

	h, _ := blob.Ref{Digest: d.StderrRef.Digest, Size: d.StderrRef.Size}.Hex()
	file := filepath.Join(dir, "sha256", h[:2], h)
	os.Chmod(file, 0o600)
	if err := os.WriteFile(file, []byte(strings.Repeat("x", int(d.StderrRef.Size))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := resolveOutput(ctx, a, d)
	if httpStatus(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "stderr of interaction i1") || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a damaged stderr: %v", err)
	}

	if err := a.Blobs.Delete(ctx, blob.Ref{Digest: d.StdoutRef.Digest, Size: d.StdoutRef.Size}); err != nil {
		t.Fatal(err)
	}
	_, err = resolveOutput(ctx, a, d)
	if httpStatus(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "stdout of interaction i1") || !strings.Contains(err.Error(), d.StdoutRef.Digest) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing stdout: %v", err)
	}

	a.Blobs = failingStore{}
	if _, err = resolveOutput(ctx, a, d); httpStatus(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("an unavailable store: %v", err)
	}
}

// Output that cannot be stored is still a result: exit code -1000, why, and the heads.
func TestLargeOutputStoreFailure(t *testing.T) {
	a := &app.App{Blobs: failingStore{}}
	res := events.InteractionResult{ExitCode: 0, Success: true, Stdout: noisyText(5, 100<<10), Stderr: "warning\n", ExecutionTimeSeconds: 2}
	got := storeLargeOutput(context.Background(), a, res)
	if got.ExitCode != sandbox.InfraExitCode || got.Success || got.StdoutRef != nil || !strings.Contains(got.Message, "stdout of 102400 bytes could not be stored") ||
		!strings.Contains(got.Message, "disk on fire") || got.Stdout != head(res.Stdout) || got.Stderr != "warning\n" || got.ExecutionTimeSeconds != 2 {
		t.Fatalf("%+v", got)
	}
}

// A large verification result is stored whole; the event keeps its summary; GET reads it back.
func TestLargeReportStoredAndResolved(t *testing.T) {
	a, _ := blobApp(t)
	ctx := context.Background()
	small := events.VerificationResult{Tool: "test_suite", Total: 1, Passed: 1, IsSuccess: true, Passes: []events.TestDetail{{Name: "t::a"}}, Stdout: "ok"}
	if got, err := storeLargeReport(ctx, a, small); err != nil || !reflect.DeepEqual(got, small) {
		t.Fatalf("a small result changed: %+v %v", got, err)
	}
	if got, err := resolveReport(ctx, a, "j", &small); err != nil || got != &small {
		t.Fatalf("a whole result was resolved: %v", err)
	}
	if got, err := resolveReport(ctx, a, "j", nil); err != nil || got != nil {
		t.Fatalf("no result: %v %v", got, err)
	}

	big := events.VerificationResult{Tool: "test_suite", Total: 3000, Passed: 2000, Failed: 1000, Resolution: "PARTIAL",
		Stdout: noisyText(6, 64<<10), Stderr: noisyText(7, 64<<10), FailToPassFailed: []string{}, NotFound: []string{"t::gone"}}
	for i := range 2000 {
		big.Passes = append(big.Passes, events.TestDetail{Name: "t::pass" + strings.Repeat("x", i%50), DurationSeconds: 0.01})
	}
	for range 1000 {
		big.Failures = append(big.Failures, events.TestDetail{Name: "t::fail", Details: noisyText(8, 100), Kind: "failure"})
	}
	sum, err := storeLargeReport(ctx, a, big)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sum)
	if sum.ReportRef == nil || len(raw) > 8<<10 || sum.Passed != 2000 || sum.Failed != 1000 || sum.Resolution != "PARTIAL" || sum.Passes != nil || !strings.HasPrefix(big.Stdout, sum.Stdout) {
		t.Fatalf("the summary (%d bytes): %+v", len(raw), sum.ReportRef)
	}
	// What the event holds is what the read model holds, through their JSON.
	e, err := events.New("e", "u", events.VerificationCompleted, time.Now(), events.VerificationCompletedData{CompletedAt: time.Now(), Result: sum})
	if err != nil {
		t.Fatal(err)
	}
	e.Version = 4
	var doc projections.VerificationDoc
	if err := projections.ApplyVerification(&doc, e); err != nil {
		t.Fatal(err)
	}
	whole, err := resolveReport(ctx, a, "j1", doc.Result)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*whole, big) {
		t.Fatal("the resolved result differs from the one stored")
	}

	if err := a.Blobs.Delete(ctx, blob.Ref{Digest: sum.ReportRef.Digest, Size: sum.ReportRef.Size}); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveReport(ctx, a, "j1", doc.Result); httpStatus(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "result of verification job j1") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing report: %v", err)
	}
	if _, err := storeLargeReport(ctx, &app.App{Blobs: failingStore{}}, big); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("a report the store refused: %v", err)
	}
}

// failingStore is a blob store that refuses everything.
type failingStore struct{}

func (failingStore) Put(context.Context, io.Reader) (blob.Ref, error) {
	return blob.Ref{}, errors.New("blob store: disk on fire")
}
func (failingStore) Get(context.Context, blob.Ref) (io.ReadCloser, error) {
	return nil, errors.New("blob store: disk on fire")
}
func (failingStore) Delete(context.Context, blob.Ref) error {
	return errors.New("blob store: disk on fire")
}
