package app

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
)

type cachedClient struct {
	url    string
	client sandbox.Client
}

// SandboxClient returns the client of a ready session's sandbox: one per running session, kept
// so that its commands reuse its connections.
func (a *App) SandboxClient(s events.Session) (sandbox.Client, error) {
	if a.Sandboxes == nil {
		return nil, fmt.Errorf("%w: no sandbox runtime is configured", sandbox.ErrUnreachable)
	}
	if c, ok := a.clients.Load(s.SessionID); ok && c.(cachedClient).url == s.Sandbox.URL {
		return c.(cachedClient).client, nil
	}
	c := a.Sandboxes.Client(a.SandboxInfo(s.SessionID, s.Sandbox))
	a.clients.Store(s.SessionID, cachedClient{url: s.Sandbox.URL, client: c})
	return c, nil
}

// ForgetSandboxClient drops the client of a session whose sandbox stopped.
func (a *App) ForgetSandboxClient(sessionID string) { a.clients.Delete(sessionID) }

// A sandbox's secret (what its agent asks of every request) is in no event: the log is kept for
// ever and published to every consumer. It is derived instead, from a subkey of the JWT key ring
// (a secret every process of the deployment already holds) and what the session's ready event
// records: the session id, the kid of the ring's key and a random nonce. Any process can then
// reach the sandbox again, after a restart or on another Cloud Functions instance.

// sandboxSecretLabel names the ring's subkey that sandbox secrets derive from.
const sandboxSecretLabel = "sandbox-secret"

// SandboxSecret is the secret of a sandbox about to start, and what derives it again.
type SandboxSecret struct {
	KeyID  string // the ring key's kid
	Nonce  string // random, not secret
	Secret string // for the runtime only: never recorded
}

// NewSandboxSecret makes the secret of a new sandbox of sessionID.
func (a *App) NewSandboxSecret(sessionID string) (SandboxSecret, error) {
	if a.Identity == nil {
		return SandboxSecret{}, errors.New("sandbox secret: no JWT key ring to derive it from")
	}
	kid, key := a.Identity.Tokens.Ring.Subkey(sandboxSecretLabel)
	nonce := make([]byte, 16)
	rand.Read(nonce)
	sec := SandboxSecret{KeyID: kid, Nonce: hex.EncodeToString(nonce)}
	sec.Secret = sandboxSecret(key, sessionID, sec.Nonce)
	return sec, nil
}

// sandboxSecretOf derives the secret of the sandbox sb of sessionID again: "" when sb records
// no nonce or the ring no longer lists its key (the agent then refuses every request).
func (a *App) sandboxSecretOf(sessionID string, sb events.Sandbox) string {
	if sb.SecretNonce == "" || a.Identity == nil {
		return ""
	}
	key, ok := a.Identity.Tokens.Ring.SubkeyOf(sb.SecretKeyID, sandboxSecretLabel)
	if !ok {
		return ""
	}
	return sandboxSecret(key, sessionID, sb.SecretNonce)
}

func sandboxSecret(key []byte, sessionID, nonce string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionID + "\x00" + nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// The runtime's types and the events' are mapped here, so that a change to the runtime's
// never changes what is stored.

// SandboxInfo is the runtime's view of the sandbox a session's ready event recorded, with its
// secret: derived, or as a ready event of an earlier version stored it.
func (a *App) SandboxInfo(sessionID string, sb events.Sandbox) sandbox.Info {
	secret := a.sandboxSecretOf(sessionID, sb)
	if secret == "" {
		secret = sb.LegacySecret
	}
	return sandbox.Info{Name: sb.Name, URL: sb.URL, Secret: secret, Location: sb.Location,
		WorkDir: sb.WorkDir, CreatedAt: sb.CreatedAt, PID: sb.PID}
}

// SandboxRecord is what a session's ready event records of the sandbox the runtime started
// with the secret sec: how to derive the secret, never the secret.
func SandboxRecord(info sandbox.Info, sec SandboxSecret) events.Sandbox {
	return events.Sandbox{Name: info.Name, URL: info.URL, Location: info.Location, WorkDir: info.WorkDir,
		CreatedAt: info.CreatedAt, PID: info.PID, SecretKeyID: sec.KeyID, SecretNonce: sec.Nonce}
}

// SandboxEnvironment is the runtime's view of a sample's environment.
func SandboxEnvironment(env events.Environment) sandbox.Environment {
	out := sandbox.Environment{Image: env.Image, Archive: env.Archive, WorkDir: env.WorkDir,
		VerifierCommand: env.VerifierCommand, ReportFormat: env.ReportFormat,
		ReportPaths: env.ReportPaths, ProtectedPaths: env.ProtectedPaths}
	if env.ArchiveRef != nil {
		out.ArchiveRef = &blob.Ref{Digest: env.ArchiveRef.Digest, Size: env.ArchiveRef.Size}
	}
	return out
}
