package functions

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/stripe/stripetest"
)

func TestBillingPricingAndBalance(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	var p map[string]any
	if st := h.do("", "GET", "/billing/pricing", nil, &p); st != 200 {
		t.Fatalf("pricing: %d", st)
	}
	for _, f := range []string{"cost_per_minute_cents", "agent_job_cost_cents", "currency", "minimum_deposit_cents", "billing_granularity"} {
		if _, ok := p[f]; !ok {
			t.Errorf("pricing lacks %s: %v", f, p)
		}
	}
	if p["cost_per_minute_cents"] != float64(10) || p["currency"] != "usd" {
		t.Errorf("pricing %v", p)
	}
	var b map[string]any
	if st := h.do("u1", "GET", "/billing/balance", nil, &b); st != 200 || b["balance"] != float64(0) || b["user_id"] != "u1" || b["last_updated"] == nil {
		t.Fatalf("empty balance: %d %v", st, b)
	}
	if _, ok := b["stripe_customer_id"]; !ok {
		t.Error("stripe_customer_id is required to be present (null)")
	}
	if st := h.do("", "GET", "/billing/balance", nil, nil); st != 401 {
		t.Errorf("anonymous balance: %d", st)
	}
	err := RequirePositiveBalance(context.Background(), h.a, "u1")
	if he, ok := err.(*httpapi.Error); !ok || he.Status != 402 || !strings.Contains(he.Detail, "balance") {
		t.Fatalf("zero balance: %v", err)
	}
	h.grant("u1", "signup-u1", 500)
	h.grant("u1", "signup-u1", 500) // the same grant again credits once
	if err := RequirePositiveBalance(context.Background(), h.a, "u1"); err != nil {
		t.Fatalf("positive balance refused: %v", err)
	}
	charge := h.endSession("u1", "s1", 61, 10, events.EndClosed, time.Now())
	if charge != 11 {
		t.Fatalf("61 s at 10/min charged %d", charge)
	}
	if st := h.do("u1", "GET", "/billing/balance", nil, &b); st != 200 || b["balance"] != float64(489) || b["total_deposited"] != float64(500) || b["total_spent"] != float64(11) {
		t.Fatalf("balance after a session: %v", b)
	}
	h.endSession("u1", "s2", 3*3600, 10, events.EndExpired, time.Now())
	err = RequirePositiveBalance(context.Background(), h.a, "u1")
	if he, ok := err.(*httpapi.Error); !ok || he.Status != 402 {
		t.Fatalf("overdrawn balance: %v", err)
	}
}

func TestBillingSessionRounding(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	h.grant("u", "g", 1_000_000)
	want := int64(1_000_000)
	for i, c := range []struct {
		secs   float64
		charge int64
	}{{0, 0}, {1, 1}, {59, 10}, {60, 10}, {61, 11}, {0.5, 1}, {10 * 3600, 6000}, {36*3600 + 1, 21601}} {
		got := h.endSession("u", fmt.Sprintf("r%d", i), c.secs, 10, events.EndClosed, time.Now())
		if got != c.charge {
			t.Errorf("%v s: charged %d, want %d", c.secs, got, c.charge)
		}
		want -= c.charge
		if b := h.balance("u"); b.BalanceCents != want {
			t.Fatalf("after %v s: balance %d, want %d", c.secs, b.BalanceCents, want)
		}
	}
	// A session that never became ready costs nothing and leaves no transaction.
	var u map[string]any
	h.do("u", "GET", "/billing/usage?limit=100", nil, &u)
	if n := len(u["transactions"].([]any)); n != 8 { // the grant and the seven billed sessions
		t.Fatalf("%d transactions: %v", n, u["transactions"])
	}
}

func TestBillingWebhookCreditsOnceUnder50ConcurrentDeliveries(t *testing.T) {
	webhookCreditsOnce(t, newBillingHarness(t, nil))
}

// The same money rules on the GCP backend: Firestore's optimistic writes must credit a Checkout
// Session once under 50 racing deliveries, and sessions must be billed with the same rounding.
func TestBillingOnGCP(t *testing.T) {
	t.Run("webhook credits once under 50 concurrent deliveries", func(t *testing.T) {
		webhookCreditsOnce(t, newBillingHarnessOn(t, "gcp", nil))
	})
	t.Run("session usage and usage history", func(t *testing.T) {
		h := newBillingHarnessOn(t, "gcp", nil)
		h.grant("u", "g", 1000)
		at := time.Now()
		if got := h.endSession("u", "s1", 61, 10, events.EndClosed, at); got != 11 {
			t.Fatalf("61 s at 10/min charged %d, want 11", got)
		}
		if b := h.balance("u"); b.BalanceCents != 989 {
			t.Fatalf("balance %d, want 989", b.BalanceCents)
		}
		var u map[string]any
		if code := h.do("u", "GET", "/billing/usage?limit=100", nil, &u); code != 200 || u["current_balance_cents"] != float64(989) {
			t.Fatalf("usage: %d %v", code, u)
		}
	})
}

func webhookCreditsOnce(t *testing.T, h *billingHarness) {
	body := checkoutEvent("evt_1", "checkout.session.completed", "cs_1", "u1", 2500, "paid")
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = h.webhook(body, "")
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("delivery %d answered %d", i, c)
		}
	}
	// The same session reported again by the asynchronous success changes nothing either.
	if c, _ := h.webhook(checkoutEvent("evt_2", "checkout.session.async_payment_succeeded", "cs_1", "u1", 2500, "paid"), ""); c != 200 {
		t.Fatal(c)
	}
	if b := h.balance("u1"); b.BalanceCents != 2500 || b.Summary.Transactions != 1 {
		t.Fatalf("balance %d with %d transactions after 51 deliveries", b.BalanceCents, b.Summary.Transactions)
	}
	evs, _ := h.a.Events.Load(context.Background(), events.AccountStream("u1"), 1)
	if len(evs) != 1 || evs[0].Type != events.DepositSucceeded {
		t.Fatalf("account stream: %+v", evs)
	}
}

func TestBillingWebhookRefusals(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	good := checkoutEvent("evt_1", "checkout.session.completed", "cs_1", "u1", 2500, "paid")
	tampered := []byte(strings.Replace(string(good), "2500", "9999", 1))
	signed := func(p []byte) string {
		return webhookHeader(p, billingSecret)
	}
	cases := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"tampered body", tampered, signed(good), 400},
		{"no signature", good, "", 400},
		{"garbage signature", good, "t=1,v1=deadbeef", 400},
		{"other secret", good, webhookHeader(good, "whsec_other"), 400},
		{"other api version", []byte(strings.Replace(string(good), `"api_version":"2023-10-16"`, `"api_version":"2019-01-01"`, 1)), "", 400},
		{"too large", append(append([]byte{}, good[:len(good)-1]...), []byte(`,"pad":"`+strings.Repeat("x", 70<<10)+`"}`)...), "", 413},
	}
	for _, c := range cases {
		sig := c.sig
		if sig == "" && c.name != "no signature" {
			sig = signed(c.body)
		}
		if code, body := h.postWebhook(c.body, sig); code != c.want {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
	}
	if b := h.balance("u1"); b.BalanceCents != 0 {
		t.Fatalf("refused webhooks changed the balance: %d", b.BalanceCents)
	}
	if v, _ := h.a.Events.Version(context.Background(), events.AccountStream("u1")); v != 0 {
		t.Fatalf("refused webhooks recorded %d events", v)
	}
	// Types it does not handle, and sessions of no Codeset user, are acknowledged and ignored.
	other := []byte(`{"id":"evt_9","object":"event","api_version":"2023-10-16","type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}`)
	if code, _ := h.webhook(other, ""); code != 200 {
		t.Errorf("other type: %d", code)
	}
	if code, body := h.webhook(checkoutEvent("evt_3", "checkout.session.completed", "cs_x", "", 100, "paid"), ""); code != 200 || !strings.Contains(body, "ignored") {
		t.Errorf("foreign session: %d %s", code, body)
	}
	// Unpaid completion (an asynchronous method) credits nothing until it succeeds.
	if code, _ := h.webhook(checkoutEvent("evt_4", "checkout.session.completed", "cs_2", "u2", 700, "unpaid"), ""); code != 200 || h.balance("u2").BalanceCents != 0 {
		t.Fatalf("unpaid completion: %d %d", code, h.balance("u2").BalanceCents)
	}
	h.webhook(checkoutEvent("evt_5", "checkout.session.async_payment_succeeded", "cs_2", "u2", 700, "paid"), "")
	if b := h.balance("u2").BalanceCents; b != 700 {
		t.Fatalf("async success: %d", b)
	}
	// A failure reported after the success never takes the money back.
	h.webhook(checkoutEvent("evt_6", "checkout.session.async_payment_failed", "cs_2", "u2", 700, "unpaid"), "")
	if b := h.balance("u2").BalanceCents; b != 700 {
		t.Fatalf("failure after success: %d", b)
	}
	h.webhook(checkoutEvent("evt_7", "checkout.session.async_payment_failed", "cs_3", "u2", 900, "unpaid"), "")
	if b := h.balance("u2").BalanceCents; b != 700 {
		t.Fatalf("failed deposit credited: %d", b)
	}
}

func TestBillingWebhookWithoutSecretRefuses(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, func(c *config.Config) { c.StripeWebhookSecret = "" })
	if code, _ := h.webhook(checkoutEvent("evt_1", "checkout.session.completed", "cs_1", "u1", 2500, "paid"), billingSecret); code != 400 {
		t.Fatalf("webhook without a configured secret: %d", code)
	}
	if h.balance("u1").BalanceCents != 0 {
		t.Fatal("credited")
	}
}

func TestBillingRefundBeforeCompletionNetsOut(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	// A partial refund, then the full one, then the first again, all before the completion.
	for _, e := range [][]byte{
		refundEvent("evt_r1", "ch_1", "cs_1", "u1", 2000, 500),
		refundEvent("evt_r2", "ch_1", "cs_1", "u1", 2000, 2000),
		refundEvent("evt_r1", "ch_1", "cs_1", "u1", 2000, 500),
	} {
		if code, body := h.webhook(e, ""); code != 200 {
			t.Fatalf("refund: %d %s", code, body)
		}
	}
	if b := h.balance("u1").BalanceCents; b != -2000 {
		t.Fatalf("after refunds alone: %d", b)
	}
	h.webhook(checkoutEvent("evt_c", "checkout.session.completed", "cs_1", "u1", 2000, "paid"), "")
	h.webhook(checkoutEvent("evt_c", "checkout.session.completed", "cs_1", "u1", 2000, "paid"), "")
	b := h.balance("u1")
	if b.BalanceCents != 0 || b.TotalDepositedCents != 0 || b.Summary.RefundCents != 2000 {
		t.Fatalf("refund before completion does not net out: %+v", b)
	}
	// A refund with no user in its metadata finds the account through the recorded PaymentIntent.
	h.webhook(checkoutEvent("evt_c2", "checkout.session.completed", "cs_2", "u2", 1000, "paid"), "")
	noMeta := strings.Replace(string(refundEvent("evt_r3", "ch_2", "cs_2", "u2", 1000, 300)), `"metadata":{"user_id":"u2"}`, `"metadata":{}`, 1)
	if code, body := h.webhook([]byte(noMeta), ""); code != 200 || !strings.Contains(body, `"debited":true`) {
		t.Fatalf("refund through the payment intent: %d %s", code, body)
	}
	if b := h.balance("u2").BalanceCents; b != 700 {
		t.Fatalf("u2 balance %d", b)
	}
}

func TestBillingDeposit(t *testing.T) {
	t.Parallel()
	url := stripetest.URL(t)
	h := newBillingHarness(t, func(c *config.Config) { c.StripeSecretKey, c.StripeAPIURL = "sk_test_123", url })
	var out map[string]any
	if st := h.do("u1", "POST", "/billing/deposit", map[string]any{"amount_cents": 1500}, &out); st != 200 {
		t.Fatalf("deposit: %d %v", st, out)
	}
	if out["checkout_url"] == "" || out["amount_cents"] != float64(1500) || out["currency"] != "usd" {
		t.Fatalf("deposit answer %v", out)
	}
	var b map[string]any
	h.do("u1", "GET", "/billing/balance", nil, &b)
	cus, _ := b["stripe_customer_id"].(string)
	if !strings.HasPrefix(cus, "cus_") || b["balance"] != float64(0) {
		t.Fatalf("after deposit request: %v", b)
	}
	if st := h.do("u1", "POST", "/billing/deposit", map[string]any{"amount_cents": 2000, "currency": "usd", "success_url": "https://example.com/ok"}, &out); st != 200 {
		t.Fatalf("second deposit: %d %v", st, out)
	}
	evs, _ := h.a.Events.Load(context.Background(), events.AccountStream("u1"), 1)
	acct, _ := events.FoldAccount("u1", evs)
	if acct.CustomerID != cus || len(acct.Deposits) != 2 {
		t.Fatalf("account after two deposits: customer %q, %d deposits", acct.CustomerID, len(acct.Deposits))
	}
	for _, c := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"amount_cents": 499}, 422},
		{map[string]any{"amount_cents": 99}, 422},
		{map[string]any{"amount_cents": "ten"}, 422},
		{map[string]any{}, 422},
		{map[string]any{"amount_cents": 1000, "currency": "eur"}, 422},
		{map[string]any{"amount_cents": 1000, "success_url": "javascript:x"}, 422},
	} {
		if st := h.do("u1", "POST", "/billing/deposit", c.body, nil); st != c.want {
			t.Errorf("%v: %d, want %d", c.body, st, c.want)
		}
	}
}

func TestBillingDepositWithoutStripe(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	var out map[string]any
	if st := h.do("u1", "POST", "/billing/deposit", map[string]any{"amount_cents": 1500}, &out); st != 400 || !strings.Contains(fmt.Sprint(out["detail"]), "credits grant") {
		t.Fatalf("deposit without Stripe: %d %v", st, out)
	}
}

func TestBillingUsageHistory(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	day := func(d int) time.Time { return time.Date(2026, 3, d, 12, 0, 0, 0, time.UTC) }
	h.grant("u1", "g1", 10_000)
	for i := 1; i <= 30; i++ {
		h.endSession("u1", fmt.Sprintf("s%02d", i), float64(60*i), 10, events.EndClosed, day(i))
	}
	h.webhook(checkoutEvent("evt_c", "checkout.session.completed", "cs_1", "u1", 5000, "paid"), "")
	ctx := context.Background()
	for _, j := range []string{"j1", "j2"} {
		if _, err := updateAccount(ctx, h.a, "u1", func(acct *events.Account) ([]events.Envelope, error) {
			return acct.ChargeAgentJob(events.AgentJobChargedData{JobID: j, AmountCents: 100}, day(31))
		}); err != nil {
			t.Fatal(err)
		}
	}
	updateAccount(ctx, h.a, "u1", func(acct *events.Account) ([]events.Envelope, error) {
		return acct.RefundAgentJob(events.AgentJobRefundedData{JobID: "j2", Reason: "infrastructure"}, day(31))
	})
	h.endSession("u2", "other", 600, 10, events.EndClosed, day(5)) // another user's

	type usage struct {
		Balance      int64 `json:"current_balance_cents"`
		Deposits     int64 `json:"total_deposits_cents"`
		Usage        int64 `json:"total_usage_cents"`
		Transactions []struct {
			ID        string   `json:"id"`
			Type      string   `json:"type"`
			Amount    int64    `json:"amount_cents"`
			CreatedAt string   `json:"created_at"`
			SessionID *string  `json:"session_id"`
			Minutes   *float64 `json:"duration_minutes"`
			JobID     *string  `json:"job_id"`
		} `json:"transactions"`
		Summary    map[string]float64 `json:"summary"`
		Pagination struct {
			Page       int  `json:"page"`
			Limit      int  `json:"limit"`
			TotalItems int  `json:"total_items"`
			TotalPages int  `json:"total_pages"`
			HasMore    bool `json:"has_more"`
		} `json:"pagination"`
	}
	get := func(q string) usage {
		t.Helper()
		var u usage
		if st := h.do("u1", "GET", "/billing/usage"+q, nil, &u); st != 200 {
			t.Fatalf("usage%s: %d", q, st)
		}
		return u
	}
	sessionCost := int64(0)
	for i := 1; i <= 30; i++ {
		sessionCost += int64(10 * i)
	}
	u := get("")
	if u.Pagination.TotalItems != 35 || u.Pagination.TotalPages != 2 || !u.Pagination.HasMore || len(u.Transactions) != 25 || u.Pagination.Limit != 25 {
		t.Fatalf("default page: %+v, %d transactions", u.Pagination, len(u.Transactions))
	}
	if u.Balance != 10_000+5000-sessionCost-100 || u.Deposits != 15_000 || u.Usage != sessionCost+100 {
		t.Fatalf("totals: %d %d %d", u.Balance, u.Deposits, u.Usage)
	}
	if u.Summary["total_sessions"] != 30 || u.Summary["total_agent_jobs"] != 2 || u.Summary["total_session_minutes"] != 465 ||
		u.Summary["average_session_cost_cents"] != float64(sessionCost)/30 {
		t.Fatalf("summary %v", u.Summary)
	}
	// The sum of the transactions is the balance.
	all := get("?limit=100")
	var sum int64
	for i, tx := range all.Transactions {
		if i > 0 && tx.CreatedAt > all.Transactions[i-1].CreatedAt && len(tx.CreatedAt) == len(all.Transactions[i-1].CreatedAt) {
			t.Errorf("not newest first: %s after %s", tx.CreatedAt, all.Transactions[i-1].CreatedAt)
		}
		sum += tx.Amount
		if tx.Type == "session_usage" && (tx.SessionID == nil || tx.Minutes == nil || tx.JobID != nil) {
			t.Errorf("session transaction %+v", tx)
		}
		if strings.HasPrefix(tx.Type, "agent_job") && tx.JobID == nil {
			t.Errorf("agent job transaction %+v", tx)
		}
		if tx.Type == "session_usage" && *tx.SessionID == "other" {
			t.Error("another user's session in the history")
		}
	}
	if sum != all.Balance || len(all.Transactions) != 35 || all.Pagination.HasMore {
		t.Fatalf("sum %d, balance %d, %d transactions", sum, all.Balance, len(all.Transactions))
	}
	p2 := get("?page=2")
	if len(p2.Transactions) != 10 || p2.Pagination.HasMore || p2.Transactions[0].ID != all.Transactions[25].ID {
		t.Fatalf("page 2: %d %+v", len(p2.Transactions), p2.Pagination)
	}
	if p9 := get("?page=9"); len(p9.Transactions) != 0 || p9.Pagination.TotalItems != 35 {
		t.Fatalf("page past the end: %+v", p9.Pagination)
	}
	dated := get("?start_date=2026-03-05&end_date=2026-03-07")
	if dated.Pagination.TotalItems != 3 || dated.Summary["total_sessions"] != 3 || dated.Summary["total_session_cost_cents"] != 50+60+70 {
		t.Fatalf("dated: %+v %v", dated.Pagination, dated.Summary)
	}
	if d := get("?start_date=2026-03-05&end_date=2026-03-07&max_items=1"); d.Pagination.TotalItems != 3 {
		t.Fatalf("max_items is ignored with a date: %+v", d.Pagination)
	}
	if m := get("?max_items=5"); m.Pagination.TotalItems != 5 || len(m.Transactions) != 5 {
		t.Fatalf("max_items: %+v", m.Pagination)
	}
	types := get("?transaction_types=deposit&transaction_types=agent_job_refund")
	if types.Pagination.TotalItems != 3 {
		t.Fatalf("types: %+v", types.Pagination)
	}
	if c := get("?transaction_types=charge,usage&limit=1"); c.Pagination.TotalItems != 32 || c.Pagination.TotalPages != 32 {
		t.Fatalf("aliases: %+v", c.Pagination)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?page=0", "?page=x", "?start_date=2026-13-01", "?end_date=yesterday", "?transaction_types=bogus", "?max_items=10001", "?max_items=0"} {
		if st := h.do("u1", "GET", "/billing/usage"+q, nil, nil); st != 422 {
			t.Errorf("%s: %d, want 422", q, st)
		}
	}
	if st := h.do("", "GET", "/billing/usage", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("anonymous: %d", st)
	}
}

// TestBillingProjectorIdempotent applies every event again, in reverse order, and the read
// model does not move.
func TestBillingProjectorIdempotent(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	h.grant("u1", "g1", 1000)
	h.endSession("u1", "s1", 125, 10, events.EndClosed, time.Now())
	h.webhook(checkoutEvent("evt_c", "checkout.session.completed", "cs_1", "u1", 700, "paid"), "")
	before := h.balance("u1")
	var all []events.Envelope
	h.a.Events.Scan(context.Background(), "", func(e events.Envelope) error { all = append(all, e); return nil })
	for i := len(all) - 1; i >= 0; i-- {
		if err := ProjectBalance(context.Background(), h.a, all[i]); err != nil {
			t.Fatal(err)
		}
	}
	after := h.balance("u1")
	if before.BalanceCents != 1000-21+700 || after.BalanceCents != before.BalanceCents || after.Summary != before.Summary {
		t.Fatalf("before %+v after %+v", before, after)
	}
	r := projections.NewReplay("")
	if err := r.Run(context.Background(), h.a.Events); err != nil {
		t.Fatal(err)
	}
	diffs, _ := r.Reconcile(context.Background(), h.a.Docs)
	for _, d := range diffs {
		if !d.Equal() {
			t.Fatalf("replay differs: %+v", d)
		}
	}
}

// TestBillingProjectorConcurrent delivers every event many times at once, as a bus with
// several workers and the inline projection may, and the balance counts each once.
func TestBillingProjectorConcurrent(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	ctx := context.Background()
	var evs []events.Envelope
	for i := 0; i < 20; i++ {
		secs := float64(30 * i)
		d := events.SessionEndedData{SessionID: fmt.Sprintf("c%d", i), UserID: "u1", Reason: events.EndClosed, EndedAt: time.Now().UTC(),
			BillableSeconds: secs, CentsPerMinute: 10, ChargeCents: events.ChargeCents(secs, 10)}
		e, _ := events.New(fmt.Sprintf("end-c%d", i), "u1", events.SessionEnded, d.EndedAt, d)
		stored, err := h.a.Events.Append(ctx, events.SessionStream(d.SessionID), events.Any, e)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, stored...)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range evs {
				if err := ProjectBalance(ctx, h.a, e); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var want int64
	for i := 0; i < 20; i++ {
		want -= events.ChargeCents(float64(30*i), 10)
	}
	b := h.balance("u1")
	if b.BalanceCents != want || b.Summary.Transactions != 19 || len(b.Pending) != 0 {
		t.Fatalf("balance %d (want %d), %d transactions, pending %v", b.BalanceCents, want, b.Summary.Transactions, b.Pending)
	}
}

// TestBillingReplayReportsDifferences: a read model that disagrees with the log is reported.
func TestBillingReplayReportsDifferences(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	ctx := context.Background()
	h.grant("u1", "g1", 700)
	h.grant("u2", "g2", 300)
	b := h.balance("u1")
	b.BalanceCents += 5 // money invented outside the log
	if err := projections.Put(ctx, h.a.Docs, projections.BalanceCollection, "u1", b); err != nil {
		t.Fatal(err)
	}
	r := projections.NewReplay("")
	if err := r.Run(ctx, h.a.Events); err != nil {
		t.Fatal(err)
	}
	diffs, err := r.Reconcile(ctx, h.a.Docs)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if bad := projections.PrintReconciliation(&out, diffs, r.Events); bad != 1 || !strings.Contains(out.String(), "DIFF +5") {
		t.Fatalf("%d differences:\n%s", bad, out.String())
	}
	// A user's replay alone, and a balance the log knows nothing of.
	h.a.Docs.Delete(ctx, projections.BalanceCollection, "u2")
	r = projections.NewReplay("u2")
	r.Run(ctx, h.a.Events)
	diffs, _ = r.Reconcile(ctx, h.a.Docs)
	if len(diffs) != 1 || !diffs[0].Missing || diffs[0].Replayed.BalanceCents != 300 {
		t.Fatalf("missing balance: %+v", diffs)
	}
}
