package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/logging"
)

type createReq struct {
	Dataset    string `json:"dataset" required:"true"`
	SampleID   string `json:"sample_id" required:"true"`
	TTLMinutes *int   `json:"ttl_minutes"`
	Flag       bool   `json:"flag"`
}

type fastAPI422 struct {
	Detail []struct {
		Loc  []any  `json:"loc"`
		Msg  string `json:"msg"`
		Type string `json:"type"`
	} `json:"detail"`
}

func decodeStatus(t *testing.T, body string, limit int64) (int, []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	var dst createReq
	w := httptest.NewRecorder()
	if err := Decode(r, limit, &dst); err != nil {
		WriteError(w, err)
		return w.Code, w.Body.Bytes()
	}
	return 200, nil
}

func TestDecodeValidationShapes(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		loc        string // joined loc of the first entry
		typ        string
	}{
		{"valid", `{"dataset":"d","sample_id":"s","ttl_minutes":5}`, 200, "", ""},
		{"unknown fields ignored", `{"dataset":"d","sample_id":"s","x":1}`, 200, "", ""},
		{"missing field", `{"dataset":"d"}`, 422, "body.sample_id", "missing"},
		{"null required field", `{"dataset":"d","sample_id":null}`, 422, "body.sample_id", "missing"},
		{"wrong type string", `{"dataset":5,"sample_id":"s"}`, 422, "body.dataset", "string_type"},
		{"wrong type int", `{"dataset":"d","sample_id":"s","ttl_minutes":"ten"}`, 422, "body.ttl_minutes", "int_type"},
		{"wrong type bool", `{"dataset":"d","sample_id":"s","flag":"yes"}`, 422, "body.flag", "bool_type"},
		{"malformed JSON", `{"dataset":`, 422, "body", "json_invalid"},
		{"not an object", `[1,2]`, 422, "body", "model_attributes_type"},
		{"empty body", ``, 422, "body", "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := decodeStatus(t, c.body, MaxBody)
			if code != c.status {
				t.Fatalf("status %d, want %d (%s)", code, c.status, body)
			}
			if c.status != 422 {
				return
			}
			var v fastAPI422
			if err := json.Unmarshal(body, &v); err != nil || len(v.Detail) == 0 {
				t.Fatalf("not FastAPI-shaped: %s", body)
			}
			var loc []string
			for _, l := range v.Detail[0].Loc {
				if s, ok := l.(string); ok {
					loc = append(loc, s)
				}
			}
			if got := strings.Join(loc, "."); got != c.loc || v.Detail[0].Type != c.typ || v.Detail[0].Msg == "" {
				t.Errorf("detail %+v, want loc %s type %s", v.Detail[0], c.loc, c.typ)
			}
		})
	}
}

func TestBodyOverLimitIs413(t *testing.T) {
	code, body := decodeStatus(t, `{"dataset":"`+strings.Repeat("a", 2000)+`","sample_id":"s"}`, 1000)
	if code != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(`"detail"`)) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestIntParam(t *testing.T) {
	cases := []struct {
		query  string
		n      int
		ok     bool
		status int
	}{
		{"", 0, false, 0},
		{"page_size=50", 50, true, 0},
		{"page_size=101", 0, false, 422},
		{"page_size=0", 0, false, 422},
		{"page_size=abc", 0, false, 422},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/?"+c.query, nil)
		n, ok, err := IntParam(r, "page_size", 1, 100)
		if c.status != 0 {
			w := httptest.NewRecorder()
			WriteError(w, err)
			var v fastAPI422
			if w.Code != c.status || json.Unmarshal(w.Body.Bytes(), &v) != nil || len(v.Detail) != 1 || v.Detail[0].Loc[0] != "query" {
				t.Errorf("%q: %d %s", c.query, w.Code, w.Body)
			}
			continue
		}
		if err != nil || n != c.n || ok != c.ok {
			t.Errorf("%q: %d %v %v", c.query, n, ok, err)
		}
	}
}

func TestWriteErrorShapes(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, Unauthorized("bad token"))
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != "Bearer" || !strings.Contains(w.Body.String(), `"detail":"bad token"`) {
		t.Errorf("401: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, errors.New("database password is hunter2"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "hunter2") {
		t.Errorf("500 leaks its cause: %s", w.Body)
	}
}

func TestMiddlewareRecoversAndTagsRequests(t *testing.T) {
	var logs bytes.Buffer
	log := logging.New(&logs, -4)
	h := Wrap(log, "proj", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("secret internal state")
		}
		w.WriteHeader(204)
	}))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/panic", nil)
	r.Header.Set("X-Cloud-Trace-Context", "abc123/1;o=1")
	h.ServeHTTP(w, r)
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") || !strings.Contains(w.Body.String(), `"detail"`) {
		t.Fatalf("panic answered %d %s", w.Code, w.Body)
	}
	id := w.Header().Get("X-Request-Id")
	if id == "" {
		t.Fatal("no request id")
	}
	var sawPanic, sawAccess bool
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["request_id"] != id || rec["logging.googleapis.com/trace"] != "projects/proj/traces/abc123" || rec["severity"] == nil || rec["message"] == nil {
			t.Errorf("log line lacks Cloud Logging fields: %s", line)
		}
		sawPanic = sawPanic || rec["severity"] == "ERROR"
		sawAccess = sawAccess || (rec["message"] == "request" && rec["status"] == float64(500))
	}
	if !sawPanic || !sawAccess {
		t.Errorf("logs: panic %v access %v\n%s", sawPanic, sawAccess, logs.String())
	}
	// A caller's sane request id is kept; an unsafe one is replaced.
	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Request-Id", "client-id-1")
	h.ServeHTTP(w, r)
	if w.Header().Get("X-Request-Id") != "client-id-1" {
		t.Errorf("request id not kept: %q", w.Header().Get("X-Request-Id"))
	}
	w = httptest.NewRecorder()
	r.Header.Set("X-Request-Id", "bad id\"")
	h.ServeHTTP(w, r)
	if w.Header().Get("X-Request-Id") == "bad id\"" {
		t.Error("unsafe request id echoed")
	}
}
