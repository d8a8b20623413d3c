// Package fakejobs is a fake of the Cloud Run Admin REST API (v2) for jobs, for tests: jobs are
// read and created (a long-running operation done at once), and RunJob starts an execution
// whose task runs Exec with the job's container environment merged with the run's overrides,
// as the container would see it; the execution is listed with that environment.
package fakejobs

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/codeset/codeset/shared/sandbox/cloudrun/fakerun"
)

// Server is the fake API.
type Server struct {
	*httptest.Server
	// Exec is the task of an execution, given its container's image and environment; it runs
	// in a goroutine of its own, as a container runs on its own. Nil runs nothing.
	Exec func(image string, env map[string]string)

	mu         sync.Mutex
	jobs       map[string]*runpb.Job
	runs       map[string][]*runpb.RunJobRequest // by job name, as the client sent them
	executions map[string][]*runpb.Execution     // by job name
	tasks      sync.WaitGroup
	n          int
}

// New starts the fake; it stops with the test, once every task has returned.
func New(t testing.TB) *Server {
	s := &Server{jobs: map[string]*runpb.Job{}, runs: map[string][]*runpb.RunJobRequest{}, executions: map[string][]*runpb.Execution{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.tasks.Wait()
		s.Server.Close()
	})
	return s
}

// AddJob defines a job, as Terraform would: name is a full resource name.
func (s *Server) AddJob(name, image string, env map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &runpb.Container{Image: image}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		c.Env = append(c.Env, &runpb.EnvVar{Name: k, Values: &runpb.EnvVar_Value{Value: env[k]}})
	}
	s.jobs[name] = &runpb.Job{Name: name, Labels: map[string]string{"app": "codeset"},
		Template: &runpb.ExecutionTemplate{TaskCount: 1, Template: &runpb.TaskTemplate{Containers: []*runpb.Container{c}}}}
}

// Job is the job's definition, or nil.
func (s *Server) Job(name string) *runpb.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[name]
}

// Runs are the RunJob requests made on a job.
func (s *Server) Runs(name string) []*runpb.RunJobRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*runpb.RunJobRequest(nil), s.runs[name]...)
}

// Wait returns once every execution's task has returned.
func (s *Server) Wait() { s.tasks.Wait() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		fakerun.APIError(w, http.StatusNotFound, "NOT_FOUND", "no such method "+r.URL.Path)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, ":run"):
		s.run(w, r, strings.TrimSuffix(path, ":run"))
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/jobs"):
		s.create(w, r, strings.TrimSuffix(path, "/jobs"))
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/executions"):
		name := strings.TrimSuffix(path, "/executions")
		fakerun.WriteProto(w, &runpb.ListExecutionsResponse{Executions: s.executions[name]})
	case r.Method == http.MethodGet && strings.Contains(path, "/jobs/"):
		job := s.jobs[path]
		if job == nil {
			fakerun.APIError(w, http.StatusNotFound, "NOT_FOUND", "Resource '"+path+"' was not found")
			return
		}
		fakerun.WriteProto(w, job)
	default:
		fakerun.APIError(w, http.StatusNotFound, "NOT_FOUND", "no such method "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, parent string) {
	body, _ := io.ReadAll(r.Body)
	job := &runpb.Job{}
	if err := protojson.Unmarshal(body, job); err != nil {
		fakerun.APIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "bad job: "+err.Error())
		return
	}
	name := parent + "/jobs/" + r.URL.Query().Get("jobId")
	if s.jobs[name] != nil {
		fakerun.APIError(w, http.StatusConflict, "ALREADY_EXISTS", "Resource '"+name+"' already exists.")
		return
	}
	job.Name = name
	s.jobs[name] = job
	resp, _ := anypb.New(job)
	s.n++
	fakerun.WriteProto(w, &longrunningpb.Operation{Name: fmt.Sprintf("%s/operations/op-%d", parent, s.n), Done: true,
		Result: &longrunningpb.Operation_Response{Response: resp}})
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, name string) {
	job := s.jobs[name]
	if job == nil {
		fakerun.APIError(w, http.StatusNotFound, "NOT_FOUND", "Resource '"+name+"' was not found")
		return
	}
	body, _ := io.ReadAll(r.Body)
	req := &runpb.RunJobRequest{}
	if err := protojson.Unmarshal(body, req); err != nil {
		fakerun.APIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "bad request: "+err.Error())
		return
	}
	s.runs[name] = append(s.runs[name], req)
	// The task's container: the job's, with the overrides' variables replacing or adding.
	tmpl := proto.Clone(job.GetTemplate().GetTemplate()).(*runpb.TaskTemplate)
	c := tmpl.GetContainers()[0]
	env := map[string]string{}
	for _, v := range c.GetEnv() {
		env[v.GetName()] = v.GetValue()
	}
	for _, o := range req.GetOverrides().GetContainerOverrides() {
		for _, v := range o.GetEnv() {
			env[v.GetName()] = v.GetValue()
		}
	}
	c.Env = nil
	for _, k := range slices.Sorted(maps.Keys(env)) {
		c.Env = append(c.Env, &runpb.EnvVar{Name: k, Values: &runpb.EnvVar_Value{Value: env[k]}})
	}
	s.n++
	exec := &runpb.Execution{Name: fmt.Sprintf("%s/executions/%s-%05d", name, name[strings.LastIndex(name, "/")+1:], s.n),
		Job: name, CreateTime: timestamppb.Now(), TaskCount: 1, Template: tmpl}
	s.executions[name] = append(s.executions[name], exec)
	md, _ := anypb.New(exec)
	fakerun.WriteProto(w, &longrunningpb.Operation{Name: fmt.Sprintf("%s/operations/op-%d", name[:strings.Index(name, "/jobs/")], s.n), Metadata: md})
	if s.Exec != nil {
		s.tasks.Add(1)
		go func() {
			defer s.tasks.Done()
			s.Exec(c.GetImage(), env)
		}()
	}
}
