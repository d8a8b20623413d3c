package stripe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/codeset/codeset/shared/stripe/stripetest"
)

func TestCustomerAndCheckoutSessionOnStripeMock(t *testing.T) {
	c := New("sk_test_123", stripetest.URL(t))
	ctx := context.Background()
	cus, err := c.CreateCustomer(ctx, "usr_1", "a@example.com", "customer-usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cus, "cus_") {
		t.Fatalf("customer id %q", cus)
	}
	s, err := c.CreateCheckoutSession(ctx, Checkout{DepositID: "dep_1", UserID: "usr_1", CustomerID: cus,
		AmountCents: 1500, Currency: "usd", SuccessURL: "http://localhost/ok", CancelURL: "http://localhost/no"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID, "cs_") || s.URL == "" {
		t.Fatalf("checkout session %+v", s)
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_test"
	body := []byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","api_version":"` + APIVersion + `","data":{"object":{"id":"cs_1"}}}`)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
	e, err := Verify(body, signed.Header, secret, false)
	if err != nil || e.ID != "evt_1" || e.Type != "checkout.session.completed" {
		t.Fatalf("good signature: %v %+v", err, e)
	}
	tampered := []byte(strings.Replace(string(body), "cs_1", "cs_2", 1))
	if _, err := Verify(tampered, signed.Header, secret, false); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered body: %v", err)
	}
	if _, err := Verify(body, signed.Header, "whsec_other", false); !errors.Is(err, ErrSignature) {
		t.Errorf("other secret: %v", err)
	}
	if _, err := Verify(body, "", secret, false); !errors.Is(err, ErrSignature) {
		t.Errorf("missing header: %v", err)
	}
	if _, err := Verify(body, "t=1,v1=deadbeef", secret, false); !errors.Is(err, ErrSignature) {
		t.Errorf("garbage header: %v", err)
	}
	old := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now().Add(-time.Hour)})
	if _, err := Verify(body, old.Header, secret, false); !errors.Is(err, ErrSignature) {
		t.Errorf("hour-old signature: %v", err)
	}
	other := []byte(strings.Replace(string(body), APIVersion, "2020-08-27", 1))
	os := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: other, Secret: secret})
	if _, err := Verify(other, os.Header, secret, false); !errors.Is(err, ErrAPIVersion) {
		t.Errorf("other API version: %v", err)
	}
	if _, err := Verify(other, os.Header, secret, true); err != nil {
		t.Errorf("other API version, allowed: %v", err)
	}
	junk := []byte("not json")
	js := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: junk, Secret: secret})
	if _, err := Verify(junk, js.Header, secret, false); !errors.Is(err, ErrPayload) {
		t.Errorf("signed junk: %v", err)
	}
}
