package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/httpapi"
)

type fakeLookup struct {
	keys  map[string]KeyRecord
	users map[string]UserRecord
}

func (f fakeLookup) KeyByHash(_ context.Context, h string) (KeyRecord, error) {
	k, ok := f.keys[h]
	if !ok {
		return k, ErrUnknown
	}
	return k, nil
}

func (f fakeLookup) User(_ context.Context, id string) (UserRecord, error) {
	u, ok := f.users[id]
	if !ok {
		return u, ErrUnknown
	}
	return u, nil
}

func TestAuthenticator(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Minute)
	keys := map[string]string{}
	lookup := fakeLookup{keys: map[string]KeyRecord{}, users: map[string]UserRecord{
		"u1": {Active: true, TokenGeneration: 1}, "u2": {Active: false},
	}}
	for _, name := range []string{"good", "revoked", "expired", "inactive", "unindexed"} {
		k, _ := NewAPIKey()
		keys[name] = k
		rec := KeyRecord{KeyID: "key_" + name, UserID: "u1", UserActive: true}
		switch name {
		case "revoked":
			rec.Revoked = true
		case "expired":
			rec.ExpiresAt = &past
		case "inactive":
			rec.UserActive = false
		case "unindexed":
			continue
		}
		lookup.keys[HashAPIKey(k)] = rec
	}
	tokens := testTokens(t, testRing(t, genKey(t, "k", AlgEdDSA)), now)
	access := func(user string, gen int) string {
		s, _, err := tokens.Issue(user, UseAccess, gen)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	refresh, _, _ := tokens.Issue("u1", UseRefresh, 1)
	usage := &Usage{}
	a := &Authenticator{Tokens: tokens, Lookup: lookup, Usage: usage, Now: func() time.Time { return now }}

	ok := map[string][]string{
		"API key":      {"Bearer " + keys["good"]},
		"access token": {"Bearer " + access("u1", 1)},
		"lower scheme": {"bearer " + keys["good"]},
	}
	for name, h := range ok {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Authorization"] = h
			p, err := a.Authenticate(context.Background(), r)
			if err != nil || p.UserID != "u1" {
				t.Fatalf("%+v %v", p, err)
			}
		})
	}
	if at, ok := usage.LastUsed("key_good"); !ok || !at.Equal(now) {
		t.Fatalf("use of the key not tracked: %v %v", at, ok)
	}
	refused := map[string][]string{
		"no header":            nil,
		"empty":                {""},
		"basic":                {"Basic dXNlcjpwYXNz"},
		"no credential":        {"Bearer "},
		"two spaces":           {"Bearer  " + keys["good"]},
		"trailing junk":        {"Bearer " + keys["good"] + " x"},
		"two headers":          {"Bearer " + keys["good"], "Bearer " + keys["good"]},
		"revoked key":          {"Bearer " + keys["revoked"]},
		"expired key":          {"Bearer " + keys["expired"]},
		"deactivated user key": {"Bearer " + keys["inactive"]},
		"unknown key":          {"Bearer " + keys["unindexed"]},
		"malformed key":        {"Bearer cs_" + "A" + keys["good"][4:]},
		"refresh token":        {"Bearer " + refresh},
		"old generation":       {"Bearer " + access("u1", 0)},
		"deactivated user":     {"Bearer " + access("u2", 0)},
		"unknown user":         {"Bearer " + access("u9", 0)},
		"raw key":              {keys["good"]},
	}
	for name, h := range refused {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if h != nil {
				r.Header["Authorization"] = h
			}
			_, err := a.Authenticate(context.Background(), r)
			var he *httpapi.Error
			if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || he.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("want a 401 with a Bearer challenge, got %v", err)
			}
		})
	}
}

func TestUsageFlush(t *testing.T) {
	var got []Use
	fail := true
	u := &Usage{Flush: func(_ context.Context, uses []Use) error {
		if fail {
			return errors.New("down")
		}
		got = append(got, uses...)
		return nil
	}}
	t0 := time.Now()
	for i := range 100 {
		u.Touch("k1", "u1", t0.Add(time.Duration(i)*time.Millisecond))
	}
	u.Touch("k2", "u1", t0)
	if err := u.FlushNow(context.Background()); err == nil {
		t.Fatal("flush error swallowed")
	}
	fail = false
	if err := u.FlushNow(context.Background()); err != nil || len(got) != 2 {
		t.Fatalf("after a failed flush the uses must be flushed again: %v %v", got, err)
	}
	if err := u.FlushNow(context.Background()); err != nil || len(got) != 2 {
		t.Fatalf("nothing new must flush nothing: %v", got)
	}
}
