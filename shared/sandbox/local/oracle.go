package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/changes"
)

// oraclesDir holds one directory per verification under way: the oracle's request, the agent's
// changes and the oracle's fresh work tree. It is inside the data dir, which every sandbox has
// covered, so no process of a session can reach an oracle's files.
func (r *Runtime) oraclesDir() string { return filepath.Join(r.dataDir, "oracles") }

// Verify grades a session's work in an oracle sandbox of its own: the session's changes are read
// on the host (its overlay's upper layer, or its tree against the unpacked archive), never from
// inside the session's sandbox or from its .git; a fresh overlay on the shared unpacked archive
// (a fresh unpack without overlays) gets them, and a one-shot `codeset sandboxd` in namespaces
// of its own, confined like a session's sandbox, runs the oracle there and prints the result.
// The session's sandbox is only read. A session's verifications run one at a time.
func (r *Runtime) verify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, req sandbox.VerifyRequest) (sandbox.VerifyResult, error) {
	dir, err := r.dir(info.Name)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	if _, err := os.Stat(dir); err != nil {
		return sandbox.VerifyResult{}, fmt.Errorf("%w: session %s", sandbox.ErrNotFound, info.Name)
	}
	release, err := r.oracles.Take(ctx, info.Name)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	defer release()
	if err := os.MkdirAll(r.oraclesDir(), 0o700); err != nil {
		return sandbox.VerifyResult{}, err
	}
	odir, err := os.MkdirTemp(r.oraclesDir(), info.Name+"-")
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	defer os.RemoveAll(odir)

	if spec, err = r.withArchiveFile(ctx, spec); err != nil {
		return sandbox.VerifyResult{}, err
	}
	pristine, err := r.pristine(spec.Env)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	layer := filepath.Join(odir, "changes.tar")
	if err := r.sessionChanges(dir, spec.Env, pristine, layer); err != nil {
		return sandbox.VerifyResult{}, err
	}
	req.Changes = nil
	reqFile := filepath.Join(odir, "request.json")
	b, err := json.Marshal(req)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	if err := os.WriteFile(reqFile, b, 0o600); err != nil {
		return sandbox.VerifyResult{}, err
	}

	// The oracle's own tree, built as a session's: an overlay on the pristine layer where the
	// kernel allows, else a fresh unpack.
	var pass passed
	defer pass.close()
	tree, err := r.prepareTree(ctx, odir, spec.Env, &pass)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	group, err := r.newGroup("oracle", odir)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	defer r.removeGroup("oracle", odir)
	var argv []string
	if r.mode == Namespaces {
		reqName, err := pass.file(reqFile)
		if err != nil {
			return sandbox.VerifyResult{}, err
		}
		layerName, err := pass.file(layer)
		if err != nil {
			return sandbox.VerifyResult{}, err
		}
		args := append([]string{"--oracle-request", reqName, "--oracle-changes", layerName, "--work-dir", tree.WorkDir}, tree.Flags...)
		args = append(args, r.limitArgs(group, odir, &pass)...)
		if argv, err = r.namespacesArgv(&pass, "oracle-init", args); err != nil {
			return sandbox.VerifyResult{}, err
		}
	} else {
		argv = append([]string{r.binary, "sandboxd", "--oracle-request", reqFile, "--oracle-changes", layer, "--work-dir", tree.WorkDir}, tree.Flags...)
		argv = append(argv, r.limitArgs(group, odir, &pass)...)
	}
	return r.runOracle(ctx, odir, argv, group, tree.Env, pass.files)
}

// StartVerify runs verify on its own under id (sandbox.Runtime).
func (r *Runtime) StartVerify(_ context.Context, info sandbox.Info, spec sandbox.Spec, req sandbox.VerifyRequest, id string) error {
	r.verifications.Start(id, func(ctx context.Context) (sandbox.VerifyResult, error) {
		return r.verify(ctx, info, spec, req)
	})
	return nil
}

// AwaitVerify waits for the oracle run id (sandbox.Runtime).
func (r *Runtime) AwaitVerify(ctx context.Context, _ sandbox.Info, _ sandbox.Spec, id string, wait time.Duration) (sandbox.VerifyResult, bool, error) {
	return r.verifications.Await(ctx, id, wait)
}

// StopVerify stops the oracle run id, killing its processes (sandbox.Runtime).
func (r *Runtime) StopVerify(_ context.Context, _ sandbox.Info, _ sandbox.Spec, id string) error {
	r.verifications.Stop(id)
	return nil
}

// runOracle starts the one-shot oracle and reads its answer. It dies with the caller: a
// verification is never resumed after a restart, and a cancelled one (the session ended) ends
// every process of the oracle at once. It starts in group (nil: none).
func (r *Runtime) runOracle(ctx context.Context, odir string, argv []string, group *group, env []string, files []*os.File) (sandbox.VerifyResult, error) {
	logFile, err := os.OpenFile(filepath.Join(odir, "oracle.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	defer logFile.Close()
	var stdout bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = files
	cmd.Dir = odir
	cmd.Env = env
	if env == nil {
		cmd.Env = r.sandboxEnv()
	}
	cmd.Env = append(cmd.Env, Mark(odir))
	cmd.Stdout, cmd.Stderr = &stdout, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if r.userns {
		inUserNamespace(cmd)
	}
	if err := r.startIn(group, cmd); err != nil {
		return sandbox.VerifyResult{}, fmt.Errorf("start the oracle: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		r.killTree(context.WithoutCancel(ctx), cmd.Process.Pid)
		<-done
		return sandbox.VerifyResult{}, context.Cause(ctx)
	}
	var ans sandbox.OracleAnswer
	if err := json.Unmarshal(stdout.Bytes(), &ans); err != nil {
		return sandbox.VerifyResult{}, fmt.Errorf("%w: the oracle ended without an answer (%v): %s", sandbox.ErrUnreachable, werr, tail(filepath.Join(odir, "oracle.log")))
	}
	switch {
	case ans.Rejected != "":
		return sandbox.VerifyResult{}, &sandbox.Rejection{Reason: ans.Reason, Message: ans.Rejected}
	case ans.Error != "":
		return sandbox.VerifyResult{}, fmt.Errorf("oracle: %s", ans.Error)
	case ans.Result == nil:
		return sandbox.VerifyResult{}, errors.New("oracle: an empty answer")
	}
	return *ans.Result, nil
}

// pristine is the sample's environment as it was imported, unpacked once and shared read-only
// (an empty directory for an environment without an archive).
func (r *Runtime) pristine(env sandbox.Environment) (string, error) {
	if env.Archive == "" {
		empty := filepath.Join(r.envsDir(), "empty")
		return empty, os.MkdirAll(empty, 0o755)
	}
	return r.unpacked(r.archivePath(env))
}

// sessionChanges writes the session's changes to its work tree as a layer: its overlay's upper
// layer when it has one (only what changed, whatever the tree's size), else its tree compared
// with the pristine one. Both are read on the host, where the session's processes cannot
// interfere but by changing their own files.
func (r *Runtime) sessionChanges(dir string, spec sandbox.Environment, pristine, layer string) error {
	f, err := os.OpenFile(layer, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	upper := filepath.Join(dir, "upper")
	if _, serr := os.Stat(upper); serr == nil {
		_, err = changes.FromUpper(f, upper, treeSub(spec, pristine), changes.Limits{})
	} else {
		// A tree unpacked for the session: on the host in its directory (whatever path its
		// processes see it at).
		_, err = changes.Diff(f, workTree(pristine), workTree(filepath.Join(dir, treeName(spec))), changes.Limits{})
	}
	if errors.Is(err, changes.ErrTooLarge) {
		return &sandbox.Rejection{Reason: sandbox.RejectChanges, Message: fmt.Sprintf("the session's changes to its work tree are too large to grade: %v", err)}
	}
	if err != nil {
		return fmt.Errorf("read the session's changes: %w", err)
	}
	return f.Close()
}

// archivePath is the environment's archive on this machine.
func (r *Runtime) archivePath(env sandbox.Environment) string {
	if filepath.IsAbs(env.Archive) {
		return env.Archive
	}
	return filepath.Join(r.dataDir, env.Archive)
}

// treeName is the name of the directory a sandbox's tree is mounted on: the last element of the
// environment's work dir.
func treeName(env sandbox.Environment) string {
	name := filepath.Base(env.WorkDir)
	if name == "." || name == "/" || name == "" {
		name = "repo"
	}
	return name
}
