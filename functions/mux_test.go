package functions

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/config"
)

// bareApp is an App with no storage: enough to prove routing, which never touches the store.
func bareApp() *app.App {
	return &app.App{Config: config.Default(), Logger: discardLogger(), Wiring: Wiring()}
}

func TestEveryOperationIsRouted(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(bareApp().Handler())
	defer srv.Close()
	param := regexp.MustCompile(`\{[^}]+\}`)
	for _, rt := range Routes {
		path := param.ReplaceAllString(rt.Path, "x")
		req, _ := http.NewRequest(rt.Method, srv.URL+app.Prefix+path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusMethodNotAllowed || bytes.Contains(body, []byte("route not found")) {
			t.Errorf("%s %s is not routed: %d %s", rt.Method, rt.Path, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no X-Request-Id", rt.Method, rt.Path)
		}
	}
}

func TestContractAndDocsServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(bareApp().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + app.Prefix + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&spec); err != nil || len(spec.Paths) == 0 {
		t.Fatalf("openapi.json: %v, %d paths", err, len(spec.Paths))
	}
	resp.Body.Close()
	resp, err = http.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if bytes.Contains(page, []byte("http://")) || bytes.Contains(page, []byte("https://")) {
		t.Error("/docs loads something from outside the binary")
	}
}

func TestUnknownPathIsJSON404(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(bareApp().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + app.Prefix + "/no/such/thing")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if resp.StatusCode != 404 || json.NewDecoder(resp.Body).Decode(&body) != nil || body["detail"] == nil {
		t.Fatalf("unknown path: %d %v", resp.StatusCode, body)
	}
}
