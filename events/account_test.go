package events

import (
	"errors"
	"testing"
	"time"
)

// applier appends decided events to the account as a store would, and returns how many.
func applier(t *testing.T, a *Account) func([]Envelope, error) int {
	return func(evs []Envelope, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Version = a.Version + 1
			e.Stream = AccountStream(a.UserID)
			if err := a.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
		return len(evs)
	}
}

func TestAccountDecisions(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewAccount("u1")
	apply := applier(t, a)
	if n := apply(a.RecordCustomer("cus_1", at)); n != 1 || a.CustomerID != "cus_1" {
		t.Fatalf("customer: %d %q", n, a.CustomerID)
	}
	if n := apply(a.RecordCustomer("cus_2", at)); n != 0 || a.CustomerID != "cus_1" {
		t.Fatalf("second customer recorded: %d %q", n, a.CustomerID)
	}
	apply(a.RequestDeposit(DepositRequestedData{DepositID: "d1", CheckoutSessionID: "cs_1", AmountCents: 1000, Currency: "usd"}, at))
	if n := apply(a.FailDeposit(DepositFailedData{CheckoutSessionID: "cs_0"}, at)); n != 1 {
		t.Fatal("a failure of an unknown session is recorded too")
	}
	ok := DepositSucceededData{CheckoutSessionID: "cs_1", AmountCents: 1000, Currency: "usd"}
	evs, err := a.SucceedDeposit(ok, at)
	if err != nil || len(evs) != 1 || evs[0].ID != "deposit_succeeded:cs_1" {
		t.Fatalf("success: %v %+v", err, evs)
	}
	apply(evs, nil)
	if n := apply(a.SucceedDeposit(ok, at.Add(time.Second))); n != 0 {
		t.Fatal("deposit credited twice")
	}
	if n := apply(a.FailDeposit(DepositFailedData{CheckoutSessionID: "cs_1"}, at)); n != 0 {
		t.Fatal("a failure after the success was recorded")
	}
	if _, err := a.SucceedDeposit(DepositSucceededData{CheckoutSessionID: "cs_x"}, at); !errors.Is(err, ErrInvalidAmount) {
		t.Fatalf("zero deposit: %v", err)
	}

	// Refunds report the charge's cumulative refunded amount.
	ref := func(cum int64) []Envelope {
		evs, err := a.RefundPayment(PaymentRefundedData{ChargeID: "ch_1", CumulativeRefundCents: cum, ChargeAmountCents: 1000}, at)
		if err != nil {
			t.Fatal(err)
		}
		apply(evs, nil)
		return evs
	}
	if evs := ref(300); len(evs) != 1 || amount(t, evs[0]) != 300 {
		t.Fatalf("first refund: %+v", evs)
	}
	if evs := ref(300); len(evs) != 0 {
		t.Fatal("duplicate refund debited")
	}
	if evs := ref(200); len(evs) != 0 {
		t.Fatal("an older report debited")
	}
	if evs := ref(5000); len(evs) != 1 || amount(t, evs[0]) != 700 {
		t.Fatalf("refund over the charge: %+v", evs)
	}

	// Agent jobs: charged once, refunded once, never more than charged.
	if _, err := a.RefundAgentJob(AgentJobRefundedData{JobID: "j1", AmountCents: 100}, at); !errors.Is(err, ErrNotCharged) {
		t.Fatalf("refund of an uncharged job: %v", err)
	}
	apply(a.ChargeAgentJob(AgentJobChargedData{JobID: "j1", AmountCents: 100}, at))
	if n := apply(a.ChargeAgentJob(AgentJobChargedData{JobID: "j1", AmountCents: 100}, at)); n != 0 {
		t.Fatal("job charged twice")
	}
	evs, err = a.RefundAgentJob(AgentJobRefundedData{JobID: "j1", AmountCents: 999}, at)
	if err != nil || len(evs) != 1 {
		t.Fatal(err)
	}
	var d AgentJobRefundedData
	evs[0].Decode(&d)
	if d.AmountCents != 100 {
		t.Fatalf("refund %d exceeds the charge", d.AmountCents)
	}
	apply(evs, nil)
	if n := apply(a.RefundAgentJob(AgentJobRefundedData{JobID: "j1"}, at)); n != 0 {
		t.Fatal("job refunded twice")
	}
}

func amount(t *testing.T, e Envelope) int64 {
	var d PaymentRefundedData
	if err := e.Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.AmountCents
}
