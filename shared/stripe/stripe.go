// Package stripe is the payments adapter: a Stripe customer per user, a Checkout Session per
// deposit (stripe-go v76), and the verification and reading of Stripe's webhooks. It knows
// nothing of balances; functions/ turns what it reads into account events.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"
)

// Client creates customers and Checkout Sessions.
type Client struct{ api *client.API }

// New returns a client for secretKey; apiURL points it elsewhere than Stripe (stripe-mock).
func New(secretKey, apiURL string) *Client {
	cfg := &stripego.BackendConfig{
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		MaxNetworkRetries: stripego.Int64(2),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelError},
	}
	if apiURL != "" {
		cfg.URL = stripego.String(apiURL)
	}
	backends := &stripego.Backends{
		API:     stripego.GetBackendWithConfig(stripego.APIBackend, cfg),
		Connect: stripego.GetBackendWithConfig(stripego.ConnectBackend, cfg),
		Uploads: stripego.GetBackendWithConfig(stripego.UploadsBackend, cfg),
	}
	return &Client{api: client.New(secretKey, backends)}
}

// CreateCustomer creates the Stripe customer of a user. The idempotency key makes a retry after
// a lost answer return the same customer instead of a second one.
func (c *Client) CreateCustomer(ctx context.Context, userID, email, idempotencyKey string) (string, error) {
	p := &stripego.CustomerParams{Params: stripego.Params{Context: ctx}}
	if email != "" {
		p.Email = stripego.String(email)
	}
	p.AddMetadata("user_id", userID)
	p.SetIdempotencyKey(idempotencyKey)
	cus, err := c.api.Customers.New(p)
	if err != nil {
		return "", fmt.Errorf("create stripe customer: %w", err)
	}
	return cus.ID, nil
}

// Checkout is a deposit to collect through a Checkout Session.
type Checkout struct {
	DepositID   string // idempotency key and metadata
	UserID      string
	CustomerID  string
	AmountCents int64
	Currency    string
	SuccessURL  string
	CancelURL   string
}

// CheckoutSession is what Stripe answered.
type CheckoutSession struct {
	ID  string
	URL string
}

// CreateCheckoutSession opens a Checkout Session in payment mode for the deposit. The user and
// deposit ids ride in the session's metadata and in its PaymentIntent's (so a refund's charge
// names its user even when it arrives before the completion).
func (c *Client) CreateCheckoutSession(ctx context.Context, d Checkout) (CheckoutSession, error) {
	meta := map[string]string{"user_id": d.UserID, "deposit_id": d.DepositID}
	p := &stripego.CheckoutSessionParams{
		Params:            stripego.Params{Context: ctx, Metadata: meta},
		Mode:              stripego.String(string(stripego.CheckoutSessionModePayment)),
		Customer:          stripego.String(d.CustomerID),
		ClientReferenceID: stripego.String(d.UserID),
		SuccessURL:        stripego.String(d.SuccessURL),
		CancelURL:         stripego.String(d.CancelURL),
		LineItems: []*stripego.CheckoutSessionLineItemParams{{
			Quantity: stripego.Int64(1),
			PriceData: &stripego.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripego.String(d.Currency),
				UnitAmount:  stripego.Int64(d.AmountCents),
				ProductData: &stripego.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripego.String("Codeset balance deposit")},
			},
		}},
		PaymentIntentData: &stripego.CheckoutSessionPaymentIntentDataParams{Metadata: meta},
	}
	p.SetIdempotencyKey(d.DepositID)
	s, err := c.api.CheckoutSessions.New(p)
	if err != nil {
		return CheckoutSession{}, fmt.Errorf("create checkout session: %w", err)
	}
	return CheckoutSession{ID: s.ID, URL: s.URL}, nil
}

// ErrSignature: the payload is not signed with the webhook secret, the signature is too old, or
// the header is missing or malformed.
var ErrSignature = errors.New("stripe: bad webhook signature")

// ErrPayload: a correctly signed payload that is not a Stripe event.
var ErrPayload = errors.New("stripe: webhook payload is not an event")

// ErrAPIVersion: the event was rendered for another Stripe API version than stripe-go's.
var ErrAPIVersion = errors.New("stripe: webhook event of another API version")

// Verify checks payload against its Stripe-Signature header and returns the event.
func Verify(payload []byte, header, secret string, anyAPIVersion bool) (stripego.Event, error) {
	if header == "" || secret == "" {
		return stripego.Event{}, ErrSignature
	}
	if err := webhook.ValidatePayloadWithTolerance(payload, header, secret, webhook.DefaultTolerance); err != nil {
		return stripego.Event{}, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	var e stripego.Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	if !anyAPIVersion && e.APIVersion != stripego.APIVersion {
		return e, fmt.Errorf("%w: %s, want %s", ErrAPIVersion, e.APIVersion, stripego.APIVersion)
	}
	return e, nil
}

// APIVersion is the Stripe API version stripe-go speaks.
const APIVersion = stripego.APIVersion
