package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
)

// Run does the job and delivers its outcome: to the Output file (locally), or as the Result PUT
// to ResultURL followed by the completion POSTed to CompletionURL (in a runner image). An error
// of the agent or the repository is an outcome ("error", with a message), not an error of Run;
// Run fails only when the outcome could not be delivered.
func Run(ctx context.Context, j Job, hc *http.Client, log *slog.Logger) error {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	log = log.With("job_id", j.JobID, "agent_id", j.AgentID, "repo", j.Repo)
	result, err := work(ctx, j, hc, log)
	out := Outcome{Outcome: agentjob.OutcomeCompleted, Result: result}
	if err != nil {
		out = Outcome{Outcome: agentjob.OutcomeError, ErrorMessage: j.scrub(err.Error())}
		log.Warn("agent job failed", "error", out.ErrorMessage)
	}
	if j.Output != "" {
		return writeOutcome(j.Output, out)
	}
	return deliver(ctx, j, hc, out, log)
}

// work prepares the repository, runs the agent and builds the result.
func work(ctx context.Context, j Job, hc *http.Client, log *slog.Logger) (*agentjob.Result, error) {
	if !j.Prepared {
		progress(ctx, j, hc, 5, "preparing the repository", log)
		if j.WorkDir == "" {
			tmp, err := os.MkdirTemp("", "agent-job-")
			if err != nil {
				return nil, err
			}
			j.WorkDir = filepath.Join(tmp, "repo")
		}
		src := agentjob.Source{GitURL: j.GitURL, Token: j.GitToken, Archive: j.Archive}
		if err := Prepare(ctx, src, j.Ref, nil, j.ArchiveURL, j.WorkDir); err != nil {
			return nil, fmt.Errorf("prepare the repository: %w", err)
		}
	}
	commit := Commit(ctx, j.WorkDir)
	progress(ctx, j, hc, 30, "running the agent", log)
	files, err := RunAgent(ctx, j)
	if err != nil {
		return nil, err
	}
	progress(ctx, j, hc, 90, "storing the knowledge base", log)
	return &agentjob.Result{JobID: j.JobID, Repo: j.Repo, Ref: j.Ref, Commit: commit, Files: files}, nil
}

// writeOutcome writes the outcome where the local runner reads it, in one rename: a runner
// never reads half a file.
func writeOutcome(path string, out Outcome) error {
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write the outcome: %w", err)
	}
	return os.Rename(tmp, path)
}

// ReadOutcome reads what the worker wrote at path.
func ReadOutcome(path string) (Outcome, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	if err := json.Unmarshal(b, &out); err != nil {
		return Outcome{}, fmt.Errorf("the worker's outcome: %w", err)
	}
	if out.Outcome != agentjob.OutcomeCompleted && out.Outcome != agentjob.OutcomeError ||
		out.Outcome == agentjob.OutcomeCompleted && out.Result == nil {
		return Outcome{}, fmt.Errorf("the worker's outcome %q is not one", out.Outcome)
	}
	return out, nil
}

// deliver PUTs the result (when there is one) and then POSTs the completion: a completion that
// says "completed" always follows a stored result. A result that cannot be stored is reported
// as an error, which refunds the job.
func deliver(ctx context.Context, j Job, hc *http.Client, out Outcome, log *slog.Logger) error {
	req := agentjob.CompletionRequest{Secret: j.Secret, Outcome: out.Outcome, ErrorMessage: out.ErrorMessage}
	if out.Result != nil {
		body, err := json.Marshal(out.Result)
		if err == nil {
			err = send(ctx, hc, http.MethodPut, j.ResultURL, body)
		}
		if err != nil {
			req = agentjob.CompletionRequest{Secret: j.Secret, Outcome: agentjob.OutcomeError,
				ErrorMessage: "RESULT_NOT_STORED: " + j.scrub(err.Error())}
			log.Warn("agent job result not stored", "error", req.ErrorMessage)
		} else {
			h := blob.NewHashing(bytes.NewReader(body))
			io.Copy(io.Discard, h)
			ref := h.Ref()
			req.ResultRef = &ref
		}
	}
	body, _ := json.Marshal(req)
	if err := send(ctx, hc, http.MethodPost, j.CompletionURL, body); err != nil {
		return fmt.Errorf("report the completion: %s", j.scrub(err.Error()))
	}
	log.Info("agent job delivered", "outcome", req.Outcome)
	return nil
}

// send makes one request, tried again on a network error or a 5xx (a few times, growing
// pauses); a 4xx is an answer, final.
func send(ctx context.Context, hc *http.Client, method, url string, body []byte) error {
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * time.Second):
			}
		}
		var retry bool
		if retry, err = sendOnce(ctx, hc, method, url, body); err == nil || !retry {
			return err
		}
	}
	return err
}

func sendOnce(ctx context.Context, hc *http.Client, method, url string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("%s %s: %v", method, redactURL(url), err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return true, fmt.Errorf("%s %s: %s", method, redactURL(url), redactAll(err.Error(), url))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode >= 500, fmt.Errorf("%s %s: %s: %s", method, redactURL(url), resp.Status, bytes.TrimSpace(snippet))
}

func redactAll(msg, url string) string {
	return string(bytes.ReplaceAll([]byte(msg), []byte(url), []byte(redactURL(url))))
}

// progress reports how far the job is, best effort: a lost report changes nothing but what a
// reader sees meanwhile, so it is tried once, briefly.
func progress(ctx context.Context, j Job, hc *http.Client, pct int, stage string, log *slog.Logger) {
	if j.ProgressURL == "" || j.Output != "" {
		return
	}
	body, _ := json.Marshal(agentjob.ProgressRequest{Secret: j.Secret, ProgressPct: pct, ProgressStage: stage})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := sendOnce(ctx, hc, http.MethodPost, j.ProgressURL, body); err != nil {
		log.Info("progress not reported", "error", j.scrub(err.Error()))
	}
}
