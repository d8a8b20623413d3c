package app

import (
	"fmt"

	"github.com/codeset/codeset/events"
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
	c := a.Sandboxes.Client(s.Sandbox)
	a.clients.Store(s.SessionID, cachedClient{url: s.Sandbox.URL, client: c})
	return c, nil
}

// ForgetSandboxClient drops the client of a session whose sandbox stopped.
func (a *App) ForgetSandboxClient(sessionID string) { a.clients.Delete(sessionID) }
