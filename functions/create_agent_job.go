package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

type createAgentJobRequest struct {
	Repo    string  `json:"repo" required:"true"`
	Ref     *string `json:"ref"`
	AgentID string  `json:"agent_id" required:"true"`
}

// CreateAgentJob answers POST /agent-jobs: it checks the request and the caller's access to the
// repository, records the job, charges it on the caller's account (402 when the balance does
// not cover it), and answers 202 with the job, queued; the launcher starts it.
//
// The job is recorded before it is charged, and accepted after: a process that dies between
// two of these writes leaves a job "requested", which the agent-job reaper accepts when the
// charge is on the account and rejects otherwise, so no charge is ever without its job.
func CreateAgentJob(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req createAgentJobRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	ref := ""
	if req.Ref != nil {
		ref = strings.TrimSpace(*req.Ref)
	}
	if !validRepo(req.Repo) {
		return httpapi.Invalid("string_pattern_mismatch", "repo must be a GitHub repository as owner/name (letters, digits, '-', '_', '.')", "body", "repo")
	}
	if len(ref) > 255 || strings.ContainsAny(ref, " \t\n\x00") || strings.HasPrefix(ref, "-") {
		return httpapi.Invalid("value_error", "ref must be a branch, tag or commit name (at most 255 characters, no spaces, not starting with '-')", "body", "ref")
	}
	agents, err := agentTable(a)
	if err != nil {
		return err
	}
	if _, ok := agentjob.Find(agents, req.AgentID); !ok {
		names := make([]string, len(agents))
		for i, ag := range agents {
			names[i] = "'" + ag.ID + "'"
		}
		return httpapi.Invalid("enum", "Input should be one of the configured agents: "+strings.Join(names, ", "), "body", "agent_id")
	}
	ctx := r.Context()
	user := app.Caller(ctx).UserID
	cost := a.Config.AgentJobCostCents
	// A spent balance is refused before anything is written; the charge below decides for good.
	if err := requireAgentJobBalance(ctx, a, user, cost); err != nil {
		return err
	}
	src, err := agentJobSource(ctx, a, user, req.Repo, ref)
	if err != nil {
		return err
	}

	id := ids.Prefixed("ajob")
	e, err := events.RequestAgentJob(ids.New(), events.AgentJobRequestedData{
		JobID: id, UserID: user, Repo: req.Repo, Ref: ref, AgentID: req.AgentID, CostCents: cost, Source: src,
		TimeoutSeconds: int64(a.Config.AgentJobTimeout.Seconds()), CreatedAt: a.Clock.Now(),
	})
	if err != nil {
		return err
	}
	if _, err := app.Create(ctx, a, events.AgentJobStream(id), []events.Envelope{e}); err != nil {
		return err
	}
	if err := chargeAndAccept(ctx, a, id, user, cost); err != nil {
		return err
	}
	d, err := projections.Get[projections.AgentJobDoc](ctx, a.Docs, projections.AgentJobCollection, id)
	if err != nil {
		return fmt.Errorf("agent job %s after its creation: %w", id, err)
	}
	httpapi.WriteJSON(w, http.StatusAccepted, viewAgentJob(d))
	return nil
}

// chargeAndAccept charges requested job id to user's account and records it accepted; a
// balance that does not cover it rejects the job (402).
func chargeAndAccept(ctx context.Context, a *app.App, id, user string, cost int64) error {
	usage, err := sessionUsageCents(ctx, a, user)
	if err != nil {
		return err
	}
	if cost > 0 {
		_, err = updateAccount(ctx, a, user, func(acct *events.Account) ([]events.Envelope, error) {
			return acct.ChargeAgentJobWithin(events.AgentJobChargedData{JobID: id, AmountCents: cost}, a.Clock.Now(), usage)
		})
	}
	if errors.Is(err, events.ErrInsufficientBalance) {
		if _, _, rerr := updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
			return j.Reject(ids.New(), a.Clock.Now(), err.Error())
		}); rerr != nil {
			return rerr
		}
		return httpapi.Errorf(http.StatusPaymentRequired,
			"insufficient balance for an agent job (%d cents): %s; deposit money with POST /billing/deposit (or ask an operator for credit)", cost, strings.TrimPrefix(err.Error(), events.ErrInsufficientBalance.Error()+": "))
	}
	if err != nil {
		return err // the job stays requested: the reaper settles it from the account
	}
	_, _, err = updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
		return j.Accept(ids.New(), a.Clock.Now(), cost)
	})
	if errors.Is(err, events.ErrAgentJobRejected) {
		// The reaper took the job for abandoned between the charge and now: give the money back.
		_, rerr := updateAccount(context.WithoutCancel(ctx), a, user, func(acct *events.Account) ([]events.Envelope, error) {
			return acct.RefundAgentJob(events.AgentJobRefundedData{JobID: id, AmountCents: cost, Reason: "rejected"}, a.Clock.Now())
		})
		return errors.Join(httpapi.Errorf(http.StatusServiceUnavailable, "the job could not be recorded in time; its charge is refunded; try again"), rerr)
	}
	return err
}

// requireAgentJobBalance answers 402 when user's balance, as the read model holds it, does not
// cover cost.
func requireAgentJobBalance(ctx context.Context, a *app.App, user string, cost int64) error {
	if cost <= 0 {
		return nil
	}
	b, err := projections.Get[projections.Balance](ctx, a.Docs, projections.BalanceCollection, user)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return fmt.Errorf("balance of %s: %w", user, err)
	}
	if b.BalanceCents >= cost && b.BalanceCents > 0 {
		return nil
	}
	return httpapi.Errorf(http.StatusPaymentRequired,
		"insufficient balance for an agent job: %d cents, the job costs %d; deposit money with POST /billing/deposit (or ask an operator for credit)", b.BalanceCents, cost)
}

// sessionUsageCents is user's session usage billed so far: the part of the balance the
// account stream does not carry (events.Account.ChargeAgentJobWithin).
func sessionUsageCents(ctx context.Context, a *app.App, user string) (int64, error) {
	b, err := projections.Get[projections.Balance](ctx, a.Docs, projections.BalanceCollection, user)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return 0, fmt.Errorf("balance of %s: %w", user, err)
	}
	return b.Summary.TotalSessionCostCents, nil
}
