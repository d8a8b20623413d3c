package functions

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox/cloudrun"
	"github.com/codeset/codeset/shared/sandbox/cloudrun/fakerun"
)

// TestVerifyDemoSamplesOnCloudRun: the demo samples, archives with no image of their own, run on
// the Cloud Run runtime through the whole system: each session and each oracle is a service of
// the base image given the archive's signed URL (the fake Admin API's instances run the real
// agent and unpack the archive as `codeset sandboxd` does), and every sample grades as it does
// locally.
func TestVerifyDemoSamplesOnCloudRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end verification runs real agents; skipped with -short")
	}
	const base = "registry.example/proj/codeset/sandbox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fake := fakerun.New(t)
	fake.PollsUntilDone = 1
	rt, err := cloudrun.New(context.Background(), cloudrun.Options{
		Project: "proj", Region: "europe-west1", Invoker: "api@proj.iam.gserviceaccount.com", BaseImage: base,
		PollInterval: 5 * time.Millisecond, ReadyTimeout: time.Minute,
		ClientOptions: []option.ClientOption{option.WithEndpoint(fake.URL), option.WithoutAuthentication()},
		HTTPClient:    func(context.Context, string) (*http.Client, error) { return &http.Client{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	var signer *servedBlobs
	env := newVerifyEnvWith(t, "embedded", nil, rt, func(a *app.App) {
		signer = serveBlobs(t, a.Blobs)
		a.Blobs = signer
	})
	checkDemoSamples(t, env)
	// Three services per sample (the session's, and an oracle's per verification), each of
	// the base image given its archive's URL.
	if n := signer.n.Load(); n != int64(3*len(env.samples)) {
		t.Errorf("%d archive URLs signed for %d samples, want 3 each", n, len(env.samples))
	}
}

// servedBlobs is the App's blob store, whose signed URLs a test server answers: what a Cloud
// Storage bucket is to gcsblob.
type servedBlobs struct {
	blob.Store
	url string
	n   atomic.Int64
}

func serveBlobs(t testing.TB, store blob.Store) *servedBlobs {
	s := &servedBlobs{Store: store}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.ParseInt(q.Get("size"), 10, 64)
		if q.Get("sig") != "valid" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		b, err := blob.ReadAll(r.Context(), store, blob.Ref{Digest: q.Get("digest"), Size: size})
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *servedBlobs) SignedURL(ctx context.Context, ref blob.Ref, ttl time.Duration) (string, error) {
	s.n.Add(1)
	q := url.Values{"digest": {ref.Digest}, "size": {strconv.FormatInt(ref.Size, 10)}, "sig": {"valid"}}
	return s.url + "/?" + q.Encode(), nil
}
