package functions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/stripe"
)

// webhookLimit is the largest webhook body read; Stripe's events are a few KiB.
const webhookLimit = 64 << 10

// StripeWebhook verifies a Stripe webhook against the signing secret and records what it
// reports on the user's account stream: a paid Checkout Session credits its deposit exactly once
// (the decision sees a recorded success and adds nothing, and racing deliveries collide on the
// event id derived from the session id), a failed asynchronous payment marks the deposit failed,
// a refund debits the growth of the charge's refunded amount. Anything unsigned, badly signed,
// too old or of another API version is a 400 and records nothing; other event types are 200 and
// ignored.
func StripeWebhook(a *app.App, w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, webhookLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return httpapi.Errorf(http.StatusRequestEntityTooLarge, "webhook body over %d bytes", webhookLimit)
		}
		return httpapi.BadRequest("could not read the webhook body")
	}
	if a.Config.StripeWebhookSecret == "" {
		return httpapi.BadRequest("the Stripe webhook is not configured on this server (no webhook secret)")
	}
	ev, err := stripe.Verify(body, r.Header.Get("Stripe-Signature"), a.Config.StripeWebhookSecret, a.Config.StripeAnyAPIVersion)
	switch {
	case errors.Is(err, stripe.ErrSignature):
		return httpapi.BadRequest("invalid Stripe-Signature: missing, not made with the webhook secret, or too old")
	case errors.Is(err, stripe.ErrAPIVersion):
		return httpapi.BadRequest(fmt.Sprintf("event of Stripe API version %q; this server reads %q", ev.APIVersion, stripe.APIVersion))
	case err != nil:
		return httpapi.BadRequest("the webhook payload is not a Stripe event")
	}
	res, err := handleStripeEvent(a, r, ev)
	if err != nil {
		return err
	}
	res["received"] = true
	res["type"] = string(ev.Type)
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

func handleStripeEvent(a *app.App, r *http.Request, ev stripego.Event) (map[string]any, error) {
	ctx := r.Context()
	at := time.Unix(ev.Created, 0).UTC()
	if ev.Created == 0 {
		at = a.Clock.Now()
	}
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed":
		var cs stripego.CheckoutSession
		if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &cs) != nil || cs.ID == "" {
			return nil, httpapi.BadRequest("the event carries no Checkout Session")
		}
		userID := cs.Metadata["user_id"]
		if userID == "" {
			userID = cs.ClientReferenceID
		}
		if userID == "" {
			return map[string]any{"ignored": "not a Codeset deposit"}, nil
		}
		if ev.Type == "checkout.session.async_payment_failed" {
			stored, err := updateAccount(ctx, a, userID, func(acct *events.Account) ([]events.Envelope, error) {
				return acct.FailDeposit(events.DepositFailedData{DepositID: cs.Metadata["deposit_id"], CheckoutSessionID: cs.ID, StripeEventID: ev.ID}, at)
			})
			return map[string]any{"recorded": len(stored) > 0}, err
		}
		if cs.PaymentStatus != stripego.CheckoutSessionPaymentStatusPaid && cs.PaymentStatus != stripego.CheckoutSessionPaymentStatusNoPaymentRequired {
			// Completed but not yet paid (an asynchronous method): async_payment_succeeded follows.
			return map[string]any{"credited": false, "payment_status": string(cs.PaymentStatus)}, nil
		}
		if cs.AmountTotal <= 0 {
			return map[string]any{"credited": false}, nil
		}
		d := events.DepositSucceededData{DepositID: cs.Metadata["deposit_id"], CheckoutSessionID: cs.ID,
			AmountCents: cs.AmountTotal, Currency: string(cs.Currency), StripeEventID: ev.ID}
		if cs.PaymentIntent != nil {
			d.PaymentIntentID = cs.PaymentIntent.ID
		}
		stored, err := updateAccount(ctx, a, userID, func(acct *events.Account) ([]events.Envelope, error) {
			return acct.SucceedDeposit(d, at)
		})
		return map[string]any{"credited": len(stored) > 0}, err
	case "charge.refunded":
		var ch stripego.Charge
		if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &ch) != nil || ch.ID == "" {
			return nil, httpapi.BadRequest("the event carries no charge")
		}
		d := events.PaymentRefundedData{ChargeID: ch.ID, CumulativeRefundCents: ch.AmountRefunded, ChargeAmountCents: ch.Amount, StripeEventID: ev.ID}
		if ch.PaymentIntent != nil {
			d.PaymentIntentID = ch.PaymentIntent.ID
		}
		if ch.Refunds != nil {
			for _, rf := range ch.Refunds.Data {
				d.RefundIDs = append(d.RefundIDs, rf.ID)
			}
		}
		userID, err := chargeOwner(a, r, ch.Metadata["user_id"], d.PaymentIntentID)
		if err != nil || userID == "" {
			return map[string]any{"ignored": "not a Codeset payment"}, err
		}
		stored, err := updateAccount(ctx, a, userID, func(acct *events.Account) ([]events.Envelope, error) {
			return acct.RefundPayment(d, at)
		})
		return map[string]any{"debited": len(stored) > 0}, err
	}
	return map[string]any{"ignored": "event type not handled"}, nil
}

// chargeOwner finds whose payment a charge is: the user id the deposit put in the
// PaymentIntent's metadata, or the deposit that recorded the PaymentIntent.
func chargeOwner(a *app.App, r *http.Request, metadataUser, paymentIntentID string) (string, error) {
	if metadataUser != "" || paymentIntentID == "" {
		return metadataUser, nil
	}
	p, err := projections.Get[projections.Payment](r.Context(), a.Docs, projections.PaymentCollection, paymentIntentID)
	if errors.Is(err, projections.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("payment %s: %w", paymentIntentID, err)
	}
	return p.UserID, nil
}
