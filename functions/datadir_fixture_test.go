package functions

// A data dir written by an earlier version of the code must still load: the fixture in
// testdata/datadir-v1 is the SQLite file of a data dir that version wrote (a user with an API key
// and credit, the demo dataset imported, a session on a demo sample with commands, an upload, a
// verification, closed and billed), with the answers of the read endpoints at that time. The
// test opens a copy with today's code, folds every stream, serves the same answers, and rebuilds
// every read model from the log alone to the same answers.
//
// Regenerate (only when a new fixture version is wanted, never to make the check pass):
//
//	CODESET_WRITE_FIXTURE=testdata/datadir-v2 go test ./functions -run TestWriteDatadirFixture

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
)

const fixtureDir = "testdata/datadir-v1"

// fixtureIDs are the ids the fixture's answers are read under.
type fixtureIDs struct {
	UserID        string `json:"user_id"`
	SessionID     string `json:"session_id"`
	InteractionID string `json:"interaction_id"`
	UploadID      string `json:"upload_id"`
	JobID         string `json:"job_id"`
}

// paths are the read endpoints whose answers the fixture keeps.
func (ids fixtureIDs) paths() []string {
	s := "/sessions/" + ids.SessionID
	return []string{
		"/users/me",
		"/datasets",
		"/samples?dataset=demo",
		"/sessions",
		s,
		s + "/interactions/" + ids.InteractionID,
		s + "/interactions/" + ids.UploadID,
		s + "/verify/" + ids.JobID,
		"/billing/balance",
		"/billing/usage",
	}
}

// fixtureAnswers is what the fixture's answers.json holds.
type fixtureAnswers struct {
	IDs     fixtureIDs                 `json:"ids"`
	Answers map[string]json.RawMessage `json:"answers"`
}

// TestWriteDatadirFixture writes a fixture data dir into the directory CODESET_WRITE_FIXTURE
// names, with the code as it is: run it only to add a fixture of a new version.
func TestWriteDatadirFixture(t *testing.T) {
	out := os.Getenv("CODESET_WRITE_FIXTURE")
	if out == "" {
		t.Skip("writes a fixture data dir; set CODESET_WRITE_FIXTURE=<dir> to run it")
	}
	ctx := context.Background()
	env := newVerifyEnv(t, nil)
	env.a.Console = io.Discard
	if err := bootstrap(ctx, env.a); err != nil { // the local user, its sign-up credit and an API key
		t.Fatal(err)
	}
	user := events.LocalUserID()
	env.credit(user)
	ids := fixtureIDs{UserID: user, SessionID: env.openSession(user, "py-duration-1")}

	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	env.expect(http.StatusAccepted, user, "POST", "/sessions/"+ids.SessionID+"/exec", map[string]any{"command": "echo fixture; echo oops >&2; exit 3", "command_timeout": 60}, &started)
	ids.InteractionID = started.InteractionID
	if code, _, _ := env.exec(user, ids.SessionID, "true"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var upload struct {
		InteractionID string `json:"interaction_id"`
	}
	env.expect(http.StatusOK, user, "POST", "/sessions/"+ids.SessionID+"/upload", map[string]any{
		"file_path": "notes.txt", "content_base64": base64.StdEncoding.EncodeToString([]byte("fixture\n")),
	}, &upload)
	ids.UploadID = upload.InteractionID
	ids.JobID = env.verify(user, ids.SessionID).JobID
	env.expect(http.StatusOK, user, "DELETE", "/sessions/"+ids.SessionID, nil, nil)
	eventually(t, 30*time.Second, func() (bool, string) {
		_, raw := env.call(user, "GET", "/billing/usage", nil)
		return strings.Contains(string(raw), `"session_usage"`), "no session_usage in /billing/usage: " + string(raw)
	})

	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// One file, WAL folded in, free pages dropped.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.a.Config.DataDir, "codeset.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dst := filepath.Join(out, "codeset.db")
	os.Remove(dst)
	if _, err := db.Exec("VACUUM INTO ?", dst); err != nil {
		t.Fatal(err)
	}
	fa := fixtureAnswers{IDs: ids, Answers: map[string]json.RawMessage{}}
	for _, p := range ids.paths() {
		status, raw := env.call(user, "GET", p, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, status, raw)
		}
		fa.Answers[p] = raw
	}
	b, err := json.MarshalIndent(fa, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "answers.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDatadirFixtureLoads opens the fixture with today's code: every stream folds, the stored
// read models answer as they did, and read models rebuilt from the log alone answer the same.
func TestDatadirFixtureLoads(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "answers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want fixtureAnswers
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := os.ReadFile(filepath.Join(fixtureDir, "codeset.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "codeset.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	old := openFixtureApp(t, dir)
	ctx := context.Background()

	// Every stream folds with its aggregate.
	streams := map[string][]events.Envelope{}
	if err := old.Events.Scan(ctx, "", func(e events.Envelope) error {
		streams[e.Stream] = append(streams[e.Stream], e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for stream, evs := range streams {
		kind, _, _ := strings.Cut(stream, "-")
		kinds[kind]++
		if err := foldFixtureStream(stream, evs); err != nil {
			t.Errorf("fold %s: %v", stream, err)
		}
	}
	for _, kind := range []string{"user", "account", "dataset", "session", "interaction", "verification"} {
		if kinds[kind] == 0 {
			t.Errorf("the fixture has no %s stream", kind)
		}
	}
	// The payloads whose types are the events' own decode and encode to the same JSON: the
	// stored schema did not move.
	payloads := map[string]func() any{
		events.SessionRequested:      func() any { return &events.SessionRequestedData{} },
		events.SessionReady:          func() any { return &events.SessionReadyData{} },
		events.VerificationCompleted: func() any { return &events.VerificationCompletedData{} },
		events.SampleVersionAdded:    func() any { return &events.SampleVersionAddedData{} },
	}
	seen := map[string]int{}
	for _, evs := range streams {
		for _, e := range evs {
			newData, ok := payloads[e.Type]
			if !ok {
				continue
			}
			seen[e.Type]++
			d := newData()
			if err := e.Decode(d); err != nil {
				t.Fatalf("%s %s: %v", e.Type, e.ID, err)
			}
			again, _ := json.Marshal(d)
			var got, stored any
			json.Unmarshal(again, &got)
			json.Unmarshal(e.Data, &stored)
			if !reflect.DeepEqual(got, stored) {
				t.Errorf("%s %s encodes otherwise now:\n got %s\nwant %s", e.Type, e.ID, again, e.Data)
			}
			if v, ok := d.(*events.SampleVersionAddedData); ok && v.SampleContent.Hash() != v.ContentHash {
				t.Errorf("sample %s: content hash %s, stored %s", v.SampleID, v.SampleContent.Hash(), v.ContentHash)
			}
		}
	}
	for typ := range payloads {
		if seen[typ] == 0 {
			t.Errorf("the fixture has no %s event", typ)
		}
	}

	s, _, err := events.FoldSession(streams[events.SessionStream(want.IDs.SessionID)])
	if err != nil || s.Status != events.StatusClosed || s.Env.ReportFormat != "junit" || s.Sandbox.Name != want.IDs.SessionID || s.Sandbox.URL == "" || s.Ended == nil || s.Ended.ChargeCents < 1 {
		t.Errorf("the fixture's session folds to %+v (%v)", s, err)
	}
	// A sandbox of an earlier version is reached with the secret its ready event stored.
	if info := old.SandboxInfo(s.SessionID, s.Sandbox); info.Secret == "" || info.Secret != s.Sandbox.LegacySecret {
		t.Errorf("the fixture's sandbox maps to secret %q, its ready event holds %q", info.Secret, s.Sandbox.LegacySecret)
	}
	v, _, err := events.FoldVerification(streams[events.VerificationStream(want.IDs.JobID)])
	if err != nil || v.Status != events.JobCompleted || v.Result == nil || v.Result.Total == 0 || v.Result.Resolution != "NO" {
		t.Errorf("the fixture's verification folds to %+v (%v)", v, err)
	}

	// The stored read models answer as they did.
	checkFixtureAnswers(t, "stored read models", old, want)

	// Read models rebuilt from the log alone answer the same: every stream appended to a fresh
	// App through the write path, whose inline projectors build them.
	fresh := openFixtureApp(t, t.TempDir())
	names := make([]string, 0, len(streams))
	for stream := range streams {
		names = append(names, stream)
	}
	sort.Strings(names)
	for _, stream := range names {
		if _, err := record(ctx, fresh, stream, 0, streams[stream]...); err != nil {
			t.Fatalf("append %s: %v", stream, err)
		}
	}
	checkFixtureAnswers(t, "rebuilt read models", fresh, want)
}

// openFixtureApp opens an App on dataDir, with no demo, no sandboxes and the bearer token as the
// user: the read side only.
func openFixtureApp(t *testing.T, dataDir string) *app.App {
	t.Helper()
	return openApp(t, appSpec{DataDir: dataDir, Tune: func(c *config.Config) { c.NoDemo = true },
		Prepare: func(a *app.App) { a.Sandboxes = nil }}).App
}

// foldFixtureStream folds a stream with the fold of its aggregate.
func foldFixtureStream(stream string, evs []events.Envelope) error {
	kind, id, _ := strings.Cut(stream, "-")
	var err error
	switch kind {
	case "user":
		_, err = events.FoldUser(evs)
	case "account":
		_, err = events.FoldAccount(id, evs)
	case "dataset":
		var d events.Dataset
		for _, e := range evs {
			if err = d.Apply(e); err != nil {
				break
			}
		}
	case "session":
		_, _, err = events.FoldSession(evs)
	case "interaction":
		_, _, err = events.FoldInteraction(evs)
	case "verification":
		_, _, err = events.FoldVerification(evs)
	default:
		err = fmt.Errorf("unknown stream kind %q", kind)
	}
	return err
}

// checkFixtureAnswers compares a's answers with the fixture's, as JSON values.
func checkFixtureAnswers(t *testing.T, what string, a *app.App, want fixtureAnswers) {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	for _, p := range want.IDs.paths() {
		resp, raw := callAPI(t, srv.URL, want.IDs.UserID, "GET", p, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET %s: %d %s", what, p, resp.StatusCode, raw)
			continue
		}
		var got, exp any
		json.Unmarshal(raw, &got)
		json.Unmarshal(want.Answers[p], &exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("%s: GET %s:\n got %s\nwant %s", what, p, raw, want.Answers[p])
		}
	}
}
