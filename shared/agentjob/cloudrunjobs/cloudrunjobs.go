// Package cloudrunjobs runs agent jobs on GCP: one execution of a Cloud Run job per agent job,
// started by RunJob with the job as environment overrides (worker.Env*) on a configured job
// whose image runs `codeset agent-job run`. The execution reports back by itself: it PUTs the
// result to the signed ResultURL and POSTs the completion to CompletionURL, so Launch returns as
// soon as the execution is accepted and no request waits for the work.
//
// Which Cloud Run job: the configured one (Options.Job, CODESET_AGENT_JOB_NAME) for agents
// without an image of their own (the demo, and agents whose CLI the default runner image
// holds); for an agent with Agent.Image, the job "<Options.Job>-<agent id>", created on first
// use from the configured job's definition with that image.
package cloudrunjobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/worker"
	"github.com/codeset/codeset/shared/blob"
)

// Options configure the runner.
type Options struct {
	Project, Region string
	// Job is the id of the configured Cloud Run job (CODESET_AGENT_JOB_NAME).
	Job string
	// Signer signs the download URL of an environment archive (the demo dataset's
	// repositories); nil: such jobs fail at launch.
	Signer blob.Signer
	// Timeout bounds an execution's task (default worker.DefaultTimeout plus 10 minutes to
	// prepare the repository and deliver the result); the agent itself gets worker's default.
	Timeout time.Duration
	// ClientOptions go to the Cloud Run Admin API clients (tests: option.WithEndpoint of a fake,
	// option.WithoutAuthentication).
	ClientOptions []option.ClientOption
	// Log receives one line per execution started; nil discards.
	Log *slog.Logger
}

// Runner starts agent jobs as Cloud Run job executions.
type Runner struct {
	opts       Options
	jobs       *run.JobsClient
	executions *run.ExecutionsClient
	launched   sync.Map // job id -> struct{}: launched by this instance
	created    sync.Map // Cloud Run job name -> struct{}: known to exist with its image
}

var _ agentjob.Runner = (*Runner)(nil)

// New connects to the Cloud Run Admin API over REST.
func New(ctx context.Context, opts Options) (*Runner, error) {
	if opts.Project == "" || opts.Region == "" || opts.Job == "" {
		return nil, errors.New("cloud run agent jobs: project, region and job (CODESET_AGENT_JOB_NAME) are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = worker.DefaultTimeout + 10*time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	jobs, err := run.NewJobsRESTClient(ctx, opts.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("cloud run agent jobs: admin client: %w", err)
	}
	executions, err := run.NewExecutionsRESTClient(ctx, opts.ClientOptions...)
	if err != nil {
		jobs.Close()
		return nil, fmt.Errorf("cloud run agent jobs: admin client: %w", err)
	}
	return &Runner{opts: opts, jobs: jobs, executions: executions}, nil
}

// Close releases the Admin API clients.
func (r *Runner) Close() error { return errors.Join(r.jobs.Close(), r.executions.Close()) }

// Describe says, for the start-up log, where agent jobs run.
func (r *Runner) Describe() string {
	return fmt.Sprintf("agent jobs as executions of the Cloud Run job %s", r.jobName(r.opts.Job))
}

func (r *Runner) parent() string {
	return fmt.Sprintf("projects/%s/locations/%s", r.opts.Project, r.opts.Region)
}

func (r *Runner) jobName(id string) string { return r.parent() + "/jobs/" + id }

var jobIDBad = regexp.MustCompile(`[^a-z0-9-]`)

// JobFor is the Cloud Run job id that runs agent: the configured job, or for an agent with an
// image of its own "<job>-<agent id>" (lower case, '_' as '-', at most 63 characters).
func JobFor(base string, agent agentjob.Agent) string {
	if agent.Image == "" {
		return base
	}
	id := base + "-" + jobIDBad.ReplaceAllString(strings.ToLower(agent.ID), "-")
	return strings.TrimRight(id[:min(len(id), 63)], "-")
}

// Launch starts one execution for the job. A job this instance launched, or whose execution is
// listed on the Cloud Run job already (another instance, a redelivery), is not started again.
func (r *Runner) Launch(ctx context.Context, spec agentjob.Spec) error {
	job, err := r.overrides(ctx, spec)
	if err != nil {
		return err
	}
	if _, loaded := r.launched.LoadOrStore(spec.JobID, struct{}{}); loaded {
		return nil
	}
	started := false
	defer func() {
		if !started {
			r.launched.Delete(spec.JobID) // not started: a later Launch may try again
		}
	}()
	name := r.jobName(JobFor(r.opts.Job, spec.Agent))
	if err := r.ensureJob(ctx, name, spec.Agent.Image); err != nil {
		return err
	}
	if exec, err := r.existing(ctx, name, spec.JobID); err != nil {
		return err
	} else if exec != "" {
		started = true
		r.opts.Log.Info("agent job already has an execution", "job_id", spec.JobID, "execution", exec)
		return nil
	}
	var env []*runpb.EnvVar
	for _, kv := range job.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, &runpb.EnvVar{Name: k, Values: &runpb.EnvVar_Value{Value: v}})
	}
	op, err := r.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: name, Overrides: &runpb.RunJobRequest_Overrides{
		ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Env: env}},
		TaskCount:          1,
		Timeout:            durationpb.New(r.opts.Timeout),
	}})
	if err != nil {
		return fmt.Errorf("cloud run agent jobs: run %s for job %s: %w", name, spec.JobID, err)
	}
	started = true
	exec := ""
	if md, err := op.Metadata(); err == nil && md != nil {
		exec = md.GetName()
	}
	r.opts.Log.Info("agent job execution started", "job_id", spec.JobID, "job", name, "execution", exec)
	return nil
}

// overrides is the job as the execution's environment.
func (r *Runner) overrides(ctx context.Context, spec agentjob.Spec) (worker.Job, error) {
	if spec.JobID == "" || spec.CompletionURL == "" || spec.ResultURL == "" || spec.Secret == "" {
		return worker.Job{}, fmt.Errorf("cloud run agent jobs: job %q needs a completion URL, a result URL and a secret", spec.JobID)
	}
	j := worker.Job{JobID: spec.JobID, Repo: spec.Repo, Ref: spec.Ref, AgentID: spec.Agent.ID, Command: spec.Agent.Command,
		GitURL: spec.Source.GitURL, GitToken: spec.Source.Token, CompletionURL: spec.CompletionURL,
		ProgressURL: spec.ProgressURL, Secret: spec.Secret, ResultURL: spec.ResultURL}
	switch {
	case spec.Source.GitURL != "":
	case spec.Source.Archive != nil:
		if r.opts.Signer == nil {
			return worker.Job{}, fmt.Errorf("cloud run agent jobs: job %s: an environment archive needs a blob store that signs URLs", spec.JobID)
		}
		url, err := r.opts.Signer.SignedURL(ctx, *spec.Source.Archive, r.opts.Timeout+time.Hour)
		if err != nil {
			return worker.Job{}, fmt.Errorf("cloud run agent jobs: job %s: sign the archive's URL: %w", spec.JobID, err)
		}
		j.ArchiveURL, j.Archive = url, spec.Source.Archive
	case spec.Source.Dir != "":
		return worker.Job{}, fmt.Errorf("cloud run agent jobs: job %s: a local directory is not reachable from Cloud Run", spec.JobID)
	default:
		return worker.Job{}, fmt.Errorf("cloud run agent jobs: job %s names no repository", spec.JobID)
	}
	return j, nil
}

// ensureJob makes sure the Cloud Run job for an agent with an image of its own exists with
// that image: created from the configured job's definition on first use.
func (r *Runner) ensureJob(ctx context.Context, name, image string) error {
	if image == "" {
		return nil
	}
	if _, ok := r.created.Load(name); ok {
		return nil
	}
	job, err := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: name})
	switch {
	case err == nil:
		if got := containerImage(job); got != image {
			return fmt.Errorf("cloud run agent jobs: the job %s runs %s, not the agent's image %s: update or delete it", name, got, image)
		}
	case notFound(err):
		base, err := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: r.jobName(r.opts.Job)})
		if err != nil {
			return fmt.Errorf("cloud run agent jobs: read the configured job %s: %w", r.opts.Job, err)
		}
		tmpl := proto.Clone(base.GetTemplate()).(*runpb.ExecutionTemplate)
		if cs := tmpl.GetTemplate().GetContainers(); len(cs) == 1 {
			cs[0].Image = image
		} else {
			return fmt.Errorf("cloud run agent jobs: the configured job %s has %d containers, want 1", r.opts.Job, len(cs))
		}
		id := name[strings.LastIndex(name, "/")+1:]
		op, err := r.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: r.parent(), JobId: id,
			Job: &runpb.Job{Labels: base.GetLabels(), LaunchStage: base.GetLaunchStage(), Template: tmpl}})
		if err != nil && !alreadyExists(err) {
			return fmt.Errorf("cloud run agent jobs: create the job %s: %w", name, err)
		}
		if err == nil {
			if _, err := op.Wait(ctx); err != nil {
				return fmt.Errorf("cloud run agent jobs: create the job %s: %w", name, err)
			}
		}
	default:
		return fmt.Errorf("cloud run agent jobs: read the job %s: %w", name, err)
	}
	r.created.Store(name, struct{}{})
	return nil
}

// existing is the execution of name that runs jobID, if any: found by the job id among its
// containers' environment.
func (r *Runner) existing(ctx context.Context, name, jobID string) (string, error) {
	it := r.executions.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: name})
	for {
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("cloud run agent jobs: list the executions of %s: %w", name, err)
		}
		for _, c := range e.GetTemplate().GetContainers() {
			for _, v := range c.GetEnv() {
				if v.GetName() == worker.EnvJobID && v.GetValue() == jobID {
					return e.GetName(), nil
				}
			}
		}
	}
}

func containerImage(job *runpb.Job) string {
	if cs := job.GetTemplate().GetTemplate().GetContainers(); len(cs) > 0 {
		return cs[0].GetImage()
	}
	return ""
}

func notFound(err error) bool      { return is(err, http.StatusNotFound, codes.NotFound) }
func alreadyExists(err error) bool { return is(err, http.StatusConflict, codes.AlreadyExists) }

// is reports whether err is the API's answer httpCode (REST) or grpcCode.
func is(err error, httpCode int, grpcCode codes.Code) bool {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.HTTPCode() == httpCode || ae.GRPCStatus().Code() == grpcCode
	}
	return false
}
