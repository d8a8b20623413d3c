package cloudrun_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/option"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
	"github.com/codeset/codeset/shared/dataset"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/cloudrun"
	"github.com/codeset/codeset/shared/sandbox/cloudrun/fakerun"
)

const invoker = "codeset-api@proj.iam.gserviceaccount.com"

func newRuntime(t *testing.T, fake *fakerun.Server, tune ...func(*cloudrun.Options)) *cloudrun.Runtime {
	t.Helper()
	tokens := 0
	opts := cloudrun.Options{
		Project: "proj", Region: "europe-west1", Invoker: invoker,
		ServiceAccount: "sandbox@proj.iam.gserviceaccount.com",
		PollInterval:   5 * time.Millisecond, ReadyTimeout: 20 * time.Second,
		ClientOptions: []option.ClientOption{option.WithEndpoint(fake.URL), option.WithoutAuthentication()},
		// No ID tokens in tests: a plain client, counted to prove the hook is used.
		HTTPClient: func(ctx context.Context, audience string) (*http.Client, error) {
			tokens++
			return &http.Client{}, nil
		},
	}
	for _, f := range tune {
		f(&opts)
	}
	r, err := cloudrun.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if tokens == 0 {
			t.Error("the HTTP client hook was never used")
		}
	})
	return r
}

func spec(id, image string) sandbox.Spec {
	return sandbox.Spec{SessionID: id, UserID: "user_ABC", Dataset: "demo", SampleID: "s1",
		Env: sandbox.Environment{Image: image, WorkDir: "/workspace/repo"}}
}

func TestCreateReadyExecDelete(t *testing.T) {
	fake := fakerun.New(t)
	r := newRuntime(t, fake)
	ctx := context.Background()
	info, err := r.Start(ctx, spec("sess_0193abcd", "registry.example/proj/samples/s1:latest"))
	if err != nil {
		t.Fatal(err)
	}
	name := "projects/proj/locations/europe-west1/services/sbx-sess-0193abcd"
	if info.Name != name || info.Location != "europe-west1" || info.WorkDir != "/workspace/repo" || info.URL == "" || info.Secret == "" {
		t.Fatalf("info %+v", info)
	}

	// The service definition: one always-on instance of the sample's image running the agent.
	svc := fake.Created(name)
	tmpl := svc.GetTemplate()
	c := tmpl.GetContainers()[0]
	checks := map[string]bool{
		"internal ingress":        svc.GetIngress() == runpb.IngressTraffic_INGRESS_TRAFFIC_INTERNAL_ONLY,
		"min = max = 1":           tmpl.GetScaling().GetMinInstanceCount() == 1 && tmpl.GetScaling().GetMaxInstanceCount() == 1,
		"service min 1":           svc.GetScaling().GetMinInstanceCount() == 1,
		"cpu always allocated":    c.GetResources() != nil && !c.GetResources().GetCpuIdle(),
		"image":                   c.GetImage() == "registry.example/proj/samples/s1:latest",
		"entry point":             strings.Join(c.GetCommand(), " ")+" "+strings.Join(c.GetArgs(), " ") == "/usr/local/bin/codeset sandboxd --init --track-changes",
		"labels":                  svc.GetLabels()["codeset-session"] == "sess_0193abcd" && svc.GetLabels()["codeset-user"] == "user_abc",
		"runs as its own account": tmpl.GetServiceAccount() == "sandbox@proj.iam.gserviceaccount.com",
		"hour-long requests":      tmpl.GetTimeout().AsDuration() == time.Hour,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("service definition: %s is wrong: %v", what, svc)
		}
	}
	// Only the backend may invoke it.
	p := fake.Policy(name)
	if len(p.GetBindings()) != 1 || p.GetBindings()[0].GetRole() != "roles/run.invoker" ||
		strings.Join(p.GetBindings()[0].GetMembers(), ",") != "serviceAccount:"+invoker {
		t.Errorf("IAM policy %v", p)
	}

	// The agent answers with the secret the service was given.
	res, err := r.Client(info).Exec(ctx, "pwd; echo hi", 10*time.Second)
	if err != nil || !strings.HasSuffix(res.Stdout, "/workspace/repo\nhi\n") {
		t.Fatalf("exec: %+v %v", res, err)
	}
	if !r.Alive(ctx, info) {
		t.Error("a ready sandbox is not alive")
	}

	if err := r.Stop(ctx, info); err != nil {
		t.Fatal(err)
	}
	if fake.Exists(name) || len(fake.Deleted()) != 1 {
		t.Errorf("service not deleted: %v", fake.Deleted())
	}
	if r.Alive(ctx, info) {
		t.Error("alive after Stop")
	}
	if _, err := r.Client(info).Exec(ctx, "true", time.Second); !errors.Is(err, sandbox.ErrUnreachable) {
		t.Errorf("exec after Stop: %v", err)
	}
	if err := r.Stop(ctx, info); err != nil {
		t.Errorf("stopping a deleted sandbox: %v", err)
	}

	// A start whose Info was lost is stopped by its session id alone.
	if _, err := r.Start(ctx, spec("sess_lost", "img")); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, sandbox.Info{Name: "sess_lost"}); err != nil {
		t.Fatal(err)
	}
	if fake.Exists("projects/proj/locations/europe-west1/services/sbx-sess-lost") {
		t.Error("service stopped by session id still exists")
	}
}

func TestFailedRevision(t *testing.T) {
	fake := fakerun.New(t)
	r := newRuntime(t, fake)
	_, err := r.Start(context.Background(), spec("sess_broken", "registry.example/proj/samples/fail:latest"))
	if err == nil {
		t.Fatal("a failed revision started")
	}
	if !strings.Contains(err.Error(), "failed to become ready") || !strings.Contains(err.Error(), "container failed to start") {
		t.Errorf("error does not say why: %v", err)
	}
	name := "projects/proj/locations/europe-west1/services/sbx-sess-broken"
	if fake.Exists(name) {
		t.Error("the failed service was left behind")
	}
	// Keep the hook-used check satisfied: a successful start in the same runtime.
	info, err := r.Start(context.Background(), spec("sess_ok", "img"))
	if err != nil {
		t.Fatal(err)
	}
	r.Stop(context.Background(), info)
}

func TestStartWithoutImage(t *testing.T) {
	fake := fakerun.New(t)
	r := newRuntime(t, fake)
	if _, err := r.Start(context.Background(), spec("sess_noimg", "")); err == nil {
		t.Error("started without an image")
	}
	info, err := r.Start(context.Background(), spec("sess_img", "img"))
	if err != nil {
		t.Fatal(err)
	}
	r.Stop(context.Background(), info)
}

func TestServiceID(t *testing.T) {
	cases := map[string]string{
		"sess_0193abcd":                   "sbx-sess-0193abcd",
		"sess_" + strings.Repeat("a", 60): "",
		"Sess_UPPER":                      "",
	}
	for in, want := range cases {
		got := cloudrun.ServiceID(in)
		if len(got) > 49 || !strings.HasPrefix(got, "sbx-") || strings.ToLower(got) != got {
			t.Errorf("ServiceID(%q) = %q is not a valid service id", in, got)
		}
		if want != "" && got != want {
			t.Errorf("ServiceID(%q) = %q, want %q", in, got, want)
		}
	}
	if cloudrun.ServiceID("Sess_A") == cloudrun.ServiceID("Sess_B") {
		t.Error("hashed ids collide")
	}
}

// TestVerifyInAnOracleService: verification runs in a second service fresh from the session's
// image; the session's own agent refuses to verify, reports its changes, and is not modified;
// the agent's edit of the test is not graded; the oracle's service is deleted afterwards.
func TestVerifyInAnOracleService(t *testing.T) {
	fake := fakerun.New(t)
	// The image: a work tree with a bug (add subtracts) and a test of it.
	fake.Images = func(image, wd string) error {
		files := map[string]string{
			"calc.sh": "add() { echo $(( $1 - $2 )); }\n",
			"test.sh": ". ./calc.sh\nif [ \"$(add 1 2)\" = 3 ]; then echo PASS add; else echo FAIL add; fi\n",
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(wd, name), []byte(content), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	r := newRuntime(t, fake)
	ctx := context.Background()
	sp := spec("sess_verify", "registry.example/proj/samples/calc:1")
	info, err := r.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx, info)
	if args := fake.Created(info.Name).GetTemplate().GetContainers()[0].GetArgs(); !slices.Contains(args, "--track-changes") || slices.Contains(args, "--oracle") {
		t.Errorf("a session's agent runs with %v", args)
	}
	session := r.Client(info)
	if _, err := session.Verify(ctx, sandbox.VerifyRequest{Command: "true"}); err == nil {
		t.Error("the session's own agent ran the oracle")
	}
	req := sandbox.VerifyRequest{Command: "sh test.sh", Protected: []string{"test.sh"}, Timeout: time.Minute}

	// The agent games the test instead of fixing the bug.
	if _, err := session.Upload(ctx, "test.sh", []byte("echo PASS add\n"), false); err != nil {
		t.Fatal(err)
	}
	res, err := sandbox.Verify(ctx, r, info, sp, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "FAIL add\n" || !slices.Contains(res.IgnoredChanges, "test.sh") {
		t.Fatalf("the agent's test was graded: %+v", res)
	}
	// Then fixes it.
	if ok, msg, err := session.StrReplace(ctx, "calc.sh", "$1 - $2", "$1 + $2"); err != nil || !ok {
		t.Fatal(msg, err)
	}
	if res, err = sandbox.Verify(ctx, r, info, sp, req); err != nil || res.Stdout != "PASS add\n" {
		t.Fatalf("the fix was not graded: %+v %v", res, err)
	}
	// The session is as the agent left it, and no oracle service is left.
	if out, err := session.Exec(ctx, "cat test.sh calc.sh", time.Minute); err != nil || out.Stdout != "echo PASS add\nadd() { echo $(( $1 + $2 )); }\n" {
		t.Errorf("the session after verifying: %+v %v", out, err)
	}
	for _, name := range fake.Deleted() {
		if !strings.Contains(name, "-o") {
			t.Errorf("deleted %s, which is not an oracle's", name)
		}
	}
	if n := len(fake.Deleted()); n != 2 {
		t.Errorf("%d services deleted, want the 2 oracles", n)
	}
}

// A verification outlives the request that started it: another instance of the backend (another
// Runtime) finds the oracle by the run's id alone, waits for it, and stops it.
func TestVerifyFromAnotherInstance(t *testing.T) {
	fake := fakerun.New(t)
	fake.Images = func(image, wd string) error {
		return os.WriteFile(filepath.Join(wd, "test.sh"), []byte("sleep 0.3; echo PASS\n"), 0o644)
	}
	first, second := newRuntime(t, fake), newRuntime(t, fake)
	ctx := context.Background()
	sp := spec("sess_two", "registry.example/proj/samples/two:1")
	info, err := first.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop(ctx, info)
	if err := first.StartVerify(ctx, info, sp, sandbox.VerifyRequest{Command: "sh test.sh", Timeout: time.Minute}, "job_1"); err != nil {
		t.Fatal(err)
	}
	if _, done, err := second.AwaitVerify(ctx, info, sp, "job_1", 0); err != nil || done {
		t.Fatalf("await at once: done %v, %v; want still running", done, err)
	}
	res, done, err := second.AwaitVerify(ctx, info, sp, "job_1", time.Minute)
	if err != nil || !done || res.Stdout != "PASS\n" {
		t.Fatalf("await: %+v, done %v, %v", res, done, err)
	}
	if _, _, err := second.AwaitVerify(ctx, info, sp, "job_2", 0); !errors.Is(err, sandbox.ErrNoSuchRun) {
		t.Errorf("await of a run never started: %v, want ErrNoSuchRun", err)
	}
	if err := second.StopVerify(ctx, info, sp, "job_1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.AwaitVerify(ctx, info, sp, "job_1", 0); !errors.Is(err, sandbox.ErrNoSuchRun) {
		t.Errorf("await after the stop: %v, want ErrNoSuchRun", err)
	}
	if err := first.StopVerify(ctx, info, sp, "job_1"); err != nil {
		t.Errorf("a second stop: %v", err)
	}
}

// TestListAndReclaim: the runtime lists the services codeset manages in its region (a session's
// and an oracle another instance left), with their session, role and creation time, and
// reclaiming one deletes its service.
func TestListAndReclaim(t *testing.T) {
	fake := fakerun.New(t)
	r := newRuntime(t, fake)
	ctx := context.Background()
	if _, err := r.Start(ctx, spec("sess_Mixed_Case", "img")); err != nil {
		t.Fatal(err)
	}
	parent := "projects/proj/locations/europe-west1/services/"
	left := time.Now().Add(-3 * time.Hour)
	fake.Plant(parent+"sbx-sess-old-oabcd", map[string]string{"managed-by": "codeset", "codeset-role": "oracle", "codeset-session": "sess_old"}, left)
	fake.Plant(parent+"someone-elses", map[string]string{"team": "web"}, left)
	fake.Plant("projects/proj/locations/us-east1/services/sbx-elsewhere", map[string]string{"managed-by": "codeset"}, left)

	listed, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 {
		t.Fatalf("listed %+v", listed)
	}
	session, oracle := listed[0], listed[1] // by name
	if !oracle.Oracle || oracle.SessionID != "sess_old" || oracle.CreatedAt.Sub(left).Abs() > time.Millisecond {
		t.Errorf("oracle %+v", oracle)
	}
	// The exact session id, not its label (lowercased).
	if session.Oracle || session.SessionID != "sess_Mixed_Case" || session.Name != parent+cloudrun.ServiceID("sess_Mixed_Case") || session.CreatedAt.IsZero() {
		t.Errorf("session %+v", session)
	}
	for _, l := range listed {
		if err := r.Reclaim(ctx, l); err != nil {
			t.Fatal(err)
		}
		if fake.Exists(l.Name) {
			t.Errorf("%s still exists", l.Name)
		}
	}
	if err := r.Reclaim(ctx, oracle); err != nil {
		t.Errorf("reclaim twice: %v", err)
	}
}

// signingStore is a blob store whose signed URLs are served by a test server: what gcsblob and
// its bucket are on GCP. Each URL carries a token the server checks, as a signature.
type signingStore struct {
	*fsblob.Store
	url    string
	signed atomic.Int64
}

func newSigningStore(t *testing.T) *signingStore {
	fs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &signingStore{Store: fs}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "ok" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		b, err := blob.ReadAll(r.Context(), fs, blob.Ref{Digest: strings.TrimPrefix(r.URL.Path, "/"), Size: size})
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

func (s *signingStore) SignedURL(ctx context.Context, ref blob.Ref, ttl time.Duration) (string, error) {
	if ttl < time.Hour {
		return "", fmt.Errorf("a URL for %s only: the sandbox may not get to it", ttl)
	}
	s.signed.Add(1)
	return fmt.Sprintf("%s/%s?size=%d&sig=ok", s.url, ref.Digest, ref.Size), nil
}

// calcArchive is the environment archive of a work tree with a bug (add subtracts) and a test
// of it, packed as the importer packs one, stored in s.
func calcArchive(t *testing.T, s blob.Store) blob.Ref {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tree")
	files := map[string][]byte{
		"calc.sh": []byte("add() { echo $(( $1 - $2 )); }\n"),
		"test.sh": []byte(". ./calc.sh\nif [ \"$(add 1 2)\" = 3 ]; then echo PASS add; else echo FAIL add; fi\n"),
	}
	if _, err := dataset.BuildRepo(context.Background(), files, filepath.Join(src, "repo")); err != nil {
		t.Fatal(err)
	}
	packed := filepath.Join(t.TempDir(), "env.tar.gz")
	if err := dataset.WriteArchive(src, packed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(packed)
	ref, err := blob.PutBytes(context.Background(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

const baseImage = "registry.example/proj/codeset/sandbox:1"

func envOf(c *runpb.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.GetEnv() {
		env[e.GetName()] = e.GetValue()
	}
	return env
}

// TestArchiveSampleOnTheBaseImage: a sample with an environment archive and no image runs in the
// base image, whose agent gets the archive's signed URL, digest and size and serves its tree at
// the fixed work dir; the oracle's service is built the same way, fresh from the archive.
func TestArchiveSampleOnTheBaseImage(t *testing.T) {
	fake := fakerun.New(t)
	r := newRuntime(t, fake, func(o *cloudrun.Options) { o.BaseImage = baseImage })
	store := newSigningStore(t)
	ref := calcArchive(t, store)
	ctx := context.Background()
	sp := sandbox.Spec{SessionID: "sess_archive", UserID: "user_ABC", Dataset: "demo", SampleID: "calc-1",
		Env: sandbox.Environment{WorkDir: "repo", ArchiveRef: &ref}, Blobs: store, ExpiresAt: time.Now().Add(time.Hour)}
	info, err := r.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx, info)
	c := fake.Created(info.Name).GetTemplate().GetContainers()[0]
	env := envOf(c)
	if c.GetImage() != baseImage || env[sandbox.ArchiveDigestEnv] != ref.Digest || env[sandbox.ArchiveSizeEnv] != strconv.FormatInt(ref.Size, 10) ||
		!strings.HasPrefix(env[sandbox.ArchiveURLEnv], store.url+"/") || env["CODESET_SANDBOX_WORK_DIR"] != "/workspace/repo" || c.GetWorkingDir() != "/workspace" {
		t.Fatalf("the container: image %s, working dir %s, env %v", c.GetImage(), c.GetWorkingDir(), env)
	}
	if p := c.GetStartupProbe(); p.GetPeriodSeconds()*p.GetFailureThreshold() != 240 {
		t.Errorf("an archive's startup probe waits %d s, want Cloud Run's 240", p.GetPeriodSeconds()*p.GetFailureThreshold())
	}
	if info.WorkDir != "/workspace/repo" {
		t.Errorf("work dir %q", info.WorkDir)
	}
	session := r.Client(info)
	out, err := session.Exec(ctx, "cat calc.sh; git status --porcelain; git log --format=%s", time.Minute)
	if err != nil || out.Stdout != "add() { echo $(( $1 - $2 )); }\nbase\n" {
		t.Fatalf("the unpacked tree: %+v %v", out, err)
	}

	// The oracle: a second base-image service, its own download of the same archive.
	if ok, msg, err := session.StrReplace(ctx, "calc.sh", "$1 - $2", "$1 + $2"); err != nil || !ok {
		t.Fatal(msg, err)
	}
	res, err := sandbox.Verify(ctx, r, info, sp, sandbox.VerifyRequest{Command: "sh test.sh", Protected: []string{"test.sh"}, Timeout: time.Minute})
	if err != nil || res.Stdout != "PASS add\n" {
		t.Fatalf("the fix was not graded: %+v %v", res, err)
	}
	oracles := fake.Deleted()
	if len(oracles) != 1 {
		t.Fatalf("deleted %v, want the oracle", oracles)
	}
	oc := fake.Created(oracles[0]).GetTemplate().GetContainers()[0]
	if oc.GetImage() != baseImage || envOf(oc)[sandbox.ArchiveDigestEnv] != ref.Digest || !slices.Contains(oc.GetArgs(), "--oracle") {
		t.Errorf("the oracle's container: %s %v %v", oc.GetImage(), oc.GetArgs(), envOf(oc))
	}
	if n := store.signed.Load(); n != 2 {
		t.Errorf("%d URLs signed, want 2 (the session's, the oracle's)", n)
	}
}

// TestArchiveSampleRefusals: what keeps an archive sample from starting is said, and a
// container whose archive is not the digest's never becomes ready.
func TestArchiveSampleRefusals(t *testing.T) {
	fake := fakerun.New(t)
	store := newSigningStore(t)
	ref := calcArchive(t, store)
	spec := func(id string, ref blob.Ref, blobs blob.Store) sandbox.Spec {
		return sandbox.Spec{SessionID: id, Env: sandbox.Environment{WorkDir: "repo", ArchiveRef: &ref}, Blobs: blobs, ExpiresAt: time.Now().Add(time.Hour)}
	}
	ctx := context.Background()
	noBase := newRuntime(t, fake)
	if _, err := noBase.Start(ctx, spec("sess_nobase", ref, store)); err == nil || !strings.Contains(err.Error(), "CODESET_CLOUDRUN_BASE_IMAGE") {
		t.Errorf("without a base image: %v", err)
	}
	r := newRuntime(t, fake, func(o *cloudrun.Options) { o.BaseImage = baseImage })
	if _, err := r.Start(ctx, spec("sess_nosign", ref, store.Store)); err == nil || !strings.Contains(err.Error(), "cannot sign") {
		t.Errorf("a store that cannot sign: %v", err)
	}
	forged := ref
	forged.Digest = "sha256:" + strings.Repeat("ab", 32)
	if _, err := r.Start(ctx, spec("sess_forged", forged, store)); err == nil || !strings.Contains(err.Error(), "failed to become ready") {
		t.Errorf("an archive that cannot be had: %v", err)
	}
	local := sandbox.Spec{SessionID: "sess_oci", Env: sandbox.Environment{Image: "oci:/images/x", WorkDir: "/w"}}
	if _, err := r.Start(ctx, local); err == nil || !strings.Contains(err.Error(), "local one") {
		t.Errorf("a local image: %v", err)
	}
	if fake.Exists("projects/proj/locations/europe-west1/services/"+cloudrun.ServiceID("sess_forged")) || len(fake.Deleted()) != 1 {
		t.Errorf("the service that never became ready was not deleted: %v", fake.Deleted())
	}
	// Both runtimes still run a sample with an image of its own.
	for i, rt := range []*cloudrun.Runtime{noBase, r} {
		info, err := rt.Start(ctx, sandbox.Spec{SessionID: fmt.Sprintf("sess_img%d", i), Env: sandbox.Environment{Image: "img", WorkDir: "/w"}})
		if err != nil {
			t.Fatal(err)
		}
		rt.Stop(ctx, info)
	}
}
