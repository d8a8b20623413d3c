package events

import (
	"errors"
	"testing"
	"time"
)

// folder returns a function folding the events a decision returned into s (an aggregate's
// state), numbering them as the store would.
func folder[S interface {
	Apply(Envelope) error
	StreamVersion() int64
}](t *testing.T, s S) func([]Envelope, error) {
	return func(evs []Envelope, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Version = s.StreamVersion() + 1
			if err := s.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestUserLifecycle(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var u User
	apply := folder(t, &u)
	if _, err := LogIn(u, "x", Profile{}, at); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("login before registration: %v", err)
	}
	evs, err := Register(u, "e1", "u1", Profile{Name: "A", Email: "a@x", GitHubID: "1", GitHubLogin: "a", GitHubToken: "sealed-1"}, false, at)
	apply(evs, err)
	if !u.Exists() || !u.Active || u.ID != "u1" || u.GitHubToken != "sealed-1" || u.LastLoginAt == nil || !u.CreatedAt.Equal(at) {
		t.Fatalf("registered: %+v", u)
	}
	if _, err := Register(u, "e2", "u1", Profile{}, false, at); !errors.Is(err, ErrUserExists) {
		t.Fatalf("second registration: %v", err)
	}
	// A login refreshes the profile; a login without a token keeps the stored one.
	evs, err = LogIn(u, "e2", Profile{Name: "B", Email: "b@x", GitHubID: "1", GitHubLogin: "b"}, at.Add(time.Hour))
	apply(evs, err)
	if u.Name != "B" || u.GitHubLogin != "b" || u.GitHubToken != "sealed-1" || !u.LastLoginAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("after login: %+v", u)
	}
	exp := at.Add(2 * time.Hour)
	evs, err = CreateAPIKey(u, "e3", APIKeyCreatedData{KeyID: "k1", Hash: "h1", ExpiresAt: &exp}, at)
	apply(evs, err)
	if _, err := CreateAPIKey(u, "e4", APIKeyCreatedData{KeyID: "k1", Hash: "h1"}, at); !errors.Is(err, ErrAPIKeyDuplicate) {
		t.Fatalf("duplicate key id: %v", err)
	}
	if k := u.Key("k1"); k == nil || !k.Active(at) || k.Active(exp) {
		t.Fatalf("key activity: %+v", k)
	}
	if _, err := RevokeAPIKey(u, "e4", "k9", at); !errors.Is(err, ErrAPIKeyNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	evs, err = RevokeAPIKey(u, "e4", "k1", at)
	apply(evs, err)
	if evs, err := RevokeAPIKey(u, "e5", "k1", at); err != nil || len(evs) != 0 {
		t.Fatalf("revoking twice must be a no-op: %v %v", evs, err)
	}
	evs, err = AcceptTerms(u, "e5", at)
	apply(evs, err)
	if u.TermsAcceptedAt == nil {
		t.Fatal("terms")
	}
	evs, err = RevokeTokens(u, "e6", at)
	apply(evs, err)
	if u.TokenGeneration != 1 {
		t.Fatalf("generation %d", u.TokenGeneration)
	}
	evs, err = Deactivate(u, "e7", "test", at)
	apply(evs, err)
	if u.Active || u.TokenGeneration != 2 {
		t.Fatalf("deactivated: %+v", u)
	}
	for name, err := range map[string]error{
		"login":  second(LogIn(u, "x", Profile{}, at)),
		"key":    second(CreateAPIKey(u, "x", APIKeyCreatedData{KeyID: "k2"}, at)),
		"terms":  second(AcceptTerms(u, "x", at)),
		"revoke": nil,
	} {
		if name != "revoke" && !errors.Is(err, ErrUserInactive) {
			t.Fatalf("%s of a deactivated user: %v", name, err)
		}
	}
	evs, err = Reactivate(u, "e8", at)
	apply(evs, err)
	if !u.Active || u.TokenGeneration != 2 {
		t.Fatalf("reactivated: %+v", u)
	}
}

func second(_ []Envelope, err error) error { return err }

func TestTooManyKeys(t *testing.T) {
	at := time.Now()
	var u User
	apply := folder(t, &u)
	apply((Register(u, "r", "u1", Profile{}, true, at)))
	for i := range MaxActiveAPIKeys {
		apply((CreateAPIKey(u, "c", APIKeyCreatedData{KeyID: string(rune('a'+i%26)) + string(rune('0'+i/26))}, at)))
	}
	if _, err := CreateAPIKey(u, "c", APIKeyCreatedData{KeyID: "one-more"}, at); !errors.Is(err, ErrTooManyAPIKeys) {
		t.Fatalf("key %d: %v", MaxActiveAPIKeys+1, err)
	}
	apply((RevokeAPIKey(u, "r", u.APIKeys[0].KeyID, at)))
	if _, err := CreateAPIKey(u, "c", APIKeyCreatedData{KeyID: "one-more"}, at); err != nil {
		t.Fatalf("after a revoke: %v", err)
	}
}

func TestDerivedIDs(t *testing.T) {
	if GitHubUserID("1") == GitHubUserID("2") || GitHubUserID("1") != GitHubUserID("1") || LocalUserID() == GitHubUserID("1") {
		t.Fatal("derived user ids")
	}
	if SignupCreditID("u1") == SignupCreditID("u2") {
		t.Fatal("credit ids")
	}
}
