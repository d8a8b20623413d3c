package gcsblob_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

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

// TestSignedURL: a signed URL answers a plain GET, with no credentials, with the value's bytes;
// a value that is not stored gets no URL.
func TestSignedURL(t *testing.T) {
	t.Parallel()
	// The fake serves objects by path on its own host, as Cloud Storage does on its XML host.
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "envs"})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	u, _ := url.Parse(srv.URL())
	s := gcsblob.New(srv.Client(), "envs")
	s.Signing = &storage.SignedURLOptions{GoogleAccessID: "sandboxes@proj.iam.gserviceaccount.com", PrivateKey: pemKey, Hostname: u.Host, Insecure: true}
	ctx := context.Background()
	ref, err := blob.PutBytes(ctx, s, []byte("an environment archive"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.SignedURL(ctx, ref, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(signed, "X-Goog-Signature=") || !strings.Contains(signed, "X-Goog-Expires=") {
		t.Errorf("not a V4 signed URL: %s", signed)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "an environment archive" {
		t.Fatalf("GET the signed URL: %s %q", resp.Status, body)
	}
	missing := blob.Ref{Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}
	if _, err := s.SignedURL(ctx, missing, time.Hour); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a URL of nothing: %v", err)
	}
}

// TestInbox: a signed upload URL takes a plain PUT of the inbox object with no credentials;
// Collect keeps what is there by content, twice the same Ref; a name nothing was uploaded to is
// ErrNotFound. (The fake stores what the PUT sends but will not hand it to a reader, so the
// collected object is created through the fake's own API.)
func TestInbox(t *testing.T) {
	t.Parallel()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "results"})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	u, _ := url.Parse(srv.URL())
	s := gcsblob.New(srv.Client(), "results")
	s.Signing = &storage.SignedURLOptions{GoogleAccessID: "backend@proj.iam.gserviceaccount.com", PrivateKey: pemKey, Hostname: u.Host, Insecure: true}
	ctx := context.Background()
	if _, err := s.Collect(ctx, "agent-jobs/j1/result.json"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("collect before any upload: %v", err)
	}
	put, err := s.UploadURL(ctx, "agent-jobs/j1/result.json", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(put, "/results/inbox/agent-jobs/j1/result.json?") || !strings.Contains(put, "X-Goog-Signature=") {
		t.Fatalf("not a signed URL of the inbox object: %s", put)
	}
	req, _ := http.NewRequest(http.MethodPut, put, strings.NewReader(`{"job_id":"j1"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := srv.Client().Bucket("results").Object("inbox/agent-jobs/j1/result.json").Attrs(ctx); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("PUT the upload URL: %s, object: %v", resp.Status, err)
	}
	srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "results", Name: "inbox/agent-jobs/j2/result.json"}, Content: []byte(`{"job_id":"j2"}`)})
	ref, err := s.Collect(ctx, "agent-jobs/j2/result.json")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Collect(ctx, "agent-jobs/j2/result.json")
	if err != nil || again != ref {
		t.Fatalf("collected again: %v %v, first %v", again, err, ref)
	}
	got, err := blob.ReadAll(ctx, s, ref)
	if err != nil || string(got) != `{"job_id":"j2"}` {
		t.Fatalf("read back: %q %v", got, err)
	}
}
