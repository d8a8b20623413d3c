package emulator_test

import (
	"context"
	"testing"

	"cloud.google.com/go/storage"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/blobtest"
	"github.com/codeset/codeset/shared/blob/gcsblob"
	"github.com/codeset/codeset/shared/emulator"
)

// TestBucketServesTheStorageClient: the blob contract through a client that finds the emulator
// as the App's does (STORAGE_EMULATOR_HOST, set by Bucket), which reads objects by path on the
// emulator's host.
func TestBucketServesTheStorageClient(t *testing.T) {
	emulator.Bucket(t) // starts the emulator and points the variable at it
	client, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	blobtest.Run(t, func(t *testing.T) blob.Store { return gcsblob.New(client, emulator.Bucket(t)) })
}
