package events

import (
	"errors"
	"testing"
	"time"
)

// storeAgentJob gives decided events the stream position a store would and folds them.
func storeAgentJob(t *testing.T, j *AgentJob, evs []Envelope, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		e.Stream, e.Version = AgentJobStream(j.JobID), j.Version+1
		if err := j.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
}

func runningAgentJob(t *testing.T, secret string) *AgentJob {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j := &AgentJob{}
	e, err := RequestAgentJob("e1", AgentJobRequestedData{JobID: "ajob_1", UserID: "u1", Repo: "acme/widget", AgentID: "demo", CostCents: 100, TimeoutSeconds: 7200, CreatedAt: at})
	storeAgentJob(t, j, []Envelope{e}, err)
	evs, err := j.Accept("e2", at, 100)
	storeAgentJob(t, j, evs, err)
	evs, err = j.Start("e3", at, HashSecret(secret))
	storeAgentJob(t, j, evs, err)
	if j.Status != AgentJobStatusRunning || j.ChargedCents != 100 {
		t.Fatalf("running job: %+v", j)
	}
	return j
}

func TestAgentJobCompletion(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	ref := &BlobRef{Digest: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Size: 3}
	failed := AgentJobCompletion{Outcome: OutcomeError, ErrorMessage: "boom"}
	for _, tc := range []struct {
		name   string
		c      AgentJobCompletion
		result *BlobRef
		status string
		refund int64
		code   string
	}{
		{"completed", AgentJobCompletion{Outcome: OutcomeCompleted}, ref, AgentJobStatusCompleted, 0, ""},
		{"completed without a result", AgentJobCompletion{Outcome: OutcomeCompleted}, nil, AgentJobStatusError, 100, CodeNoResult},
		{"error", failed, nil, AgentJobStatusError, 100, CodeAgentFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := runningAgentJob(t, "s3cret")
			evs, err := j.Complete("c1", at, tc.c, tc.result, "abc", "nothing stored")
			storeAgentJob(t, j, evs, err)
			if j.Status != tc.status || j.RefundCents != tc.refund || (tc.code != "" && j.Error.Code != tc.code) {
				t.Fatalf("after %s: %+v", tc.name, j)
			}
			// The same completion again decides nothing; another is a conflict; nothing fails it later.
			if evs, err := j.Complete("c2", at, tc.c, tc.result, "abc", ""); err != nil || len(evs) != 0 {
				t.Fatalf("repeat: %v %v", evs, err)
			}
			other := AgentJobCompletion{Outcome: OutcomeError, ErrorMessage: "other"}
			if _, err := j.Complete("c3", at, other, nil, "", ""); !errors.Is(err, ErrAgentJobConflict) {
				t.Fatalf("conflicting completion: %v", err)
			}
			if evs, err := j.Fail("f1", at, CodeAgentJobTimeout, "late"); err != nil || len(evs) != 0 {
				t.Fatalf("a timeout after the end: %v %v", evs, err)
			}
		})
	}
}

func TestAgentJobSecretAndClaims(t *testing.T) {
	t.Parallel()
	j := runningAgentJob(t, "s3cret")
	for _, s := range []string{"", "s3cre", "s3cret ", "S3CRET", HashSecret("s3cret")} {
		if j.SecretMatches(s) {
			t.Fatalf("secret %q matched", s)
		}
	}
	if !j.SecretMatches("s3cret") {
		t.Fatal("the secret did not match")
	}
	if evs, err := j.Start("again", time.Now(), HashSecret("other")); err != nil || len(evs) != 0 {
		t.Fatalf("a second claim: %v %v", evs, err)
	}
	queued := &AgentJob{}
	e, err := RequestAgentJob("e1", AgentJobRequestedData{JobID: "ajob_2", UserID: "u1", CostCents: 100})
	storeAgentJob(t, queued, []Envelope{e}, err)
	if queued.SecretMatches("") {
		t.Fatal("a job with no secret matched an empty one")
	}
	evs, err := queued.Reject("r", time.Now(), "no money")
	storeAgentJob(t, queued, evs, err)
	if _, err := queued.Accept("a", time.Now(), 100); !errors.Is(err, ErrAgentJobRejected) {
		t.Fatalf("accepting a rejected job: %v", err)
	}
	if evs, _ := queued.Fail("f", time.Now(), CodeAgentJobTimeout, ""); len(evs) != 0 {
		t.Fatal("a rejected (never charged) job failed, with a refund")
	}
}

func TestChargeAgentJobWithin(t *testing.T) {
	t.Parallel()
	at := time.Now()
	a := NewAccount("u1")
	apply := func(evs []Envelope, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Version = a.Version + 1
			a.Apply(e)
		}
	}
	apply(a.GrantCredit(CreditGrantedData{CreditID: "c", AmountCents: 250}, at))
	apply(a.ChargeAgentJobWithin(AgentJobChargedData{JobID: "j1", AmountCents: 100}, at, 30))
	if _, err := a.ChargeAgentJobWithin(AgentJobChargedData{JobID: "j2", AmountCents: 100}, at, 60); !errors.Is(err, ErrInsufficientBalance) {
		t.Fatalf("250 credited, 100 charged, 60 of sessions leave 90, short of 100: %v", err)
	}
	if evs, err := a.ChargeAgentJobWithin(AgentJobChargedData{JobID: "j2", AmountCents: 100}, at, 50); err != nil || len(evs) != 1 {
		t.Fatalf("100 left covers 100: %v %v", evs, err)
	}
	if evs, err := a.ChargeAgentJobWithin(AgentJobChargedData{JobID: "j1", AmountCents: 100}, at, 1000); err != nil || len(evs) != 0 {
		t.Fatalf("a retried charge: %v %v", evs, err)
	}
	apply(a.RefundAgentJob(AgentJobRefundedData{JobID: "j1", AmountCents: 100}, at))
	if a.NetCents != 250 {
		t.Fatalf("net %d after the refund", a.NetCents)
	}
}
