package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNextLink(t *testing.T) {
	cases := map[string]string{
		`<https://api.test/user/repos?page=2>; rel="next", <https://api.test/user/repos?page=5>; rel="last"`:  "https://api.test/user/repos?page=2",
		`<https://api.test/user/repos?page=1>; rel="prev", <https://api.test/user/repos?page=1>; rel="first"`: "",
		`<https://api.test/x?page=3>;rel="next"`: "https://api.test/x?page=3",
		``:                                       "",
		`garbage`:                                "",
	}
	for h, want := range cases {
		if got := nextLink(h); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestReposPagesAndGuards(t *testing.T) {
	var srvURL string
	pages := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/user/repos":
			pages++
			p := r.URL.Query().Get("page")
			if p == "" {
				w.Header().Set("Link", fmt.Sprintf(`<%s/user/repos?page=2>; rel="next"`, srvURL))
				fmt.Fprint(w, `[{"full_name":"o/a","private":true,"html_url":"u/a"}]`)
			} else if p == "2" {
				w.Header().Set("Link", fmt.Sprintf(`<%s/user/repos?page=3>; rel="next"`, srvURL))
				fmt.Fprint(w, `[{"full_name":"o/b","private":false,"html_url":"u/b"}]`)
			} else {
				fmt.Fprint(w, `[]`)
			}
		case "/leak/user/repos":
			w.Header().Set("Link", `<https://elsewhere.test/steal?page=2>; rel="next"`)
			fmt.Fprint(w, `[]`)
		case "/user/emails":
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	c := &Client{APIURL: srv.URL}
	repos, err := c.Repos(context.Background(), "tok")
	if err != nil || len(repos) != 2 || repos[0].FullName != "o/a" || !repos[0].Private || repos[1].HTMLURL != "u/b" || pages != 3 {
		t.Fatalf("repos %+v pages %d err %v", repos, pages, err)
	}
	if _, err := c.Repos(context.Background(), "bad"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("bad token: %v", err)
	}
	leak := &Client{APIURL: srv.URL + "/leak"}
	if _, err := leak.Repos(context.Background(), "tok"); err == nil || !strings.Contains(err.Error(), "leaves") {
		t.Fatalf("a next link to another host must not be followed: %v", err)
	}
	// Without the emails scope: the public email, then the no-reply address.
	if e, err := c.PrimaryEmail(context.Background(), "tok", User{ID: 3, Login: "x", Email: "pub@x"}); err != nil || e != "pub@x" {
		t.Fatalf("email %q %v", e, err)
	}
	if e, err := c.PrimaryEmail(context.Background(), "tok", User{ID: 3, Login: "x"}); err != nil || !strings.HasPrefix(e, "3+x@") {
		t.Fatalf("email %q %v", e, err)
	}
}

func TestExchangeErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		switch r.Form.Get("code") {
		case "zqgood":
			fmt.Fprint(w, `{"access_token":"gho_x"}`)
		case "zqcreds":
			fmt.Fprint(w, `{"error":"incorrect_client_credentials"}`)
		case "zqredirect":
			fmt.Fprint(w, `{"error":"redirect_uri_mismatch"}`)
		case "zqdown":
			w.WriteHeader(503)
		case "zqhtml":
			fmt.Fprint(w, `<html>`)
		default:
			fmt.Fprint(w, `{"error":"bad_verification_code"}`)
		}
	}))
	defer srv.Close()
	c := &Client{OAuthURL: srv.URL}
	if tok, err := c.Exchange(context.Background(), "zqgood", ""); err != nil || tok != "gho_x" {
		t.Fatalf("good: %q %v", tok, err)
	}
	for code, want := range map[string]error{"creds": ErrMisconfigured, "redirect": ErrBadCode, "down": ErrUnavailable, "html": ErrUnavailable, "other": ErrBadCode} {
		_, err := c.Exchange(context.Background(), "zq"+code, "")
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", code, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "zq") {
			t.Errorf("%s: the code is in the error %q", code, err)
		}
	}
}
