package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
)

// Runs are commands the agent runs on its own, by an id its caller chose (the interaction's):
// no request holds them, so a command may outlast any one request (a Pub/Sub push ends at its
// ack deadline), and whoever asks next, from any instance, finds it by its id. A known id is
// never started again, so a redelivered request cannot run a command twice.
type runs struct {
	mu   sync.Mutex
	byID map[string]*run
	// ended lists the ended runs, oldest first: past the limits below the oldest results are
	// dropped. Their caller has long recorded them; a caller that had not gets ErrNoSuchRun and
	// records the command as lost rather than wait forever.
	ended []string
	kept  int64 // bytes of output of the ended runs still kept
}

// The results an agent keeps: enough for every caller that is still waiting, bounded so that a
// session of thousands of commands does not grow the agent without end.
const (
	maxEndedRuns = 256
	maxKeptBytes = 64 << 20
)

type run struct {
	done chan struct{}
	end  sandbox.RunState // its result or answer, set before done is closed
}

// size is what the ended run keeps in memory.
func (r *run) size() int64 {
	var n int
	if res := r.end.Result; res != nil {
		n += len(res.Stdout) + len(res.Stderr)
	}
	if a := r.end.Answer; a != nil && a.Result != nil {
		n += len(a.Result.Stdout) + len(a.Result.Stderr)
		for _, rep := range a.Result.Reports {
			n += len(rep)
		}
	}
	return int64(n)
}

// start returns the run of id, starting it with begin if the id is new.
func (rs *runs) start(id string, begin func() sandbox.RunState) *run {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.byID[id]; ok {
		return r
	}
	if rs.byID == nil {
		rs.byID = make(map[string]*run)
	}
	r := &run{done: make(chan struct{})}
	rs.byID[id] = r
	go func() {
		r.end = begin()
		r.end.ID, r.end.Done = id, true
		close(r.done)
		rs.ended1(id, r.size())
	}()
	return r
}

// ended1 records that run id ended with n bytes of output, and drops the oldest results past the
// limits.
func (rs *runs) ended1(id string, n int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.ended = append(rs.ended, id)
	rs.kept += n
	for len(rs.ended) > 1 && (len(rs.ended) > maxEndedRuns || rs.kept > maxKeptBytes) {
		old := rs.ended[0]
		rs.ended = rs.ended[1:]
		if r, ok := rs.byID[old]; ok {
			rs.kept -= r.size()
			delete(rs.byID, old)
		}
	}
}

func (rs *runs) get(id string) (*run, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[id]
	return r, ok
}

// await waits up to wait (or until the request ends) for r, and answers its state.
func (r *run) await(req *http.Request, id string, wait time.Duration) sandbox.RunState {
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
		case <-req.Context().Done():
		}
	}
	select {
	case <-r.done:
		return r.end
	default:
		return sandbox.RunState{ID: id}
	}
}

// startRun serves POST PathRuns.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	var req sandbox.RunRequest
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.ID == "" || len(req.ID) > sandbox.MaxRunID:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a run needs an id of 1 to %d bytes", sandbox.MaxRunID))
		return
	case req.Verify != nil && !s.oracle:
		writeError(w, http.StatusConflict, "this is a session's sandbox: verification runs in an oracle sandbox of its own")
		return
	case req.Verify == nil && req.Command == "":
		writeError(w, http.StatusBadRequest, "command is empty")
		return
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.defaultTimeout
	}
	// The run's context is not the request's: it goes on until it ends or times out.
	run := s.runs.start(req.ID, func() sandbox.RunState {
		if v := req.Verify; v != nil {
			var layer io.Reader
			if len(v.Changes) > 0 {
				layer = bytes.NewReader(v.Changes)
			}
			a := s.Answer(context.Background(), *v, layer)
			return sandbox.RunState{Answer: &a}
		}
		res := s.run(context.Background(), s.workDir, req.Command, timeout, sandbox.OutputLimit)
		return sandbox.RunState{Result: &res}
	})
	writeJSON(w, http.StatusOK, run.await(r, req.ID, req.Wait))
}

// awaitRun serves GET PathRuns/{id}?wait=30s.
func (s *Server) awaitRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "wait must be a duration such as 30s")
			return
		}
		wait = d
	}
	run, ok := s.runs.get(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, sandbox.ErrorResponse{Error: fmt.Sprintf("no run %q: never started here, or its result was dropped", id), Reason: sandbox.ReasonNoSuchRun})
		return
	}
	writeJSON(w, http.StatusOK, run.await(r, id, wait))
}
