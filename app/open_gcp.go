package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"

	evfirestore "github.com/codeset/codeset/events/firestore"
	docfirestore "github.com/codeset/codeset/projections/firestore"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/gcsblob"
	"github.com/codeset/codeset/shared/firestoredb"
	"github.com/codeset/codeset/shared/pubsub"
)

// openGCP assembles the GCP backend: events and read models in Firestore, events published on
// Pub/Sub. Both clients connect on first use (FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST
// point them at the emulators). With a consumer base URL set (make run-emulated, the end-to-end
// test) it also creates the topic and one push subscription per consumer; on GCP, Terraform does.
func (a *App) openGCP(ctx context.Context) error {
	fs, err := firestoredb.Open(ctx, a.Config.Project)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, fs.Close)
	ps, err := pubsub.Open(ctx, a.Config.Project)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, ps.Close)
	if a.Config.BlobBucket == "" {
		return errors.New("the gcp backend needs a Cloud Storage bucket for large values: set CODESET_BLOB_BUCKET")
	}
	// Made on first use (it looks up credentials); STORAGE_EMULATOR_HOST points it at an
	// emulator.
	var gcs *storage.Client
	bucket := a.Config.BlobBucket
	blobs := &lazyBlobs{once[blob.Store]{open: func() (blob.Store, error) {
		c, err := storage.NewClient(context.Background())
		if err != nil {
			return nil, fmt.Errorf("cloud storage: %w", err)
		}
		gcs = c
		return gcsblob.New(c, bucket), nil
	}}}
	a.closers = append(a.closers, func() error {
		if _, ok := blobs.opened(); ok {
			return gcs.Close()
		}
		return nil
	})
	a.Blobs = blobs
	es := evfirestore.New(fs)
	a.Events, a.Docs = es, docfirestore.New(fs)
	a.openPipeline()
	pub := ps.Publisher(a.Config.Topic, es)
	a.closers = append(a.closers, func() error { pub.Stop(); return nil }) // before the client closes
	a.publisher = pub
	if a.Config.ConsumerBase != "" {
		return a.subscribeConsumers(ctx, ps)
	}
	return nil
}

// DeadLetterTopic is the topic Pub/Sub moves a message to after a consumer's endpoint failed it
// too often; a pull subscription of the same name keeps what lands there.
func DeadLetterTopic(topic string) string { return topic + "-dead-letter" }

// subscribeConsumers creates the events topic, its dead-letter topic, and one push subscription
// per consumer (named after it, ordered by stream, with retries and the dead-letter policy)
// pushing to <base>/_consumers/<name>.
func (a *App) subscribeConsumers(ctx context.Context, ps *pubsub.Client) error {
	topic, dead := a.Config.Topic, DeadLetterTopic(a.Config.Topic)
	for _, t := range []string{topic, dead} {
		if err := ps.EnsureTopic(ctx, t); err != nil {
			return err
		}
	}
	if err := ps.EnsurePullSubscription(ctx, dead, dead); err != nil {
		return err
	}
	base := strings.TrimRight(a.Config.ConsumerBase, "/")
	for _, c := range a.Wiring.Consumers {
		err := ps.EnsurePushSubscription(ctx, pubsub.Subscription{
			Name: c.Name, Topic: topic, Endpoint: base + ConsumerPath(c.Name), DeadLetterTopic: dead, AckDeadline: a.Config.AckDeadline,
		})
		if err != nil {
			return fmt.Errorf("consumer %s: %w", c.Name, err)
		}
	}
	a.Logger.Info("push subscriptions ready", "topic", topic, "consumers", len(a.Wiring.Consumers), "endpoint", base+ConsumerPath("{name}"))
	return nil
}
