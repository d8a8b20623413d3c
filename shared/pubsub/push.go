package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/codeset/codeset/events"
)

// ErrUndeliverable marks a delivery that can never succeed, however often Pub/Sub retries it
// (an event that is not in the store, for instance): the push handler acknowledges it and logs
// it rather than have Pub/Sub redeliver it until it is dead-lettered.
var ErrUndeliverable = errors.New("pubsub: message can never be handled")

// PushRequest is the JSON body of a Pub/Sub push delivery. Data is base64 in the JSON, which
// encoding/json decodes into the byte slice.
type PushRequest struct {
	Message struct {
		Data        []byte            `json:"data"`
		Attributes  map[string]string `json:"attributes"`
		MessageID   string            `json:"messageId"`
		OrderingKey string            `json:"orderingKey"`
	} `json:"message"`
	Subscription    string `json:"subscription"`
	DeliveryAttempt int    `json:"deliveryAttempt"`
}

// maxPush bounds a push body: a Pub/Sub message is at most 10 MB, base64 makes it 4/3 larger.
const maxPush = 16 << 20

// PushHandler serves Pub/Sub push deliveries: it decodes the event envelope from the message and
// calls deliver. It answers 204 when deliver succeeded and when the message can never be handled
// (not an envelope, or deliver says ErrUndeliverable), so Pub/Sub stops redelivering it; and
// 500 when deliver failed otherwise, so Pub/Sub redelivers it with backoff.
func PushHandler(logger *slog.Logger, deliver func(ctx context.Context, e events.Envelope) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req PushRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPush)).Decode(&req); err != nil {
			logger.ErrorContext(r.Context(), "push: not a Pub/Sub push body; dropped", "path", r.URL.Path, "error", err.Error())
			w.WriteHeader(http.StatusNoContent)
			return
		}
		e, err := decodeEnvelope(req.Message.Data)
		if err != nil {
			logger.ErrorContext(r.Context(), "push: message is not an event envelope; dropped", "path", r.URL.Path,
				"subscription", req.Subscription, "message_id", req.Message.MessageID, "error", err.Error())
			w.WriteHeader(http.StatusNoContent)
			return
		}
		attrs := []any{"path", r.URL.Path, "subscription", req.Subscription, "message_id", req.Message.MessageID,
			"stream", e.Stream, "version", e.Version, "type", e.Type, "delivery_attempt", req.DeliveryAttempt}
		switch err := deliver(r.Context(), e); {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, ErrUndeliverable):
			logger.ErrorContext(r.Context(), "push: undeliverable event; dropped", append(attrs, "error", err.Error())...)
			w.WriteHeader(http.StatusNoContent)
		default:
			logger.WarnContext(r.Context(), "push: delivery failed; Pub/Sub will redeliver", append(attrs, "error", err.Error())...)
			http.Error(w, "delivery failed, retry", http.StatusInternalServerError)
		}
	})
}

func decodeEnvelope(data []byte) (events.Envelope, error) {
	var e events.Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode envelope: %w", err)
	}
	if e.ID == "" || e.Stream == "" || e.Version < 1 || e.Type == "" {
		return e, fmt.Errorf("envelope without id, stream, version or type: id=%q stream=%q version=%s type=%q",
			e.ID, e.Stream, strconv.FormatInt(e.Version, 10), e.Type)
	}
	return e, nil
}
