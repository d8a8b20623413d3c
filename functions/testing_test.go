package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
)

// secretPattern matches what a test must never print: API keys ("cs_..."), and JWTs (access
// and refresh tokens).
var secretPattern = regexp.MustCompile(`cs_[A-Za-z0-9]{8,}|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)

// redact masks the keys and tokens in s, for a test's failure messages and logs.
func redact(s string) string { return secretPattern.ReplaceAllString(s, "[redacted]") }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tokenAuth takes the bearer token as the user id: the tests' callers, without identity.
type tokenAuth struct{}

func (tokenAuth) Authenticate(ctx context.Context, r *http.Request) (app.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return app.Principal{}, httpapi.Unauthorized("no bearer token")
	}
	return app.Principal{UserID: tok}, nil
}

// callAPI sends a request to the API served at base, with body as JSON (when not nil) and the
// bearer credential (when not ""), and returns the answer with its body read: in raw, and again
// in resp.Body.
func callAPI(t testing.TB, base, bearer, method, path string, body any) (resp *http.Response, raw []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+app.Prefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if raw, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp, raw
}

// callJSON is callAPI that decodes the answer into out (when not nil) and returns the status.
func callJSON(t testing.TB, base, bearer, method, path string, body, out any) int {
	t.Helper()
	resp, raw := callAPI(t, base, bearer, method, path, body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, redact(string(raw)), err)
		}
	}
	return resp.StatusCode
}

// record writes evs to stream through the write path at expected (events.Any: at the stream's
// head), as a command would: inline projectors, then the bus.
func record(ctx context.Context, a *app.App, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	var opts []app.Option
	if expected != events.Any {
		opts = append(opts, app.From(&app.Head{Version: expected}))
	}
	_, stored, err := app.Update(ctx, a, stream, app.FoldHead, func(*app.Head) ([]events.Envelope, error) { return evs, nil }, opts...)
	return stored, err
}
