package functions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/agent"
)

// agentRuntime runs each sandbox's real agent (shared/sandbox/agent) inside the test process, on a
// unix socket in a work dir of its own: the session code paths run against a real agent without
// the process isolation of the local runtime. failStart makes Start fail, for the error path.
type agentRuntime struct {
	dir       string
	failStart error
	mu        sync.Mutex
	servers   map[string]*http.Server
	starts    int
}

func newAgentRuntime(t *testing.T) *agentRuntime {
	rt := &agentRuntime{dir: t.TempDir(), servers: map[string]*http.Server{}}
	t.Cleanup(func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		for _, s := range rt.servers {
			s.Close()
		}
	})
	return rt
}

// startCount is how many sandboxes r was asked to start.
func (r *agentRuntime) startCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

func (r *agentRuntime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	r.mu.Lock()
	r.starts++
	r.mu.Unlock()
	if r.failStart != nil {
		return sandbox.Info{}, r.failStart
	}
	wd := filepath.Join(r.dir, spec.SessionID, "repo")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return sandbox.Info{}, err
	}
	if err := os.WriteFile(filepath.Join(wd, "README"), []byte("hello from "+spec.SampleID+"\n"), 0o644); err != nil {
		return sandbox.Info{}, err
	}
	sock := filepath.Join(r.dir, spec.SessionID, "agent.sock")
	secret := sandbox.SecretOf(spec)
	srv, err := agent.New(agent.Options{WorkDir: wd, Secret: secret, Grace: 200 * time.Millisecond})
	if err != nil {
		return sandbox.Info{}, err
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return sandbox.Info{}, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	r.mu.Lock()
	r.servers[spec.SessionID+"|"+sock] = hs
	r.mu.Unlock()
	return sandbox.Info{Name: "test-" + spec.SessionID, URL: "unix://" + sock, Secret: secret, Location: "local", WorkDir: wd, CreatedAt: time.Now().UTC()}, nil
}

func (r *agentRuntime) key(info sandbox.Info) string {
	return info.Name[len("test-"):] + "|" + info.URL[len("unix://"):]
}

func (r *agentRuntime) Stop(ctx context.Context, info sandbox.Info) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.servers[r.key(info)]; ok {
		delete(r.servers, r.key(info))
		return s.Close()
	}
	return nil
}

func (r *agentRuntime) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.servers)
}

func (r *agentRuntime) Alive(ctx context.Context, info sandbox.Info) bool {
	c, err := sandbox.NewClient(info, nil)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = c.Health(ctx)
	return err == nil
}

func (r *agentRuntime) Client(info sandbox.Info) sandbox.Client {
	c, err := sandbox.NewClient(info, nil)
	if err != nil {
		return sandbox.Unreachable(err)
	}
	return c
}

// Verify is not this runtime's: verification needs a pristine environment and an oracle
// sandbox, which the local runtime's tests (verification_test.go) have.
func (r *agentRuntime) StartVerify(context.Context, sandbox.Info, sandbox.Spec, sandbox.VerifyRequest, string) error {
	return fmt.Errorf("%w: the in-process test runtime has no oracle", sandbox.ErrUnreachable)
}

func (r *agentRuntime) AwaitVerify(context.Context, sandbox.Info, sandbox.Spec, string, time.Duration) (sandbox.VerifyResult, bool, error) {
	return sandbox.VerifyResult{}, false, sandbox.ErrNoSuchRun
}

func (r *agentRuntime) StopVerify(context.Context, sandbox.Info, sandbox.Spec, string) error {
	return nil
}

var _ = errors.New
var _ = fmt.Sprint
