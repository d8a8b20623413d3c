package pubsub_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/pubsub"
)

func pushBody(t *testing.T, data []byte) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"message":         map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": "m1", "attributes": map[string]string{"type": "x"}},
		"subscription":    "projects/p/subscriptions/s",
		"deliveryAttempt": 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestPushHandlerStatuses: 2xx for success and for what can never succeed (so Pub/Sub stops
// redelivering it), 5xx for a failure worth retrying; the envelope reaches deliver intact.
func TestPushHandlerStatuses(t *testing.T) {
	env := events.Envelope{ID: "e1", Stream: "session-1", Version: 3, Type: "session.ready", SchemaVersion: 1, UserID: "u1", Data: json.RawMessage(`{"a":1}`)}
	good, _ := json.Marshal(env)
	retry := errors.New("store unavailable")
	cases := []struct {
		name      string
		body      string
		result    error
		want      int
		delivered bool
	}{
		{"delivered", pushBody(t, good), nil, http.StatusNoContent, true},
		{"failed, redeliver", pushBody(t, good), retry, http.StatusInternalServerError, true},
		{"undeliverable", pushBody(t, good), fmt.Errorf("no such event: %w", pubsub.ErrUndeliverable), http.StatusNoContent, true},
		{"not JSON", "{", nil, http.StatusNoContent, false},
		{"data not an envelope", pushBody(t, []byte("hello")), nil, http.StatusNoContent, false},
		{"envelope without stream", pushBody(t, []byte(`{"id":"e1","version":1,"type":"t"}`)), nil, http.StatusNoContent, false},
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *events.Envelope
			h := pubsub.PushHandler(logger, func(_ context.Context, e events.Envelope) error {
				got = &e
				return tc.result
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/_consumers/c", bytes.NewBufferString(tc.body)))
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if (got != nil) != tc.delivered {
				t.Fatalf("delivered = %v, want %v", got != nil, tc.delivered)
			}
			if got != nil && (got.ID != env.ID || got.Stream != env.Stream || got.Version != 3 || string(got.Data) != `{"a":1}`) {
				t.Fatalf("delivered %+v, want %+v", *got, env)
			}
		})
	}
}
