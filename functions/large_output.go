package functions

// Large values (a command's stdout or stderr, a verification's graded result) go to the blob
// store rather than into the event that records them: a Firestore document, event or read
// model, holds at most 1 MiB, and an event is kept and published for ever. The event and the
// read model keep a Ref and a head of the text; the read endpoints put the whole text back, so
// clients see no difference. Blobs are content addressed: storing a value again (a redelivered
// event, a retried write) stores nothing new.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/sandbox"
)

// largeOutput is the size in bytes past which a command's stream (stdout and stderr each), or a
// verification result as JSON, is stored in the blob store. What stays inline is then at most
// two streams of this size: even JSON-escaped at 6 bytes a byte (\u0000), an event stays under
// 1 MiB.
const largeOutput = 64 << 10

// outputHead is how much of a stored text stays inline, for whoever reads the log.
const outputHead = 1 << 10

// storeLargeOutput stores each stream of res longer than largeOutput in the blob store, and
// returns res with its Ref and only its head inline. The executor calls it on a command's result
// right before recording it. A result whose output cannot be stored is recorded all the same, as
// an infrastructure failure (exit code -1000) that says so, with the heads inline: the command
// ran once and will not run again, so no result at all would leave it processing for ever.
func storeLargeOutput(ctx context.Context, a *app.App, res events.InteractionResult) events.InteractionResult {
	out := res
	for _, s := range []largeText{{"stdout", &out.Stdout, &out.StdoutRef}, {"stderr", &out.Stderr, &out.StderrRef}} {
		if err := s.store(ctx, a); err != nil {
			return events.InteractionResult{
				ExitCode: sandbox.InfraExitCode, ExecutionTimeSeconds: res.ExecutionTimeSeconds, Usage: res.Usage,
				Stdout: head(res.Stdout), Stderr: head(res.Stderr),
				Message: fmt.Sprintf("the command ended (exit code %d) but its %s of %d bytes could not be stored, so only the first %d bytes of each stream are kept: %v",
					res.ExitCode, s.name, len(*s.text), outputHead, err),
			}
		}
	}
	return out
}

// storeLargeEdit stores the strings of a string_replace longer than largeOutput in the blob
// store, as storeLargeOutput does a command's streams: the request may carry a megabyte of them.
func storeLargeEdit(ctx context.Context, a *app.App, d *events.StringReplacedData) error {
	for _, s := range []largeText{{"str_to_replace", &d.StrToReplace, &d.StrToReplaceRef}, {"str_to_insert", &d.StrToInsert, &d.StrToInsertRef}} {
		if err := s.store(ctx, a); err != nil {
			return fmt.Errorf("the %s of %d bytes could not be stored: %w", s.name, len(*s.text), err)
		}
	}
	return nil
}

// largeText is a text field of an event and the Ref that stands for it once it is stored.
type largeText struct {
	name string
	text *string
	ref  **events.BlobRef
}

// store puts the text in the blob store when it is longer than largeOutput, leaving its head.
func (s largeText) store(ctx context.Context, a *app.App) error {
	if len(*s.text) <= largeOutput || *s.ref != nil {
		return nil
	}
	ref, err := blob.PutBytes(ctx, a.Blobs, []byte(*s.text))
	if err != nil {
		return err
	}
	*s.text, *s.ref = head(*s.text), &events.BlobRef{Digest: ref.Digest, Size: ref.Size}
	return nil
}

// resolveOutput returns d with the whole text of its streams that are in the blob store; a
// stream that cannot be read back is a 5xx naming it, never an empty or cut output. d itself is
// left as it is (a completion's document is shared by every request waiting on it).
func resolveOutput(ctx context.Context, a *app.App, d projections.InteractionDoc) (projections.InteractionDoc, error) {
	for _, s := range []struct {
		name string
		ref  *events.BlobRef
		text **string
	}{{"stdout", d.StdoutRef, &d.Stdout}, {"stderr", d.StderrRef, &d.Stderr}} {
		if s.ref == nil {
			continue
		}
		b, err := readBlob(ctx, a, *s.ref)
		if err != nil {
			return d, blobError(fmt.Sprintf("the %s of interaction %s", s.name, d.InteractionID), *s.ref, err)
		}
		text := string(b)
		*s.text = &text
	}
	for _, s := range []largeText{{"str_to_replace", &d.StrToReplace, &d.StrToReplaceRef}, {"str_to_insert", &d.StrToInsert, &d.StrToInsertRef}} {
		if *s.ref == nil {
			continue
		}
		b, err := readBlob(ctx, a, **s.ref)
		if err != nil {
			return d, blobError(fmt.Sprintf("the %s of interaction %s", s.name, d.InteractionID), **s.ref, err)
		}
		*s.text = string(b)
	}
	d.StdoutRef, d.StderrRef, d.StrToReplaceRef, d.StrToInsertRef = nil, nil, nil, nil
	return d, nil
}

// storeLargeReport stores a verification result whose JSON is longer than largeOutput in the
// blob store, whole, and returns its summary for the event: the counts, success and resolution,
// the heads of stdout and stderr, the Ref, and none of the lists (test details and names, which
// grow with the test suite). The verifier calls it right before recording the result.
func storeLargeReport(ctx context.Context, a *app.App, r events.VerificationResult) (events.VerificationResult, error) {
	if r.ReportRef != nil {
		return r, nil
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("encode the verification result: %w", err)
	}
	if len(raw) <= largeOutput {
		return r, nil
	}
	ref, err := blob.PutBytes(ctx, a.Blobs, raw)
	if err != nil {
		return r, fmt.Errorf("the verification result of %d bytes could not be stored: %w", len(raw), err)
	}
	return events.VerificationResult{
		Tool: r.Tool, IsSuccess: r.IsSuccess, ExecutionDurationSeconds: r.ExecutionDurationSeconds,
		Total: r.Total, Passed: r.Passed, Failed: r.Failed, Skipped: r.Skipped,
		Stdout: head(r.Stdout), Stderr: head(r.Stderr), Resolution: r.Resolution,
		ReportRef: &events.BlobRef{Digest: ref.Digest, Size: ref.Size},
	}, nil
}

// resolveReport returns the whole verification result that r summarises, read back from the
// blob store; r itself when it is whole (nil included).
func resolveReport(ctx context.Context, a *app.App, jobID string, r *events.VerificationResult) (*events.VerificationResult, error) {
	if r == nil || r.ReportRef == nil {
		return r, nil
	}
	what := "the result of verification job " + jobID
	b, err := readBlob(ctx, a, *r.ReportRef)
	if err != nil {
		return nil, blobError(what, *r.ReportRef, err)
	}
	var whole events.VerificationResult
	if err := json.Unmarshal(b, &whole); err != nil {
		return nil, httpapi.Errorf(http.StatusInternalServerError, "%s (%s) does not decode: %v", what, r.ReportRef.Digest, err)
	}
	return &whole, nil
}

func readBlob(ctx context.Context, a *app.App, ref events.BlobRef) ([]byte, error) {
	return blob.ReadAll(ctx, a.Blobs, blob.Ref{Digest: ref.Digest, Size: ref.Size})
}

// blobError is the answer to a value that could not be read back: a stored value that is gone
// or damaged is the server's fault (500); a store that did not answer may answer later (503).
func blobError(what string, ref events.BlobRef, err error) error {
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return httpapi.Errorf(http.StatusInternalServerError, "%s (%s, %d bytes) is missing from the blob store", what, ref.Digest, ref.Size)
	case errors.Is(err, blob.ErrCorrupt):
		return httpapi.Errorf(http.StatusInternalServerError, "%s (%s, %d bytes) is corrupt in the blob store: its bytes do not match their digest", what, ref.Digest, ref.Size)
	default:
		// The cause goes to the log (wrapped), not to the client.
		return fmt.Errorf("%w: %v", httpapi.Errorf(http.StatusServiceUnavailable, "%s (%s) could not be read from the blob store; try again", what, ref.Digest), err)
	}
}

// head is the start of s, at most outputHead bytes, cut between two characters.
func head(s string) string {
	if len(s) <= outputHead {
		return s
	}
	cut := outputHead
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
