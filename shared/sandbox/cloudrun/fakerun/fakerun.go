// Package fakerun is a fake of the Cloud Run Admin REST API (v2) for tests: services are
// created through long-running operations that finish after a few polls, and each "instance" is
// the real sandbox agent served over HTTP on the loopback, with the secret and work directory
// the service definition gives it. An image whose name contains "fail" gets a revision that
// never becomes ready, as a container that does not start would. A container given an
// environment archive (the base image) gets it downloaded, checked and unpacked at its work dir
// as `codeset sandboxd` does it; one whose archive cannot be had never becomes ready.
package fakerun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/agent"
	"github.com/codeset/codeset/shared/sandbox/envarchive"
)

// Server is the fake API.
type Server struct {
	*httptest.Server
	// PollsUntilDone is how many polls of an operation answer "not done" first.
	PollsUntilDone int
	// Images, when set, fills each new instance's work dir with what the image holds there
	// (every instance gets a fresh copy, as a container does); nil leaves it empty.
	Images func(image, workDir string) error

	t        testing.TB
	mu       sync.Mutex
	services map[string]*runpb.Service // by full name
	created  map[string]*runpb.Service // the definitions as the client sent them
	policies map[string]*iampb.Policy
	agents   map[string]*httptest.Server
	ops      map[string]*op
	deleted  []string
	nextOp   int
}

type op struct {
	onDone  func() // applied when the operation is first seen done
	polls   int
	done    *longrunningpb.Operation
	pending *longrunningpb.Operation
}

// New starts the fake; it stops with the test.
func New(t testing.TB) *Server {
	s := &Server{t: t, PollsUntilDone: 2, services: map[string]*runpb.Service{}, created: map[string]*runpb.Service{},
		policies: map[string]*iampb.Policy{}, agents: map[string]*httptest.Server{}, ops: map[string]*op{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Server.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.agents {
			a.Close()
		}
	})
	return s
}

// Created is the service definition the client sent for name (a full resource name).
func (s *Server) Created(name string) *runpb.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[name]
}

// Policy is the IAM policy set on name.
func (s *Server) Policy(name string) *iampb.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policies[name]
}

// Exists reports whether the service exists.
func (s *Server) Exists(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[name] != nil
}

// Deleted lists the services deleted so far.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		APIError(w, http.StatusNotFound, "NOT_FOUND", "no such method "+r.URL.Path)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/services"):
		s.create(w, r, strings.TrimSuffix(path, "/services"))
	case r.Method == http.MethodPost && strings.HasSuffix(path, ":setIamPolicy"):
		s.setIAM(w, r, strings.TrimSuffix(path, ":setIamPolicy"))
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/services"):
		s.list(w, strings.TrimSuffix(path, "/services"))
	case r.Method == http.MethodGet && strings.Contains(path, "/operations/"):
		s.poll(w, path)
	case r.Method == http.MethodGet && strings.Contains(path, "/services/"):
		svc := s.services[path]
		if svc == nil {
			APIError(w, http.StatusNotFound, "NOT_FOUND", "Resource '"+path+"' was not found")
			return
		}
		WriteProto(w, svc)
	case r.Method == http.MethodDelete && strings.Contains(path, "/services/"):
		s.delete(w, path)
	default:
		APIError(w, http.StatusNotFound, "NOT_FOUND", "no such method "+r.Method+" "+r.URL.Path)
	}
}

// Plant adds a service that no client of this fake created (one left by an earlier instance of
// the backend): no instance runs for it, and it is listed and deleted like any other.
func (s *Server) Plant(name string, labels map[string]string, created time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[name] = &runpb.Service{Name: name, Labels: labels, CreateTime: timestamppb.New(created),
		TerminalCondition: &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED}}
}

// list answers every service of parent, in one page.
func (s *Server) list(w http.ResponseWriter, parent string) {
	resp := &runpb.ListServicesResponse{}
	for name, svc := range s.services {
		if strings.HasPrefix(name, parent+"/services/") {
			resp.Services = append(resp.Services, svc)
		}
	}
	sort.Slice(resp.Services, func(i, j int) bool { return resp.Services[i].GetName() < resp.Services[j].GetName() })
	WriteProto(w, resp)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, parent string) {
	id := r.URL.Query().Get("serviceId")
	body, _ := io.ReadAll(r.Body)
	svc := &runpb.Service{}
	if err := protojson.Unmarshal(body, svc); err != nil {
		APIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "bad service: "+err.Error())
		return
	}
	name := parent + "/services/" + id
	if id == "" || s.services[name] != nil {
		APIError(w, http.StatusConflict, "ALREADY_EXISTS", "Resource '"+name+"' already exists.")
		return
	}
	s.created[name] = proto.Clone(svc).(*runpb.Service)
	svc.Name = name
	svc.CreateTime = timestamppb.Now()
	svc.Reconciling = true
	s.services[name] = svc
	revision := id + "-00001-abc"
	c := svc.GetTemplate().GetContainers()
	final := &longrunningpb.Operation{Done: true}
	var a *httptest.Server
	var startErr error
	if len(c) == 1 && !strings.Contains(c[0].GetImage(), "fail") {
		if a, startErr = s.startAgent(c[0]); startErr != nil {
			var refused *agentRefused
			if !errors.As(startErr, &refused) {
				APIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", startErr.Error())
				return
			}
		}
	}
	if a == nil {
		msg := fmt.Sprintf("Revision '%s' is not ready and cannot serve traffic. The user-provided container failed to start and listen on the port defined provided by the PORT=8080 environment variable within the allocated timeout.", revision)
		if startErr != nil {
			msg += " Logs: " + startErr.Error()
		}
		final.Result = &longrunningpb.Operation_Error{Error: &status.Status{Code: 9, Message: msg}}
		svc.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_FAILED, Message: msg}
	} else {
		s.agents[name] = a
		ready := proto.Clone(svc).(*runpb.Service)
		ready.Reconciling = false
		ready.Uri = a.URL
		ready.LatestReadyRevision = parent + "/services/" + id + "/revisions/" + revision
		ready.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED}
		resp, _ := anypb.New(ready)
		final.Result = &longrunningpb.Operation_Response{Response: resp}
		// The service shows ready once the operation is done; until then it reconciles.
		WriteProto(w, s.newOp(parent, final, func() {
			if s.services[name] != nil {
				s.services[name] = ready
			}
		}))
		return
	}
	WriteProto(w, s.newOp(parent, final, nil))
}

// startAgent runs the real agent as the container would, with the env the definition gives.
func (s *Server) startAgent(c *runpb.Container) (*httptest.Server, error) {
	env := map[string]string{}
	for _, e := range c.GetEnv() {
		env[e.GetName()] = e.GetValue()
	}
	wd := filepath.Join(s.t.TempDir(), strings.TrimPrefix(env["CODESET_SANDBOX_WORK_DIR"], "/"))
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, err
	}
	if s.Images != nil {
		if err := s.Images(c.GetImage(), wd); err != nil {
			return nil, err
		}
	}
	if url := env[sandbox.ArchiveURLEnv]; url != "" {
		// What `codeset sandboxd` does in the base image before it listens; a container whose
		// agent exits there never becomes ready.
		size, _ := strconv.ParseInt(env[sandbox.ArchiveSizeEnv], 10, 64)
		ref := blob.Ref{Digest: env[sandbox.ArchiveDigestEnv], Size: size}
		if err := envarchive.Fetch(context.Background(), nil, url, ref, wd); err != nil {
			return nil, &agentRefused{err}
		}
	}
	// The agent's own flags, as `codeset sandboxd` reads them from the container's args.
	opts := agent.Options{WorkDir: wd, Secret: env[sandbox.SecretEnv]}
	for _, arg := range c.GetArgs() {
		switch arg {
		case "--oracle":
			opts.Oracle = true
		case "--track-changes":
			opts.TrackChanges = true
		}
	}
	a, err := agent.New(opts)
	if err != nil {
		return nil, err
	}
	return httptest.NewServer(a), nil
}

// agentRefused: the agent exited before it listened, as a container that fails to start.
type agentRefused struct{ err error }

func (e *agentRefused) Error() string { return "sandboxd: " + e.err.Error() }

func (s *Server) newOp(parent string, final *longrunningpb.Operation, onDone func()) *longrunningpb.Operation {
	s.nextOp++
	name := fmt.Sprintf("%s/operations/op-%d", parent, s.nextOp)
	final.Name = name
	o := &op{done: final, pending: &longrunningpb.Operation{Name: name}, onDone: onDone}
	s.ops[name] = o
	if s.PollsUntilDone <= 0 {
		return o.finish()
	}
	return o.pending
}

func (o *op) finish() *longrunningpb.Operation {
	if o.onDone != nil {
		o.onDone()
		o.onDone = nil
	}
	return o.done
}

func (s *Server) poll(w http.ResponseWriter, name string) {
	o := s.ops[name]
	if o == nil {
		APIError(w, http.StatusNotFound, "NOT_FOUND", "operation "+name+" not found")
		return
	}
	o.polls++
	if o.polls < s.PollsUntilDone {
		WriteProto(w, o.pending)
		return
	}
	WriteProto(w, o.finish())
}

func (s *Server) setIAM(w http.ResponseWriter, r *http.Request, resource string) {
	if s.services[resource] == nil {
		APIError(w, http.StatusNotFound, "NOT_FOUND", "Resource '"+resource+"' was not found")
		return
	}
	body, _ := io.ReadAll(r.Body)
	req := &iampb.SetIamPolicyRequest{}
	if err := protojson.Unmarshal(body, req); err != nil {
		APIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
		return
	}
	s.policies[resource] = req.GetPolicy()
	WriteProto(w, req.GetPolicy())
}

func (s *Server) delete(w http.ResponseWriter, name string) {
	svc := s.services[name]
	if svc == nil {
		APIError(w, http.StatusNotFound, "NOT_FOUND", "Resource '"+name+"' was not found")
		return
	}
	delete(s.services, name)
	if a := s.agents[name]; a != nil {
		a.Close()
		delete(s.agents, name)
	}
	s.deleted = append(s.deleted, name)
	resp, _ := anypb.New(svc)
	parent := name[:strings.Index(name, "/services/")]
	WriteProto(w, s.newOp(parent, &longrunningpb.Operation{Done: true, Result: &longrunningpb.Operation_Response{Response: resp}}, nil))
}

// WriteProto answers m as the Admin API's REST transport does (JSON); fakes of its other
// services (Cloud Run jobs) answer the same way.
func WriteProto(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		APIError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// APIError answers a Google API error in its JSON shape.
func APIError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
}
