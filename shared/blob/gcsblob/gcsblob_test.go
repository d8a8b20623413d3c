package gcsblob_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/blobtest"
	"github.com/codeset/codeset/shared/blob/gcsblob"
)

// TestContract runs the blob contract against an in-process Cloud Storage (fake-gcs-server), on
// a loopback port, a fresh bucket per case.
func TestContract(t *testing.T) {
	t.Parallel()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", NoListener: false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	var n atomic.Int64
	blobtest.Run(t, func(t *testing.T) blob.Store {
		bucket := fmt.Sprintf("blobs-%d", n.Add(1))
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
		return gcsblob.New(srv.Client(), bucket)
	})
}
