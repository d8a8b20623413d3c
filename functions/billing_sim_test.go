package functions

// A seeded random simulation of billing: many users interleaving sessions (requested, ready,
// ended by close, expiry, termination, a spent balance or an error), grants, deposits whose
// webhooks are duplicated and reordered (refunds before completions included), agent-job
// charges and refunds, and crashes between an append and its projection (the events are
// appended without projecting, the read model is even dropped, and the catch-up projects them
// later). After every step the read model is checked against the replay of the log and against an
// independent model of what every balance must be.

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

func TestBillingSimulation(t *testing.T) {
	seeds, steps := 12, 120
	if raceBuild {
		seeds, steps = 8, 80
	}
	if testing.Short() {
		seeds = 3
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			simulate(t, int64(seed), steps)
		})
	}
}

type simDeposit struct {
	user, cs string
	amount   int64
	paid     bool  // a success was delivered
	refunded int64 // the largest cumulative refund delivered
}

type simSession struct {
	user, id string
	ready    bool
	ended    *events.Envelope
}

type sim struct {
	t       *testing.T
	h       *billingHarness
	rng     *rand.Rand
	users   []string
	now     time.Time
	pending [][]byte // webhooks not yet delivered
	// The independent model.
	grants    map[string]int64 // credit id -> cents
	grantUser map[string]string
	deposits  map[string]*simDeposit
	sessions  map[string]*simSession
	jobs      map[string]int64 // job id -> charged
	jobUser   map[string]string
	jobRefund map[string]int64
	lagging   bool // events appended without projection, not yet caught up
	unproj    []events.Envelope
	dropped   map[string]bool // users whose read model was dropped
	n         int
}

func simulate(t *testing.T, seed int64, steps int) {
	s := &sim{t: t, h: newBillingHarness(t, nil), rng: rand.New(rand.NewSource(seed)),
		now:    time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		grants: map[string]int64{}, grantUser: map[string]string{}, deposits: map[string]*simDeposit{},
		sessions: map[string]*simSession{}, jobs: map[string]int64{}, jobUser: map[string]string{}, jobRefund: map[string]int64{}, dropped: map[string]bool{}}
	for i := 0; i < 5; i++ {
		s.users = append(s.users, fmt.Sprintf("u%d", i))
	}
	for step := 0; step < steps; step++ {
		s.now = s.now.Add(time.Duration(s.rng.Intn(600)) * time.Second)
		s.step()
		if s.lagging && s.rng.Intn(4) == 0 {
			s.catchUp()
		}
		s.check(step)
	}
	for len(s.pending) > 0 {
		s.deliver()
	}
	s.catchUp()
	s.check(steps)
	paid, refunds := 0, 0
	for _, d := range s.deposits {
		if d.paid {
			paid++
		}
		if d.refunded > 0 {
			refunds++
		}
	}
	t.Logf("%d deposits (%d paid, %d refunded), %d sessions, %d grants, %d agent jobs", len(s.deposits), paid, refunds, len(s.sessions), len(s.grants), len(s.jobs))
}

func (s *sim) user() string { return s.users[s.rng.Intn(len(s.users))] }
func (s *sim) id(p string) string {
	s.n++
	return fmt.Sprintf("%s%d", p, s.n)
}

// record appends on stream, projecting inline (Record), or, one time in six, crashes between the
// append and the projection.
func (s *sim) record(stream string, evs ...events.Envelope) {
	ctx := context.Background()
	if s.rng.Intn(6) == 0 {
		stored, err := s.h.a.Events.Append(ctx, stream, events.Any, evs...)
		if err != nil {
			s.t.Fatal(err)
		}
		s.unproj = append(s.unproj, stored...)
		s.lagging = true
		return
	}
	if _, err := record(ctx, s.h.a, stream, events.Any, evs...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) step() {
	ctx := context.Background()
	switch r := s.rng.Intn(100); {
	case r < 10: // a grant, sometimes repeated
		id := s.id("g")
		if len(s.grants) > 0 && s.rng.Intn(3) == 0 {
			for k := range s.grants {
				id = k
				break
			}
		}
		user := s.user()
		if u, ok := s.grantUser[id]; ok {
			user = u
		}
		cents := int64(1 + s.rng.Intn(2000))
		if _, ok := s.grants[id]; ok {
			cents = s.grants[id]
		}
		acct := s.account(user)
		evs, err := acct.GrantCredit(events.CreditGrantedData{CreditID: id, AmountCents: cents, Reason: "sim"}, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(evs) > 0 {
			s.record(events.AccountStream(user), evs...)
		}
		s.grants[id], s.grantUser[id] = cents, user
	case r < 45: // a session moves: requested, ready, or ended
		s.sessionStep()
	case r < 57: // a deposit: its webhooks are queued, duplicated, to arrive in any order
		d := &simDeposit{user: s.user(), cs: s.id("cs_"), amount: int64(500 + s.rng.Intn(5000))}
		s.deposits[d.cs] = d
		evt := s.id("evt_")
		switch s.rng.Intn(4) {
		case 0: // asynchronous: completed unpaid, then succeeded
			s.queue(checkoutEvent(s.id("evt_"), "checkout.session.completed", d.cs, d.user, d.amount, "unpaid"), 1)
			s.queue(checkoutEvent(evt, "checkout.session.async_payment_succeeded", d.cs, d.user, d.amount, "paid"), 1+s.rng.Intn(3))
		case 1: // asynchronous and failed
			s.queue(checkoutEvent(evt, "checkout.session.async_payment_failed", d.cs, d.user, d.amount, "unpaid"), 1+s.rng.Intn(2))
		default:
			s.queue(checkoutEvent(evt, "checkout.session.completed", d.cs, d.user, d.amount, "paid"), 1+s.rng.Intn(4))
		}
	case r < 63: // a refund of some deposit (perhaps before its completion arrives)
		for _, d := range s.deposits {
			cum := min(d.amount, int64(1+s.rng.Intn(int(d.amount)))+d.refunded/2)
			if s.rng.Intn(3) == 0 {
				cum = d.amount + 100 // more than the charge: capped
			}
			s.queue(refundEvent(s.id("evt_"), "ch_"+d.cs, d.cs, d.user, d.amount, cum), 1+s.rng.Intn(3))
			break
		}
	case r < 82: // webhooks arrive
		for i := s.rng.Intn(4); i >= 0 && len(s.pending) > 0; i-- {
			s.deliver()
		}
	case r < 89: // an agent job is charged
		user, job := s.user(), s.id("job")
		acct := s.account(user)
		cost := int64(50 + s.rng.Intn(200))
		evs, err := acct.ChargeAgentJob(events.AgentJobChargedData{JobID: job, AmountCents: cost}, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		s.record(events.AccountStream(user), evs...)
		s.jobs[job], s.jobUser[job] = cost, user
	case r < 94: // an agent job is refunded, perhaps for more than its charge, perhaps again
		for job, user := range s.jobUser {
			ask := int64(s.rng.Intn(400))
			if _, err := updateAccount(ctx, s.h.a, user, func(acct *events.Account) ([]events.Envelope, error) {
				return acct.RefundAgentJob(events.AgentJobRefundedData{JobID: job, AmountCents: ask}, s.now)
			}); err != nil {
				s.t.Fatal(err)
			}
			// The model: the first refund gives back what was asked, the whole charge when
			// nothing or too much was asked; later ones nothing.
			if _, done := s.jobRefund[job]; !done {
				if ask <= 0 || ask > s.jobs[job] {
					ask = s.jobs[job]
				}
				s.jobRefund[job] = ask
			}
			break
		}
	case r < 97: // the read model of a user is dropped and must be rebuilt from the log
		user := s.user()
		entries, _ := projections.LedgerOf(ctx, s.h.a.Docs, user)
		for _, e := range entries {
			s.h.a.Docs.Delete(ctx, projections.LedgerCollection, e.ID)
		}
		s.h.a.Docs.Delete(ctx, projections.BalanceCollection, user)
		s.dropped[user] = true
		s.lagging = true
	default:
		s.catchUp()
	}
}

// account folds user's account stream, as a command would before deciding.
func (s *sim) account(user string) *events.Account {
	evs, err := s.h.a.Events.Load(context.Background(), events.AccountStream(user), 1)
	if err != nil {
		s.t.Fatal(err)
	}
	acct, err := events.FoldAccount(user, evs)
	if err != nil {
		s.t.Fatal(err)
	}
	return acct
}

func (s *sim) sessionStep() {
	// Request a new session, or end a running one, make a requested one ready.
	if s.rng.Intn(3) == 0 {
		s.requestSession()
		return
	}
	for _, ss := range s.sessions {
		if ss.ended != nil {
			if s.rng.Intn(8) == 0 { // a duplicate delivery of the end
				s.record(events.SessionStream(ss.id), *ss.ended)
				return
			}
			continue
		}
		if !ss.ready && s.rng.Intn(2) == 0 {
			e, _ := events.New(s.id("ev"), ss.user, events.SessionReady, s.now, events.SessionReadyData{ReadyAt: s.now})
			s.record(events.SessionStream(ss.id), e)
			ss.ready = true
			return
		}
		if s.rng.Intn(2) == 0 {
			reasons := []string{events.EndClosed, events.EndExpired, events.EndTerminated, events.EndBalanceExhausted, events.EndError}
			secs := 0.0
			if ss.ready {
				secs = []float64{0, 1, 59, 60, 61, 3599.5, float64(s.rng.Intn(7200)) + s.rng.Float64()}[s.rng.Intn(7)]
			}
			cpm := int64(1 + s.rng.Intn(30))
			d := events.SessionEndedData{SessionID: ss.id, UserID: ss.user, Reason: reasons[s.rng.Intn(len(reasons))],
				EndedAt: s.now, BillableSeconds: secs, CentsPerMinute: cpm, ChargeCents: events.ChargeCents(secs, cpm)}
			e, err := events.New(s.id("end"), ss.user, events.SessionEnded, s.now, d)
			if err != nil {
				s.t.Fatal(err)
			}
			s.record(events.SessionStream(ss.id), e)
			ss.ended = &e
			return
		}
	}
	s.requestSession()
}

func (s *sim) requestSession() {
	ss := &simSession{user: s.user(), id: s.id("s")}
	s.sessions[ss.id] = ss
	e, _ := events.New(s.id("ev"), ss.user, events.SessionRequested, s.now, events.SessionRequestedData{SessionID: ss.id, UserID: ss.user, CentsPerMinute: 10, RequestedAt: s.now})
	s.record(events.SessionStream(ss.id), e)
}

func (s *sim) queue(body []byte, copies int) {
	for i := 0; i < copies; i++ {
		s.pending = append(s.pending, body)
	}
}

// deliver posts one pending webhook, chosen at random, and updates the model from what Stripe
// said (not from what the server did).
func (s *sim) deliver() {
	i := s.rng.Intn(len(s.pending))
	body := s.pending[i]
	s.pending = append(s.pending[:i], s.pending[i+1:]...)
	code, resp := s.h.webhook(body, "")
	if code != 200 {
		s.t.Fatalf("webhook %d: %s", code, resp)
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Object struct {
				ID             string `json:"id"`
				PaymentStatus  string `json:"payment_status"`
				AmountRefunded int64  `json:"amount_refunded"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := jsonUnmarshal(body, &ev); err != nil {
		s.t.Fatal(err)
	}
	o := ev.Data.Object
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		if o.PaymentStatus == "paid" {
			s.deposits[o.ID].paid = true
		}
	case "charge.refunded":
		d := s.deposits[o.ID[len("ch_"):]]
		d.refunded = max(d.refunded, min(o.AmountRefunded, d.amount))
	}
}

// catchUp is the bus's redelivery after a crash: the events appended without projection go
// through the projector, and every event of a user whose read model was dropped, in log order.
func (s *sim) catchUp() {
	ctx := context.Background()
	for _, e := range s.unproj {
		if projections.WantsBalance(e) {
			if err := ProjectBalance(ctx, s.h.a, e); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	if len(s.dropped) > 0 {
		if err := s.h.a.Events.Scan(ctx, "", func(e events.Envelope) error {
			if projections.WantsBalance(e) && s.dropped[e.UserID] {
				return ProjectBalance(ctx, s.h.a, e)
			}
			return nil
		}); err != nil {
			s.t.Fatal(err)
		}
	}
	s.unproj, s.dropped, s.lagging = nil, map[string]bool{}, false
}

// expected is the independent model's balance of every user.
func (s *sim) expected() map[string]int64 {
	want := map[string]int64{}
	for id, c := range s.grants {
		want[s.grantUser[id]] += c
	}
	for _, d := range s.deposits {
		if d.paid {
			want[d.user] += d.amount
		}
		want[d.user] -= d.refunded
	}
	for _, ss := range s.sessions {
		if ss.ended != nil {
			var d events.SessionEndedData
			ss.ended.Decode(&d)
			want[ss.user] -= events.ChargeCents(d.BillableSeconds, d.CentsPerMinute)
		}
	}
	for job, c := range s.jobs {
		want[s.jobUser[job]] -= c - s.jobRefund[job]
	}
	return want
}

func (s *sim) check(step int) {
	t, ctx := s.t, context.Background()
	t.Helper()
	r := projections.NewReplay("")
	if err := r.Run(ctx, s.h.a.Events); err != nil {
		t.Fatal(err)
	}
	want := s.expected()
	for _, u := range s.users {
		var got int64
		if b, ok := r.Balances[u]; ok {
			got = b.BalanceCents
		}
		if got != want[u] {
			t.Fatalf("step %d: replayed balance of %s is %d, the model says %d", step, u, got, want[u])
		}
	}
	// The log never holds a credit twice nor a refund beyond its charge.
	credited, refunded, jobRefunds := map[string]int{}, map[string]int64{}, map[string]int{}
	s.h.a.Events.Scan(ctx, "account-", func(e events.Envelope) error {
		switch e.Type {
		case events.DepositSucceeded:
			var d events.DepositSucceededData
			e.Decode(&d)
			credited[d.CheckoutSessionID]++
		case events.PaymentRefunded:
			var d events.PaymentRefundedData
			e.Decode(&d)
			refunded[d.ChargeID] += d.AmountCents
		case events.AgentJobRefunded:
			var d events.AgentJobRefundedData
			e.Decode(&d)
			jobRefunds[d.JobID]++
			if d.AmountCents > s.jobs[d.JobID] {
				t.Fatalf("step %d: job %s refunded %d of %d", step, d.JobID, d.AmountCents, s.jobs[d.JobID])
			}
		}
		return nil
	})
	for cs, n := range credited {
		if n > 1 {
			t.Fatalf("step %d: %s credited %d times", step, cs, n)
		}
	}
	for ch, c := range refunded {
		if d := s.deposits[ch[len("ch_"):]]; c > d.amount {
			t.Fatalf("step %d: charge %s refunded %d of %d", step, ch, c, d.amount)
		}
	}
	for job, n := range jobRefunds {
		if n > 1 {
			t.Fatalf("step %d: job %s refunded %d times", step, job, n)
		}
	}
	if s.lagging {
		return // the read model catches up later; the log is already right
	}
	diffs, err := r.Reconcile(ctx, s.h.a.Docs)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.Equal() {
			t.Fatalf("step %d: read model differs from the replay: %+v", step, d)
		}
	}
	for _, u := range s.users {
		entries, err := projections.LedgerOf(ctx, s.h.a.Docs, u)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, e := range entries {
			sum += e.AmountCents
		}
		if sum != want[u] {
			t.Fatalf("step %d: %s's transactions sum to %d, balance %d", step, u, sum, want[u])
		}
	}
}
