package events

// The user aggregate: one stream per user, "user-<user id>", holding the registration, logins,
// the API keys (their hashes only), the acceptance of the terms and deactivation. Its fold is
// also the user read model (projections/users.go), so the two never disagree.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// UserStream is the stream of a user.
func UserStream(userID string) string { return "user-" + userID }

// GitHubUserID is the user id of the GitHub account githubID. Deriving it (instead of drawing a
// random one) makes registration unique without a global index: two concurrent first logins of
// the same account both append at version 0 of the same stream, and only one wins.
func GitHubUserID(githubID string) string { return derivedUserID("github:" + githubID) }

// LocalUserID is the user id of the local user created by the bootstrap of the embedded default.
func LocalUserID() string { return derivedUserID("local:bootstrap") }

func derivedUserID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "user_" + hex.EncodeToString(sum[:12])
}

// SignupCreditID is the id of the sign-up credit of userID, and of the event that grants it:
// the same on every retry, so the event store stores it once.
func SignupCreditID(userID string) string { return "signup-" + userID }

// Event types of the user aggregate.
const (
	UserRegistered    = "user.registered"
	UserLoggedIn      = "user.logged_in"
	APIKeyCreated     = "user.api_key_created"
	APIKeyRevoked     = "user.api_key_revoked"
	TermsAccepted     = "user.terms_accepted"
	UserDeactivated   = "user.deactivated"
	UserReactivated   = "user.reactivated"
	UserTokensRevoked = "user.tokens_revoked"
)

// MaxActiveAPIKeys bounds the live keys of one user, which all live in the user's document.
const MaxActiveAPIKeys = 100

// Domain errors of the user aggregate.
var (
	ErrUserExists      = errors.New("user already registered")
	ErrUserNotFound    = errors.New("user not found")
	ErrUserInactive    = errors.New("user is deactivated")
	ErrAPIKeyNotFound  = errors.New("API key not found")
	ErrTooManyAPIKeys  = fmt.Errorf("a user may hold at most %d active API keys", MaxActiveAPIKeys)
	ErrAPIKeyDuplicate = errors.New("API key id already used")
)

// Profile is what a login tells about the person: from GitHub, or the local bootstrap's fixed one.
type Profile struct {
	Name        string `json:"name"`
	Email       string `json:"email"`
	GitHubID    string `json:"github_id,omitempty"`
	GitHubLogin string `json:"github_login,omitempty"`
	// GitHubToken is the OAuth token sealed with AES-GCM (shared/auth.Sealer), never the token.
	GitHubToken string `json:"github_token,omitempty"`
}

// UserRegisteredData is the data of UserRegistered.
type UserRegisteredData struct {
	UserID string `json:"user_id"`
	Profile
	Local bool `json:"local,omitempty"` // the bootstrap user of the embedded default
}

// UserLoggedInData is the data of UserLoggedIn: the profile as GitHub tells it today.
type UserLoggedInData struct {
	Profile
}

// APIKeyCreatedData is the data of APIKeyCreated. The key itself is never stored: only its
// SHA-256 (the lookup key of the index) and a few characters to recognise it by.
type APIKeyCreatedData struct {
	KeyID     string     `json:"key_id"`
	Name      *string    `json:"name,omitempty"`
	Hash      string     `json:"hash"`
	Prefix    string     `json:"prefix"`
	Last      string     `json:"last"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// APIKeyRevokedData is the data of APIKeyRevoked; the hash lets projectors update the index
// without reading the user.
type APIKeyRevokedData struct {
	KeyID string `json:"key_id"`
	Hash  string `json:"hash"`
}

// TermsAcceptedData is the data of TermsAccepted (the time is the event's).
type TermsAcceptedData struct{}

// UserDeactivatedData is the data of UserDeactivated.
type UserDeactivatedData struct {
	Reason string `json:"reason"`
}

// UserReactivatedData is the data of UserReactivated.
type UserReactivatedData struct{}

// UserTokensRevokedData is the data of UserTokensRevoked: every JWT issued before it (access and
// refresh) stops working, because tokens carry the generation they were issued in.
type UserTokensRevokedData struct {
	Generation int `json:"generation"`
}

// APIKey is one key of a user as the fold knows it.
type APIKey struct {
	KeyID     string     `json:"key_id"`
	Name      *string    `json:"name,omitempty"`
	Hash      string     `json:"hash"`
	Prefix    string     `json:"prefix"`
	Last      string     `json:"last"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether the key is neither revoked nor expired at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// User is the state of the user aggregate: the fold of its stream.
type User struct {
	ID              string     `json:"user_id"`
	Profile                    // name, email, GitHub id, login and sealed token
	Local           bool       `json:"local,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	LastLoginAt     *time.Time `json:"last_login_at,omitempty"`
	TermsAcceptedAt *time.Time `json:"terms_accepted_at,omitempty"`
	Active          bool       `json:"is_active"`
	TokenGeneration int        `json:"token_generation"`
	APIKeys         []APIKey   `json:"api_keys"`
	Version         int64      `json:"version"` // the last event folded
}

// Exists reports whether the user has registered.
func (u *User) Exists() bool { return u.Version > 0 }

// Key returns the key keyID, or nil.
func (u *User) Key(keyID string) *APIKey {
	for i := range u.APIKeys {
		if u.APIKeys[i].KeyID == keyID {
			return &u.APIKeys[i]
		}
	}
	return nil
}

// Apply folds one event of the user's stream into u.
func (u *User) Apply(e Envelope) error {
	switch e.Type {
	case UserRegistered:
		var d UserRegisteredData
		if err := e.Decode(&d); err != nil {
			return err
		}
		u.ID, u.Profile, u.Local = d.UserID, d.Profile, d.Local
		u.CreatedAt, u.Active = e.OccurredAt, true
		at := e.OccurredAt
		if !d.Local {
			u.LastLoginAt = &at
		}
	case UserLoggedIn:
		var d UserLoggedInData
		if err := e.Decode(&d); err != nil {
			return err
		}
		token := u.GitHubToken
		u.Profile = d.Profile
		if u.GitHubToken == "" {
			u.GitHubToken = token
		}
		at := e.OccurredAt
		u.LastLoginAt = &at
	case APIKeyCreated:
		var d APIKeyCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		u.APIKeys = append(u.APIKeys, APIKey{KeyID: d.KeyID, Name: d.Name, Hash: d.Hash, Prefix: d.Prefix,
			Last: d.Last, CreatedAt: e.OccurredAt, ExpiresAt: d.ExpiresAt})
	case APIKeyRevoked:
		var d APIKeyRevokedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if k := u.Key(d.KeyID); k != nil && k.RevokedAt == nil {
			at := e.OccurredAt
			k.RevokedAt = &at
		}
	case TermsAccepted:
		at := e.OccurredAt
		u.TermsAcceptedAt = &at
	case UserDeactivated:
		// Deactivation also ends every JWT issued so far, so a later reactivation does not
		// revive them.
		u.Active = false
		u.TokenGeneration++
	case UserReactivated:
		u.Active = true
	case UserTokensRevoked:
		var d UserTokensRevokedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		u.TokenGeneration = max(u.TokenGeneration, d.Generation)
	default:
		// Unknown types are skipped so that older code can read a stream written by newer code.
	}
	u.Version = e.Version
	return nil
}

// FoldUser folds a whole stream.
func FoldUser(evs []Envelope) (User, error) {
	var u User
	for _, e := range evs {
		if err := u.Apply(e); err != nil {
			return u, err
		}
	}
	return u, nil
}

// The decisions: each takes the current state and a command and returns the events to append
// (stream and version are set by the store) or a domain error. Event ids are the caller's, so a
// retried command can reuse them.

// Register registers a new user.
func Register(u User, id, userID string, p Profile, local bool, at time.Time) ([]Envelope, error) {
	if u.Exists() {
		return nil, ErrUserExists
	}
	e, err := New(id, userID, UserRegistered, at, UserRegisteredData{UserID: userID, Profile: p, Local: local})
	return one(e, err)
}

// LogIn records a login with the profile GitHub gives today.
func LogIn(u User, id string, p Profile, at time.Time) ([]Envelope, error) {
	if err := live(u); err != nil {
		return nil, err
	}
	e, err := New(id, u.ID, UserLoggedIn, at, UserLoggedInData{Profile: p})
	return one(e, err)
}

// CreateAPIKey adds a key, described by its hash and display characters.
func CreateAPIKey(u User, id string, k APIKeyCreatedData, at time.Time) ([]Envelope, error) {
	if err := live(u); err != nil {
		return nil, err
	}
	if u.Key(k.KeyID) != nil {
		return nil, ErrAPIKeyDuplicate
	}
	n := 0
	for _, key := range u.APIKeys {
		if key.Active(at) {
			n++
		}
	}
	if n >= MaxActiveAPIKeys {
		return nil, ErrTooManyAPIKeys
	}
	e, err := New(id, u.ID, APIKeyCreated, at, k)
	return one(e, err)
}

// RevokeAPIKey revokes the user's key keyID. Revoking a revoked key changes nothing (no events).
func RevokeAPIKey(u User, id, keyID string, at time.Time) ([]Envelope, error) {
	if !u.Exists() {
		return nil, ErrUserNotFound
	}
	k := u.Key(keyID)
	if k == nil {
		return nil, ErrAPIKeyNotFound
	}
	if k.RevokedAt != nil {
		return nil, nil
	}
	e, err := New(id, u.ID, APIKeyRevoked, at, APIKeyRevokedData{KeyID: keyID, Hash: k.Hash})
	return one(e, err)
}

// AcceptTerms records that the user accepted the terms of service at at.
func AcceptTerms(u User, id string, at time.Time) ([]Envelope, error) {
	if err := live(u); err != nil {
		return nil, err
	}
	e, err := New(id, u.ID, TermsAccepted, at, TermsAcceptedData{})
	return one(e, err)
}

// Deactivate shuts the user out: tokens and API keys stop working. Deactivating twice is a no-op.
func Deactivate(u User, id, reason string, at time.Time) ([]Envelope, error) {
	if !u.Exists() {
		return nil, ErrUserNotFound
	}
	if !u.Active {
		return nil, nil
	}
	e, err := New(id, u.ID, UserDeactivated, at, UserDeactivatedData{Reason: reason})
	return one(e, err)
}

// Reactivate lets a deactivated user back in (their old JWTs stay revoked).
func Reactivate(u User, id string, at time.Time) ([]Envelope, error) {
	if !u.Exists() {
		return nil, ErrUserNotFound
	}
	if u.Active {
		return nil, nil
	}
	e, err := New(id, u.ID, UserReactivated, at, UserReactivatedData{})
	return one(e, err)
}

// RevokeTokens invalidates every JWT issued to the user so far (logout everywhere).
func RevokeTokens(u User, id string, at time.Time) ([]Envelope, error) {
	if !u.Exists() {
		return nil, ErrUserNotFound
	}
	e, err := New(id, u.ID, UserTokensRevoked, at, UserTokensRevokedData{Generation: u.TokenGeneration + 1})
	return one(e, err)
}

func live(u User) error {
	if !u.Exists() {
		return ErrUserNotFound
	}
	if !u.Active {
		return ErrUserInactive
	}
	return nil
}

func one(e Envelope, err error) ([]Envelope, error) {
	if err != nil {
		return nil, err
	}
	return []Envelope{e}, nil
}
