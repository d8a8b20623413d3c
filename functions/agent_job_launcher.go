package functions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/ids"
)

// launchAgentJob is the agent-job launcher, a process manager fed agent_job.accepted: it claims
// the queued job on its stream (agent_job.started, with the hash of a completion secret it
// generates) and only the delivery whose claim was appended launches it, so a job is launched
// once however often the event is delivered, and by whichever instance. The secret exists only
// in this call and in the runner: nothing stores it. A runner that refuses the job, or a
// server without a runner, fails it and so refunds it; a launcher that dies between its claim
// and the launch leaves the job running until the agent-job reaper times it out and refunds it.
func launchAgentJob(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, events.AgentJobStreamPrefix)
	j, ok, err := loadAgentJob(ctx, a, id)
	if err != nil || !ok || j.Status != events.AgentJobStatusQueued {
		return err
	}
	agents, err := agentTable(a)
	if err != nil {
		return err
	}
	agent, known := agentjob.Find(agents, j.AgentID)
	switch {
	case !known:
		return failAgentJob(ctx, a, id, events.CodeLaunchFailed, fmt.Sprintf("agent %q is no longer configured on this server", j.AgentID))
	case a.AgentRunner == nil:
		return failAgentJob(ctx, a, id, events.CodeLaunchFailed, "this server has no agent-job runner configured (on Cloud Run: set CODESET_AGENT_JOB_NAME)")
	}
	secret, err := newCompletionSecret()
	if err != nil {
		return err
	}
	claimed, stored, err := updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
		return j.Start(ids.New(), a.Clock.Now(), events.HashSecret(secret))
	})
	if err != nil || len(stored) == 0 {
		return err // another delivery claimed it, or it ended meanwhile
	}
	spec, err := agentJobSpec(ctx, a, claimed, agent, secret)
	if err == nil {
		err = a.AgentRunner.Launch(ctx, spec)
	}
	if err != nil {
		return failAgentJob(context.WithoutCancel(ctx), a, id, events.CodeLaunchFailed, "the job could not be launched: "+err.Error())
	}
	return nil
}

// newCompletionSecret is 32 random bytes, hex.
func newCompletionSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("completion secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// failAgentJob fails job id (and so refunds it) unless it ended already.
func failAgentJob(ctx context.Context, a *app.App, id, code, message string) error {
	_, _, err := updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
		return j.Fail(ids.New(), a.Clock.Now(), code, message)
	})
	return err
}

// resultURLMargin is how long past the job's own time its result upload URL stays valid.
const resultURLMargin = 10 * time.Minute

// agentJobSpec is what the runner gets for job j: the repository's source (a GitHub token is
// opened now, from the owner's sealed copy), where to report, and where to put the result.
func agentJobSpec(ctx context.Context, a *app.App, j *events.AgentJob, agent agentjob.Agent, secret string) (agentjob.Spec, error) {
	ref := j.Ref
	if ref == "" {
		ref = j.Source.Commit
	}
	spec := agentjob.Spec{JobID: j.JobID, Repo: j.Repo, Ref: ref, Agent: agent, Secret: secret, Blobs: a.Blobs}
	switch j.Source.Kind {
	case events.SourceGitHub:
		token, err := gitHubToken(ctx, a, j.UserID)
		if err != nil {
			return spec, err
		}
		if token == "" {
			return spec, fmt.Errorf("the owner's GitHub token is gone (logged out?): %s cannot be cloned", j.Repo)
		}
		spec.Source = agentjob.Source{GitURL: strings.TrimRight(a.Config.GitHubOAuthURL, "/") + "/" + j.Repo + ".git", Token: token}
	case events.SourceCatalog:
		if j.Source.Archive == nil {
			return spec, fmt.Errorf("the catalog source of %s names no archive", j.Repo)
		}
		spec.Source = agentjob.Source{Archive: &blob.Ref{Digest: j.Source.Archive.Digest, Size: j.Source.Archive.Size}}
	case events.SourceLocal:
		dir := localRepo(a, j.Repo)
		if dir == "" {
			return spec, fmt.Errorf("%s is no longer a git repository under %s", j.Repo, a.Config.LocalReposDir)
		}
		spec.Source = agentjob.Source{Dir: filepath.Clean(dir)}
	default:
		return spec, fmt.Errorf("unknown source kind %q", j.Source.Kind)
	}
	base := apiBaseURL(a) + "/agent-jobs/" + j.JobID
	spec.CompletionURL, spec.ProgressURL = base+"/completion", base+"/progress"
	// A runner on Cloud Run holds no credentials of the bucket: it PUTs its result to a signed
	// URL of an object named for the job, which the completion collects (readResult).
	if a.Config.Runtime == "cloudrun" {
		inbox, ok := a.Blobs.(blob.Inbox)
		if !ok {
			return spec, fmt.Errorf("the blob store %T takes no uploads, which a Cloud Run runner needs", a.Blobs)
		}
		u, err := inbox.UploadURL(ctx, resultUploadName(j.JobID), time.Duration(j.TimeoutSeconds)*time.Second+resultURLMargin)
		if err != nil {
			return spec, err
		}
		spec.ResultURL = u
	}
	return spec, nil
}

// apiBaseURL is where a runner reaches the API: CODESET_PUBLIC_URL, or codeset serve's own
// address (a wildcard host as loopback).
func apiBaseURL(a *app.App) string {
	if u := strings.TrimRight(a.Config.PublicURL, "/"); u != "" {
		return u + app.Prefix
	}
	host, port, err := net.SplitHostPort(a.Config.Addr)
	if err != nil {
		return "http://" + a.Config.Addr + app.Prefix
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + app.Prefix
}

// wantsAgentJobAccepted: the launcher's events.
func wantsAgentJobAccepted(e events.Envelope) bool { return e.Type == events.AgentJobAccepted }
