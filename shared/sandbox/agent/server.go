// Package agent is `codeset sandboxd`, the agent inside every sandbox: an HTTP server that runs
// commands, edits and uploads files and runs the verifier in the sample's work directory, for
// whoever holds the session's secret.
package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/changes"
)

// Request body limits: commands may carry heredocs, test patches can be large; uploads are
// capped at 10 MiB by the API, so anything far above that is a mistake.
const (
	maxJSONBody   = 64 << 20
	maxUploadBody = 64 << 20
)

// Options configure a Server.
type Options struct {
	WorkDir string // the repository; relative paths resolve against it
	Secret  string // the per-session secret every request must carry
	// DefaultTimeout applies to an exec without one (the API's default is 300 s).
	DefaultTimeout time.Duration
	// Grace is how long a timed-out command's group has between SIGTERM and SIGKILL.
	Grace time.Duration
	// Env is the environment of commands; nil means the agent's own minus its secret.
	Env []string
	// Oracle makes this agent an oracle's: its work tree is a fresh pristine copy, it alone
	// answers PathVerify, and it is the subreaper of everything its verifier starts. A
	// session's agent refuses to verify in its own tree, which the agent it grades controls.
	Oracle bool
	// TrackChanges takes a manifest of the work tree at start, from which PathChanges answers
	// the agent's changes: for a sandbox with no pristine copy of its tree beside it (Cloud Run).
	TrackChanges bool
	// Limits, when not nil, are the sandbox's limits: a command's result names those it hit.
	Limits *Watch
}

// Server is the agent's HTTP handler.
type Server struct {
	workDir        string
	secret         []byte
	defaultTimeout time.Duration
	grace          time.Duration
	shell          string
	env            []string
	mux            *http.ServeMux
	oracle         bool
	pristine       *changes.Manifest // with TrackChanges: the work tree as it was at start
	limits         *Watch
	runs           runs
}

// New checks opts and builds the Server.
func New(opts Options) (*Server, error) {
	if opts.Secret == "" {
		return nil, errors.New("agent: a secret is required")
	}
	wd, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent: work dir: %w", err)
	}
	if st, err := os.Stat(wd); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("agent: work dir %s is not a directory", wd)
	}
	s := &Server{workDir: wd, secret: []byte(opts.Secret), defaultTimeout: opts.DefaultTimeout,
		grace: opts.Grace, env: opts.Env, mux: http.NewServeMux(), oracle: opts.Oracle, limits: opts.Limits}
	if opts.Oracle {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("agent: oracle subreaper: %w", err)
		}
	}
	if opts.TrackChanges {
		if s.pristine, err = changes.Snapshot(wd); err != nil {
			return nil, fmt.Errorf("agent: manifest of the work tree: %w", err)
		}
	}
	if s.defaultTimeout <= 0 {
		s.defaultTimeout = 300 * time.Second
	}
	if s.grace <= 0 {
		s.grace = time.Second
	}
	if s.shell, err = exec.LookPath("bash"); err != nil {
		s.shell = "/bin/sh" // a minimal image; the API promises bash, but sh beats nothing
	}
	if s.env == nil {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, sandbox.SecretEnv+"=") {
				s.env = append(s.env, kv)
			}
		}
	}
	s.mux.HandleFunc("GET "+sandbox.PathHealth, s.health)
	s.mux.HandleFunc("POST "+sandbox.PathExec, s.exec)
	s.mux.HandleFunc("POST "+sandbox.PathRuns, s.startRun)
	s.mux.HandleFunc("GET "+sandbox.PathRuns+"/{id}", s.awaitRun)
	s.mux.HandleFunc("POST "+sandbox.PathStrReplace, s.strReplace)
	s.mux.HandleFunc("PUT "+sandbox.PathUpload, s.upload)
	s.mux.HandleFunc("POST "+sandbox.PathVerify, s.verify)
	s.mux.HandleFunc("GET "+sandbox.PathChanges, s.changes)
	return s, nil
}

// ServeHTTP checks the secret, in constant time, before anything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := []byte(r.Header.Get(sandbox.SecretHeader))
	if subtle.ConstantTimeCompare(got, s.secret) != 1 {
		writeError(w, http.StatusUnauthorized, "missing or wrong sandbox secret")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// resolve makes a request's path absolute: relative to the work dir, absolute as it is.
func (s *Server) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(s.workDir, p)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, sandbox.Health{Status: "ok", WorkDir: s.workDir, PID: os.Getpid()})
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req sandbox.ExecRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Command == "" {
		writeError(w, http.StatusBadRequest, "command is empty")
		return
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.defaultTimeout
	}
	writeJSON(w, http.StatusOK, s.run(r.Context(), s.workDir, req.Command, timeout, sandbox.OutputLimit))
}

func (s *Server) strReplace(w http.ResponseWriter, r *http.Request) {
	var req sandbox.StrReplaceRequest
	if !decode(w, r, &req) {
		return
	}
	ok, msg := s.replace(req.Path, req.Old, req.New)
	writeJSON(w, http.StatusOK, sandbox.StrReplaceResponse{OK: ok, Message: msg})
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	path := q.Get("path")
	if path == "" {
		writeError(w, http.StatusBadRequest, "path is required")
		return
	}
	executable, _ := strconv.ParseBool(q.Get("executable"))
	body := http.MaxBytesReader(w, r.Body, maxUploadBody)
	n, abs, err := s.write(path, body, executable)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload over %d bytes", maxUploadBody))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sandbox.UploadResponse{Path: abs, Size: n})
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	if !s.oracle {
		writeError(w, http.StatusConflict, "this is a session's sandbox: verification runs in an oracle sandbox of its own")
		return
	}
	var req sandbox.VerifyRequest
	if !decode(w, r, &req) {
		return
	}
	var layer io.Reader
	if len(req.Changes) > 0 {
		layer = bytes.NewReader(req.Changes)
	}
	res, err := s.Verify(r.Context(), req, layer)
	if err != nil {
		var rej *rejection
		if errors.As(err, &rej) {
			writeJSON(w, http.StatusUnprocessableEntity, sandbox.ErrorResponse{Error: rej.msg, Reason: rej.reason})
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Verify runs the oracle in this agent's tree with the agent's changes read from layer (nil:
// none); an oracle's agent only. A request it refuses for the user's reasons is an error that
// IsRejection recognises.
func (s *Server) Verify(ctx context.Context, req sandbox.VerifyRequest, layer io.Reader) (sandbox.VerifyResult, error) {
	if !s.oracle {
		return sandbox.VerifyResult{}, errors.New("agent: verification runs in an oracle sandbox only")
	}
	return s.runVerify(ctx, req, layer)
}

// Answer is Verify's outcome as an oracle answers it: the result, or why it refused the request
// (the user's problem), or why it failed.
func (s *Server) Answer(ctx context.Context, req sandbox.VerifyRequest, layer io.Reader) sandbox.OracleAnswer {
	res, err := s.Verify(ctx, req, layer)
	if rej, ok := IsRejection(err); ok {
		return sandbox.OracleAnswer{Rejected: rej.Message, Reason: rej.Reason}
	}
	if err != nil {
		return sandbox.OracleAnswer{Error: err.Error()}
	}
	return sandbox.OracleAnswer{Result: &res}
}

// IsRejection reports whether err is a request the agent refused for a reason the user can act
// on (a test patch that does not apply), and says it as the sandbox package does.
func IsRejection(err error) (*sandbox.Rejection, bool) {
	var rej *rejection
	if errors.As(err, &rej) {
		return &sandbox.Rejection{Reason: rej.reason, Message: rej.msg}, true
	}
	return nil, false
}

// changes answers the agent's changes to the work tree since the agent started, as a layer.
func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	if s.pristine == nil {
		writeError(w, http.StatusConflict, "this agent keeps no manifest of its work tree (started without change tracking)")
		return
	}
	var buf bytes.Buffer
	if _, err := s.pristine.Diff(&buf, s.workDir, changes.Limits{MaxBytes: sandbox.MaxChangesBytes}); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, changes.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Write(buf.Bytes())
}

// rejection is a request the agent refuses for a reason the user can act on (422); reason is a
// sandbox.Reject* constant when the caller acts on it.
type rejection struct{ reason, msg string }

func (r *rejection) Error() string { return r.msg }

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, sandbox.ErrorResponse{Error: msg})
}
