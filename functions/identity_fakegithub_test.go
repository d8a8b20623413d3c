package functions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// fakeGitHub is GitHub's OAuth and REST endpoints as the login uses them: codes map to
// accounts, each exchange hands out a new token, and /user/repos pages through 100 at a time.
type fakeGitHub struct {
	*httptest.Server
	ClientID, ClientSecret, Redirect string

	mu       sync.Mutex
	codes    map[string]int64  // code -> account id (a code is good once)
	tokens   map[string]int64  // token -> account id
	accounts map[int64]fakeAcc // by id
	Issued   []string          // every token handed out
	Fail     bool              // answer 500 everywhere
}

// lockedOrg is the fake GitHub's organisation that has not approved this app.
const lockedOrg = "locked-org"

type fakeAcc struct {
	Login, Name string
	Repos       int
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{ClientID: "client-id", ClientSecret: "client-secret-xyz", Redirect: "http://app.test/callback",
		codes: map[string]int64{}, tokens: map[string]int64{}, accounts: map[int64]fakeAcc{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/oauth/access_token", g.exchange)
	mux.HandleFunc("GET /user", g.auth(func(w http.ResponseWriter, r *http.Request, id int64, a fakeAcc) {
		json.NewEncoder(w).Encode(map[string]any{"id": id, "login": a.Login, "name": a.Name, "email": nil})
	}))
	mux.HandleFunc("GET /user/emails", g.auth(func(w http.ResponseWriter, r *http.Request, id int64, a fakeAcc) {
		json.NewEncoder(w).Encode([]map[string]any{
			{"email": a.Login + "@old.test", "primary": false, "verified": true},
			{"email": a.Login + "@unverified.test", "primary": true, "verified": false},
			{"email": a.Login + "@example.test", "primary": true, "verified": true},
		})
	}))
	mux.HandleFunc("GET /user/repos", g.auth(func(w http.ResponseWriter, r *http.Request, id int64, a fakeAcc) {
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if per <= 0 {
			per = 30
		}
		if page <= 0 {
			page = 1
		}
		var repos []map[string]any
		for i := (page - 1) * per; i < page*per && i < a.Repos; i++ {
			repos = append(repos, map[string]any{"full_name": fmt.Sprintf("%s/repo-%03d", a.Login, i), "private": i%2 == 0,
				"html_url": fmt.Sprintf("https://github.example/%s/repo-%03d", a.Login, i), "id": i})
		}
		if page*per < a.Repos {
			w.Header().Set("Link", fmt.Sprintf(`<%s/user/repos?per_page=%d&page=%d>; rel="next", <%s/user/repos?per_page=%d&page=9>; rel="last"`, g.URL, per, page+1, g.URL, per))
		}
		if repos == nil {
			repos = []map[string]any{}
		}
		json.NewEncoder(w).Encode(repos)
	}))
	// A repository: the account's own repo-NNN are readable; the organisation lockedOrg refuses
	// this app (403, as GitHub does for OAuth App access restrictions); anything else is a 404.
	mux.HandleFunc("GET /repos/{owner}/{name}", g.auth(func(w http.ResponseWriter, r *http.Request, id int64, a fakeAcc) {
		owner, name := r.PathValue("owner"), r.PathValue("name")
		var i int
		if _, err := fmt.Sscanf(name, "repo-%03d", &i); err == nil && owner == a.Login && i < a.Repos {
			json.NewEncoder(w).Encode(map[string]any{"full_name": owner + "/" + name, "private": i%2 == 0,
				"html_url": "https://github.example/" + owner + "/" + name, "permissions": map[string]bool{"pull": true}})
			return
		}
		if owner == lockedOrg {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"message":"Although you appear to have the correct authorization credentials, the organization has enabled OAuth App access restrictions"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"Not Found"}`))
	}))
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGitHub) addAccount(id int64, acc fakeAcc) {
	g.mu.Lock()
	g.accounts[id] = acc
	g.mu.Unlock()
}

// code issues a one-time authorization code for account id.
func (g *fakeGitHub) code(id int64) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := fmt.Sprintf("code-%d-%d", id, len(g.codes))
	g.codes[c] = id
	return c
}

func (g *fakeGitHub) exchange(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	if r.Form.Get("client_id") != g.ClientID || r.Form.Get("client_secret") != g.ClientSecret {
		json.NewEncoder(w).Encode(map[string]string{"error": "incorrect_client_credentials"})
		return
	}
	if ru := r.Form.Get("redirect_uri"); ru != "" && ru != g.Redirect {
		json.NewEncoder(w).Encode(map[string]string{"error": "redirect_uri_mismatch"})
		return
	}
	id, ok := g.codes[r.Form.Get("code")]
	if !ok {
		json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
		return
	}
	delete(g.codes, r.Form.Get("code"))
	tok := fmt.Sprintf("gho_fake%dsecret%d", id, len(g.Issued))
	g.tokens[tok] = id
	g.Issued = append(g.Issued, tok)
	json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": "repo,user:email"})
}

func (g *fakeGitHub) auth(h func(http.ResponseWriter, *http.Request, int64, fakeAcc)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		fail := g.Fail
		id, ok := g.tokens[r.Header.Get("Authorization")[len("Bearer "):]]
		acc := g.accounts[id]
		g.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"message":"Bad credentials"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		h(w, r, id, acc)
	}
}

// revoke makes GitHub refuse every token of account id.
func (g *fakeGitHub) revoke(id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for tok, a := range g.tokens {
		if a == id {
			delete(g.tokens, tok)
		}
	}
}
