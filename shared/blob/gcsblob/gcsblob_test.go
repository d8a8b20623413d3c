package gcsblob_test

import (
	"context"
	"testing"

	"cloud.google.com/go/storage"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/blobtest"
	"github.com/codeset/codeset/shared/blob/gcsblob"
	"github.com/codeset/codeset/shared/emulator"
)

// TestContract runs the blob contract against the in-process Cloud Storage emulator
// (fake-gcs-server on a loopback port), a fresh bucket per case, with a client built as the App
// builds it: storage.NewClient, found through STORAGE_EMULATOR_HOST, which writes through the
// JSON API and reads through the XML API.
func TestContract(t *testing.T) {
	t.Parallel()
	emulator.Bucket(t) // sets STORAGE_EMULATOR_HOST before the client is built
	client, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return gcsblob.New(client, emulator.Bucket(t))
	})
}
