package functions

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
)

// TestDepositReturnURLs: a deposit that names no return URL sends the payer back to the
// configured page, or on the embedded default to this server's /docs; on the gcp backend, whose
// functions serve no page, without the setting it is a 400 that says what to set.
func TestDepositReturnURLs(t *testing.T) {
	cfg := func(backend, ret string) config.Config {
		c := config.Default()
		c.Backend, c.DepositReturnURL = backend, ret
		return c
	}
	for _, c := range []struct {
		name                  string
		cfg                   config.Config
		success, cancel       string
		wantSuccess, wantCanc string
		wantStatus            int
	}{
		{"embedded default", cfg("embedded", ""), "", "", "http://api.test/docs?deposit=success", "http://api.test/docs?deposit=cancelled", 0},
		{"configured", cfg("gcp", "https://codeset.example/account?tab=billing"), "", "", "https://codeset.example/account?tab=billing&deposit=success", "https://codeset.example/account?tab=billing&deposit=cancelled", 0},
		{"the request's own", cfg("gcp", ""), "https://a.example/ok", "https://a.example/no", "https://a.example/ok", "https://a.example/no", 0},
		{"one given, one from the setting", cfg("embedded", "https://c.example/r"), "https://a.example/ok", "", "https://a.example/ok", "https://c.example/r?deposit=cancelled", 0},
		{"gcp without the setting", cfg("gcp", ""), "https://a.example/ok", "", "", "", http.StatusBadRequest},
	} {
		r := httptest.NewRequest("POST", "http://api.test/api/v1/billing/deposit", nil)
		s, cn, err := returnURLs(c.cfg, r, c.success, c.cancel)
		if c.wantStatus != 0 {
			if err == nil || statusOf(err) != c.wantStatus {
				t.Errorf("%s: %v, want a %d", c.name, err, c.wantStatus)
			}
			continue
		}
		if err != nil || s != c.wantSuccess || cn != c.wantCanc {
			t.Errorf("%s: %q %q %v", c.name, s, cn, err)
		}
	}
}

// statusOf is the status an error is answered with.
func statusOf(err error) int {
	rec := httptest.NewRecorder()
	httpapi.WriteError(rec, err)
	return rec.Code
}
