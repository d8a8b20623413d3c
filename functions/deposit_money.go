package functions

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/stripe"
)

// depositRequest is the spec's MoneyDepositRequest, plus the optional return URLs of Checkout.
type depositRequest struct {
	AmountCents int64  `json:"amount_cents" required:"true"`
	Currency    string `json:"currency"`
	SuccessURL  string `json:"success_url"`
	CancelURL   string `json:"cancel_url"`
}

// DepositMoney opens a Stripe Checkout Session for a deposit: the user's Stripe customer is
// created on the first deposit, the deposit id is the idempotency key and rides in the metadata.
// Nothing is credited here; the webhook credits the paid session.
func DepositMoney(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req depositRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	if min := minimumDeposit(a.Config.MinimumDepositCents); req.AmountCents < min {
		return httpapi.Invalid("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", min), "body", "amount_cents")
	}
	if req.Currency == "" {
		req.Currency = "usd"
	}
	if strings.ToLower(req.Currency) != "usd" {
		return httpapi.Invalid("literal_error", "Input should be 'usd'", "body", "currency")
	}
	req.Currency = "usd"
	for _, u := range []struct{ name, v string }{{"success_url", req.SuccessURL}, {"cancel_url", req.CancelURL}} {
		if u.v != "" && !strings.HasPrefix(u.v, "https://") && !strings.HasPrefix(u.v, "http://") {
			return httpapi.Invalid("url_parsing", "Input should be a valid URL", "body", u.name)
		}
	}
	if a.Config.StripeSecretKey == "" {
		return httpapi.BadRequest("payments are not configured on this server (no Stripe key); an operator can add credit with `codeset credits grant`")
	}
	var err error
	if req.SuccessURL, req.CancelURL, err = returnURLs(a.Config, r, req.SuccessURL, req.CancelURL); err != nil {
		return err
	}
	ctx := r.Context()
	userID := app.Caller(ctx).UserID
	client := stripe.New(a.Config.StripeSecretKey, a.Config.StripeAPIURL)

	evs, err := a.Events.Load(ctx, events.AccountStream(userID), 1)
	if err != nil {
		return fmt.Errorf("load account: %w", err)
	}
	acct, err := events.FoldAccount(userID, evs)
	if err != nil {
		return err
	}
	customerID := acct.CustomerID
	if customerID == "" {
		// The idempotency key makes concurrent first deposits share one customer.
		if customerID, err = client.CreateCustomer(ctx, userID, "", "customer-"+userID); err != nil {
			return stripeError(err)
		}
		if _, err := updateAccount(ctx, a, userID, func(acct *events.Account) ([]events.Envelope, error) {
			return acct.RecordCustomer(customerID, a.Clock.Now())
		}); err != nil {
			return err
		}
	}
	depositID := ids.Prefixed("dep")
	cs, err := client.CreateCheckoutSession(ctx, stripe.Checkout{DepositID: depositID, UserID: userID, CustomerID: customerID,
		AmountCents: req.AmountCents, Currency: req.Currency, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL})
	if err != nil {
		return stripeError(err)
	}
	if _, err := updateAccount(ctx, a, userID, func(acct *events.Account) ([]events.Envelope, error) {
		return acct.RequestDeposit(events.DepositRequestedData{DepositID: depositID, CheckoutSessionID: cs.ID,
			AmountCents: req.AmountCents, Currency: req.Currency, CustomerID: customerID}, a.Clock.Now())
	}); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"checkout_url": cs.URL, "amount_cents": req.AmountCents, "currency": req.Currency})
	return nil
}

// returnURLs are where Checkout sends the payer back: the request's, else the configured
// return URL, else on the embedded default this server's /docs. A GCP deployment's functions
// serve no page, so there the setting is required when a deposit names none.
func returnURLs(cfg config.Config, r *http.Request, success, cancel string) (string, string, error) {
	if success != "" && cancel != "" {
		return success, cancel, nil
	}
	base := cfg.DepositReturnURL
	if base == "" {
		if cfg.Backend != "embedded" {
			return "", "", httpapi.BadRequest("give success_url and cancel_url: this server has no page to send the payer back to (an operator sets CODESET_DEPOSIT_RETURN_URL)")
		}
		base = "http://" + r.Host + "/docs"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			base = "https://" + r.Host + "/docs"
		}
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	if success == "" {
		success = base + sep + "deposit=success"
	}
	if cancel == "" {
		cancel = base + sep + "deposit=cancelled"
	}
	return success, cancel, nil
}

// stripeError turns Stripe's refusal of a request into a 400 that says why, and anything else
// (Stripe unreachable, 5xx) into a 502.
func stripeError(err error) error {
	var se *stripego.Error
	if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 {
		return httpapi.BadRequest("payment provider refused the deposit: " + se.Msg)
	}
	return &httpapi.Error{Status: http.StatusBadGateway, Detail: "payment provider unavailable: " + err.Error()}
}
