package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
)

var _ sandbox.Inventory = (*Runtime)(nil)

// List returns the sandboxes under the data dir (a directory per session in sandboxes/, which
// Stop removes) and the oracles' directories (oracles/<session id>-<n>, removed when their
// verification ends). A directory is listed whether or not a process still runs in it: what
// is left of a sandbox is leaked as much as a live one.
func (r *Runtime) List(ctx context.Context) ([]sandbox.Listed, error) {
	var out []sandbox.Listed
	sessions, err := os.ReadDir(filepath.Join(r.dataDir, "sandboxes"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list local sandboxes: %w", err)
	}
	for _, e := range sessions {
		// .images and .envs hold shared layers, not sandboxes.
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || !sessionName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(r.dataDir, "sandboxes", e.Name())
		out = append(out, sandbox.Listed{SessionID: e.Name(), Name: e.Name(), CreatedAt: createdAt(dir, "agent.pid")})
	}
	oracles, err := os.ReadDir(r.oraclesDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list local oracles: %w", err)
	}
	for _, e := range oracles {
		i := strings.LastIndexByte(e.Name(), '-')
		if !e.IsDir() || i <= 0 || !sessionName.MatchString(e.Name()) {
			continue
		}
		out = append(out, sandbox.Listed{SessionID: e.Name()[:i], Oracle: true, Name: e.Name(),
			CreatedAt: createdAt(filepath.Join(r.oraclesDir(), e.Name()), "request.json")})
	}
	return out, ctx.Err()
}

// createdAt is when the sandbox in dir was made: the time of the file its start writes first
// (a directory's own time moves with every entry added to it), else the directory's.
func createdAt(dir, first string) time.Time {
	if st, err := os.Stat(filepath.Join(dir, first)); err == nil {
		return st.ModTime().UTC()
	}
	if st, err := os.Stat(dir); err == nil {
		return st.ModTime().UTC()
	}
	return time.Time{}
}

// Reclaim stops a listed sandbox: a session's as Stop does (its oracles' directories go with
// it); an oracle's by killing whatever still runs there and removing its directory and group.
func (r *Runtime) Reclaim(ctx context.Context, s sandbox.Listed) error {
	if !s.Oracle {
		return r.Stop(ctx, sandbox.Info{Name: s.SessionID})
	}
	if !sessionName.MatchString(s.Name) || !strings.HasPrefix(s.Name, s.SessionID+"-") {
		return fmt.Errorf("local oracles: %q is not an oracle of session %s", s.Name, s.SessionID)
	}
	dir := filepath.Join(r.oraclesDir(), s.Name)
	killMarked(dir)
	killStragglers(dir)
	if err := r.removeGroup("oracle", dir); err != nil {
		return fmt.Errorf("reclaim oracle %s: %w", s.Name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("reclaim oracle %s: %w", s.Name, err)
	}
	return nil
}
