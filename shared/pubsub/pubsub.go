// Package pubsub is the GCP event bus on Cloud Pub/Sub: a publisher that sends each appended
// event on one topic with its stream as ordering key and marks it published in the outbox once
// Pub/Sub has acknowledged it; the admin calls that create the topic and one push subscription per
// consumer; and the HTTP handler that receives push deliveries. With PUBSUB_EMULATOR_HOST set
// the client library talks to the emulator.
package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/codeset/codeset/events"
)

// Client is a Pub/Sub client for one project.
type Client struct {
	c       *pubsub.Client
	project string
}

// Open returns a client for project. The connection is made on first use.
func Open(ctx context.Context, project string) (*Client, error) {
	c, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("pubsub client for %s: %w", project, err)
	}
	return &Client{c: c, project: project}, nil
}

// Close releases the connection. Stop publishers first.
func (c *Client) Close() error { return c.c.Close() }

func (c *Client) topicName(id string) string { return "projects/" + c.project + "/topics/" + id }

func (c *Client) subscriptionName(id string) string {
	return "projects/" + c.project + "/subscriptions/" + id
}

// PublishTimeout bounds how long Publish waits for Pub/Sub to acknowledge an event.
var PublishTimeout = 10 * time.Second

// Publisher implements events.Publisher on a Pub/Sub topic.
type Publisher struct {
	pub   *pubsub.Publisher
	store events.Store
}

var _ events.Publisher = (*Publisher)(nil)

// Publisher returns the publisher of topic, which marks what it publishes in store.
func (c *Client) Publisher(topic string, store events.Store) *Publisher {
	pub := c.c.Publisher(topic)
	// Each stream's events reach a consumer in version order; the runner fills gaps anyway.
	pub.EnableMessageOrdering = true
	// Publishing happens in the request after the commit: give up soon when Pub/Sub is away
	// (the events stay in the outbox for the relay) instead of the library's 60 s.
	pub.PublishSettings.Timeout = PublishTimeout
	return &Publisher{pub: pub, store: store}
}

// Attributes of every message, so that subscriptions can filter without decoding the data.
const (
	AttrType    = "type"
	AttrStream  = "stream"
	AttrVersion = "version"
	AttrID      = "id"
)

// Publish sends each event as its JSON envelope with the stream as ordering key, waits for
// Pub/Sub to acknowledge each, and marks the acknowledged ones published. An event that was not
// acknowledged stays in the outbox for the relay, and the error says which.
func (p *Publisher) Publish(ctx context.Context, evs ...events.Envelope) error {
	results := make([]*pubsub.PublishResult, len(evs))
	for i, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode %s@%d: %w", e.Stream, e.Version, err)
		}
		results[i] = p.pub.Publish(ctx, &pubsub.Message{
			Data:        data,
			OrderingKey: e.Stream,
			Attributes: map[string]string{
				AttrType: e.Type, AttrStream: e.Stream, AttrVersion: strconv.FormatInt(e.Version, 10), AttrID: e.ID,
			},
		})
	}
	var (
		acked []events.Envelope
		errs  []error
	)
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			// A failed publish pauses its ordering key; resume it so that the relay (or the next
			// append) can publish this stream again, from this event on.
			p.pub.ResumePublish(evs[i].Stream)
			errs = append(errs, fmt.Errorf("publish %s@%d: %w", evs[i].Stream, evs[i].Version, err))
			continue
		}
		acked = append(acked, evs[i])
	}
	if len(acked) > 0 {
		if err := p.store.MarkPublished(ctx, acked...); err != nil {
			errs = append(errs, fmt.Errorf("mark published: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Stop sends what is still batched and stops the publisher's goroutines.
func (p *Publisher) Stop() { p.pub.Stop() }

// EnsureTopic creates topic unless it exists.
func (c *Client) EnsureTopic(ctx context.Context, topic string) error {
	_, err := c.c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: c.topicName(topic)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// Subscription describes a push subscription of one consumer.
type Subscription struct {
	Name     string // the consumer's name
	Topic    string
	Endpoint string // URL Pub/Sub pushes to
	// DeadLetterTopic receives a message after MaxDeliveryAttempts failed pushes ("" for none).
	DeadLetterTopic     string
	MaxDeliveryAttempts int32         // 5 to 100; default 10
	MinBackoff          time.Duration // delay before the first redelivery; default 1s
	MaxBackoff          time.Duration // default 60s
	AckDeadline         time.Duration // time a push may take before it is redelivered; default 300s
}

// EnsurePushSubscription creates s with message ordering, its retry policy and its dead-letter
// policy; if it exists already it points it at s.Endpoint (a restarted local server listens on
// another port).
func (c *Client) EnsurePushSubscription(ctx context.Context, s Subscription) error {
	if s.MaxDeliveryAttempts == 0 {
		s.MaxDeliveryAttempts = 10
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = time.Minute
	}
	if s.AckDeadline == 0 {
		s.AckDeadline = 300 * time.Second
	}
	sub := &pubsubpb.Subscription{
		Name:                  c.subscriptionName(s.Name),
		Topic:                 c.topicName(s.Topic),
		PushConfig:            &pubsubpb.PushConfig{PushEndpoint: s.Endpoint},
		AckDeadlineSeconds:    int32(s.AckDeadline / time.Second),
		EnableMessageOrdering: true,
		RetryPolicy: &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(s.MinBackoff),
			MaximumBackoff: durationpb.New(s.MaxBackoff),
		},
	}
	if s.DeadLetterTopic != "" {
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     c.topicName(s.DeadLetterTopic),
			MaxDeliveryAttempts: s.MaxDeliveryAttempts,
		}
	}
	_, err := c.c.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if status.Code(err) == codes.AlreadyExists {
		err = c.c.SubscriptionAdminClient.ModifyPushConfig(ctx, &pubsubpb.ModifyPushConfigRequest{
			Subscription: sub.Name, PushConfig: sub.PushConfig,
		})
	}
	if err != nil {
		return fmt.Errorf("subscription %s: %w", s.Name, err)
	}
	return nil
}

// EnsurePullSubscription creates a pull subscription name on topic unless it exists: the dead-
// letter topic needs one, or what is sent there is dropped.
func (c *Client) EnsurePullSubscription(ctx context.Context, name, topic string) error {
	_, err := c.c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: c.subscriptionName(name), Topic: c.topicName(topic), EnableMessageOrdering: true,
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("subscription %s: %w", name, err)
	}
	return nil
}

// Receive pulls subscription name and calls f for each message until ctx ends. Tests and
// operators (reading the dead letters) use it; consumers are pushed to.
func (c *Client) Receive(ctx context.Context, name string, f func(context.Context, *pubsub.Message)) error {
	return c.c.Subscriber(name).Receive(ctx, f)
}
