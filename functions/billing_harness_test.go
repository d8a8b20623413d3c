package functions

// The harness of the billing tests: an App on a fresh SQLite file served over HTTP, the bearer
// token as the user id, Stripe webhooks signed with stripe-go's test helper.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/stripe"
)

const billingSecret = "whsec_billingtestbillingtest"

type billingHarness struct {
	t   *testing.T
	a   *app.App
	url string // where it is served
}

func newBillingHarness(t testing.TB, tune func(*config.Config)) *billingHarness {
	t.Helper()
	return newBillingHarnessOn(t, "embedded", tune)
}

// newBillingHarnessOn is newBillingHarness on backend "embedded" or "gcp" (Firestore and Pub/Sub
// on their emulators, pushing to the harness's own server).
func newBillingHarnessOn(t testing.TB, backend string, tune func(*config.Config)) *billingHarness {
	t.Helper()
	a := openApp(t, appSpec{Backend: backend, DataDir: memDir(t), Serve: true, Tune: func(cfg *config.Config) {
		cfg.StripeWebhookSecret = billingSecret
		cfg.CostPerMinuteCents, cfg.MinimumDepositCents = 10, 500
		if tune != nil {
			tune(cfg)
		}
	}})
	h := &billingHarness{a: a.App, url: a.URL}
	if tt, ok := t.(*testing.T); ok {
		h.t = tt
	}
	return h
}

// do sends a JSON request as user ("" for none) and decodes the answer into out.
func (h *billingHarness) do(user, method, path string, body any, out any) int {
	h.t.Helper()
	return callJSON(h.t, h.url, user, method, path, body, out)
}

// webhook posts a Stripe event signed with secret (the harness's when empty).
func (h *billingHarness) webhook(payload []byte, secret string) (int, string) {
	if secret == "" {
		secret = billingSecret
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	return h.postWebhook(payload, signed.Header)
}

func (h *billingHarness) postWebhook(payload []byte, sig string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, h.url+app.Prefix+"/billing/webhook", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func (h *billingHarness) balance(user string) projections.Balance {
	b, err := projections.Get[projections.Balance](context.Background(), h.a.Docs, projections.BalanceCollection, user)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		panic(err)
	}
	return b
}

// grant credits user through the account stream, as identity's sign-up credit does.
func (h *billingHarness) grant(user, creditID string, cents int64) {
	if _, err := updateAccount(context.Background(), h.a, user, func(acct *events.Account) ([]events.Envelope, error) {
		return acct.GrantCredit(events.CreditGrantedData{CreditID: creditID, AmountCents: cents, Reason: "test"}, h.a.Clock.Now())
	}); err != nil {
		panic(err)
	}
}

// endSession records the end of a session on its own stream, with the data the sessions
// capability writes, and returns the charge.
func (h *billingHarness) endSession(user, sessionID string, seconds float64, cpm int64, reason string, at time.Time) int64 {
	d := events.SessionEndedData{SessionID: sessionID, UserID: user, Reason: reason, EndedAt: at.UTC(),
		BillableSeconds: seconds, CentsPerMinute: cpm, ChargeCents: events.ChargeCents(seconds, cpm)}
	e, err := events.New("end-"+sessionID, user, events.SessionEnded, at, d)
	if err != nil {
		panic(err)
	}
	if _, err := record(context.Background(), h.a, events.SessionStream(sessionID), events.Any, e); err != nil {
		panic(err)
	}
	return d.ChargeCents
}

// checkoutEvent is a Stripe event about a Checkout Session of user.
func checkoutEvent(evtID, typ, csID, user string, amount int64, paymentStatus string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":%q,"created":%d,"type":%q,"data":{"object":{"id":%q,"object":"checkout.session","amount_total":%d,"currency":"usd","payment_status":%q,"payment_intent":"pi_%s","client_reference_id":%q,"metadata":{"user_id":%q,"deposit_id":"dep_%s"}}}}`,
		evtID, stripe.APIVersion, time.Now().Unix(), typ, csID, amount, paymentStatus, csID, user, user, csID))
}

// refundEvent is a charge.refunded event for the charge of a Checkout Session.
func refundEvent(evtID, chargeID, csID, user string, amount, refunded int64) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":%q,"created":%d,"type":"charge.refunded","data":{"object":{"id":%q,"object":"charge","amount":%d,"amount_refunded":%d,"payment_intent":"pi_%s","metadata":{"user_id":%q}}}}`,
		evtID, stripe.APIVersion, time.Now().Unix(), chargeID, amount, refunded, csID, user))
}

func webhookHeader(payload []byte, secret string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret}).Header
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// memDir is a temporary directory in memory when the machine has one (/dev/shm): the billing
// tests commit thousands of small transactions, and an fsync each on disk would dominate them.
func memDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "codeset-billing-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
