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
	c := a.Sandboxes.Client(SandboxInfo(s.Sandbox))
	a.clients.Store(s.SessionID, cachedClient{url: s.Sandbox.URL, client: c})
	return c, nil
}

// ForgetSandboxClient drops the client of a session whose sandbox stopped.
func (a *App) ForgetSandboxClient(sessionID string) { a.clients.Delete(sessionID) }

// The runtime's types and the events' are mapped here, so that a change to the runtime's
// never changes what is stored.

// SandboxInfo is the runtime's view of a sandbox a session's ready event recorded.
func SandboxInfo(sb events.Sandbox) sandbox.Info {
	return sandbox.Info{Name: sb.Name, URL: sb.URL, Secret: sb.Secret, Location: sb.Location,
		WorkDir: sb.WorkDir, CreatedAt: sb.CreatedAt, PID: sb.PID}
}

// SandboxRecord is what a session's ready event records of the sandbox the runtime started.
func SandboxRecord(info sandbox.Info) events.Sandbox {
	return events.Sandbox{Name: info.Name, URL: info.URL, Secret: info.Secret, Location: info.Location,
		WorkDir: info.WorkDir, CreatedAt: info.CreatedAt, PID: info.PID}
}

// SandboxEnvironment is the runtime's view of a sample's environment.
func SandboxEnvironment(env events.Environment) sandbox.Environment {
	return sandbox.Environment{Image: env.Image, Archive: env.Archive, WorkDir: env.WorkDir,
		VerifierCommand: env.VerifierCommand, ReportFormat: env.ReportFormat,
		ReportPaths: env.ReportPaths, ProtectedPaths: env.ProtectedPaths}
}
