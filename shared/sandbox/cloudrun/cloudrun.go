// Package cloudrun is the sandbox runtime on GCP: one Cloud Run service per session, from the
// sample's image (or, for a sample with an environment archive and no image, the sandbox base
// image, whose agent downloads the archive by a signed URL and unpacks it before it serves),
// with `codeset sandboxd` as its entry point, exactly one instance with its CPU always
// allocated, internal ingress and only the backend's service account allowed to invoke it.
package cloudrun

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/idtoken"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
)

// Options configure the runtime.
type Options struct {
	Project string
	Region  string
	// Invoker is the backend's service account (an e-mail): the only identity granted
	// roles/run.invoker on each sandbox.
	Invoker string
	// ServiceAccount is the identity the sandbox runs as; it should hold no roles at all.
	// Empty means Cloud Run's default (the project's compute account), which is too powerful
	// for untrusted code: set it in production.
	ServiceAccount string
	// Agent is the path of the codeset binary inside the sample images (default
	// /usr/local/bin/codeset).
	Agent string
	// BaseImage is the sandbox base image (scripts/sandbox/Dockerfile): the image of a sample
	// that has an environment archive and no image of its own. Empty: such samples do not run.
	BaseImage string
	// CPU and Memory of the one instance (defaults "2" and "4Gi").
	CPU, Memory string
	// VPCConnector, when set, lets the sandbox reach the VPC (e.g. a package mirror); its egress
	// stays private ranges only.
	VPCConnector string
	// PollInterval between checks of a creation or deletion (default 2 s); ReadyTimeout bounds
	// the wait for a sandbox to become ready (default 10 min).
	PollInterval, ReadyTimeout time.Duration
	// ClientOptions go to the Cloud Run Admin API client (tests: option.WithEndpoint of a fake,
	// option.WithoutAuthentication).
	ClientOptions []option.ClientOption
	// HTTPClient returns the client that carries requests to a sandbox at audience (its URL).
	// Default: one that adds a Google-signed ID token for audience, which the invoker check
	// needs. Tests pass a plain client.
	HTTPClient func(ctx context.Context, audience string) (*http.Client, error)
}

// Runtime runs sandboxes as Cloud Run services.
type Runtime struct {
	opts     Options
	services *run.ServicesClient
	clients  sync.Map // URL -> *sandbox.AgentClient
	// oracleURLs are the URLs of the oracle services this instance has looked up, by name.
	oracleURLs sync.Map
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New connects to the Cloud Run Admin API over REST.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Project == "" || opts.Region == "" {
		return nil, errors.New("cloud run sandboxes: project and region are required")
	}
	if opts.Invoker == "" {
		return nil, errors.New("cloud run sandboxes: the backend's service account (invoker) is required")
	}
	if opts.Agent == "" {
		opts.Agent = "/usr/local/bin/codeset"
	}
	if opts.CPU == "" {
		opts.CPU = "2"
	}
	if opts.Memory == "" {
		opts.Memory = "4Gi"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 10 * time.Minute
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = func(ctx context.Context, audience string) (*http.Client, error) {
			return idtoken.NewClient(ctx, audience)
		}
	}
	c, err := run.NewServicesRESTClient(ctx, opts.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("cloud run sandboxes: admin client: %w", err)
	}
	return &Runtime{opts: opts, services: c}, nil
}

// Close releases the Admin API client.
func (r *Runtime) Close() error { return r.services.Close() }

// Describe says, for the start-up log, where sandboxes run.
func (r *Runtime) Describe() string {
	return fmt.Sprintf("Cloud Run sandboxes in %s/%s, invoked as %s", r.opts.Project, r.opts.Region, r.opts.Invoker)
}

// ServiceID is the Cloud Run service id of a session's sandbox: lowercase letters, digits and
// hyphens, starting with a letter, at most 49 characters.
func ServiceID(sessionID string) string {
	s := "sbx-" + strings.ReplaceAll(sessionID, "_", "-")
	if len(s) <= 49 && serviceIDOK.MatchString(s) {
		return s
	}
	sum := sha256.Sum256([]byte(sessionID))
	return "sbx-" + hex.EncodeToString(sum[:12])
}

var serviceIDOK = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

var labelBad = regexp.MustCompile(`[^a-z0-9_-]`)

// label makes a label value: lowercase letters, digits, '_' and '-', at most 63 characters.
func label(v string) string {
	v = labelBad.ReplaceAllString(strings.ToLower(v), "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return v
}

func (r *Runtime) parent() string {
	return fmt.Sprintf("projects/%s/locations/%s", r.opts.Project, r.opts.Region)
}

// sessionAnnotation holds the session id of a sandbox service.
const sessionAnnotation = "codeset-session-id"

// Roles of a sandbox service: a session's, whose agent keeps a manifest of its work tree to
// report the agent's changes, or an oracle's, fresh from the image, which alone may verify.
const (
	roleSession = "session"
	roleOracle  = "oracle"
)

// archiveURLTTL is how long the signed URL of a sandbox's environment archive lives: the
// agent downloads it at start, and again only if Cloud Run restarts the container, whose tree
// is then fresh anyway; past the session's end nothing needs it.
func archiveURLTTL(spec sandbox.Spec) time.Duration {
	ttl := time.Until(spec.ExpiresAt) + 10*time.Minute
	return min(max(ttl, time.Hour), 7*24*time.Hour)
}

// container is what runs the sandbox of spec: the sample's image at its work dir, or the base
// image given the sample's environment archive (a signed URL, its digest and size), unpacked
// at the work dir a local sandbox has it at too.
type container struct {
	image, workDir string
	env            []*runpb.EnvVar
	archive        bool
}

func (r *Runtime) container(ctx context.Context, spec sandbox.Spec) (container, error) {
	env := spec.Env
	switch {
	case env.Image != "":
		if strings.HasPrefix(env.Image, "oci:") || strings.HasPrefix(env.Image, "docker-archive:") {
			return container{}, fmt.Errorf("the sample's image %q is a local one: Cloud Run pulls from a registry (scripts/sandbox-image.sh sample pushes one)", env.Image)
		}
		return container{image: env.Image, workDir: env.WorkDir}, nil
	case env.ArchiveRef == nil:
		return container{}, errors.New("the sample has no image and no environment archive in the blob store (an archive given as a path runs only on local sandboxes: import the dataset again)")
	case r.opts.BaseImage == "":
		return container{}, errors.New("the sample's environment is an archive, which runs in the sandbox base image: set CODESET_CLOUDRUN_BASE_IMAGE")
	}
	signer, ok := spec.Blobs.(blob.Signer)
	if !ok {
		return container{}, fmt.Errorf("the sample's environment archive: the blob store (%T) cannot sign URLs for the sandbox to download it", spec.Blobs)
	}
	url, err := signer.SignedURL(ctx, *env.ArchiveRef, archiveURLTTL(spec))
	if err != nil {
		return container{}, fmt.Errorf("the sample's environment archive: %w", err)
	}
	return container{image: r.opts.BaseImage, workDir: sandbox.InsideWorkDir(env), archive: true, env: []*runpb.EnvVar{
		{Name: sandbox.ArchiveURLEnv, Values: &runpb.EnvVar_Value{Value: url}},
		{Name: sandbox.ArchiveDigestEnv, Values: &runpb.EnvVar_Value{Value: env.ArchiveRef.Digest}},
		{Name: sandbox.ArchiveSizeEnv, Values: &runpb.EnvVar_Value{Value: strconv.FormatInt(env.ArchiveRef.Size, 10)}},
	}}, nil
}

// service is the sandbox's service definition.
func (r *Runtime) service(spec sandbox.Spec, c container, secret, role string) *runpb.Service {
	labels := map[string]string{"codeset-session": label(spec.SessionID), "codeset-user": label(spec.UserID),
		"codeset-role": role, "managed-by": "codeset"}
	args := []string{"sandboxd", "--init", "--track-changes"}
	if role == roleOracle {
		args = []string{"sandboxd", "--init", "--oracle"}
	}
	if !spec.ExpiresAt.IsZero() {
		// Lets an operator (or a sweep) find sandboxes that outlived their session.
		labels["codeset-expires"] = strconv.FormatInt(spec.ExpiresAt.Unix(), 10)
	}
	tmpl := &runpb.RevisionTemplate{
		Labels: labels,
		// Exactly one instance: the sandbox's state lives in it.
		Scaling:        &runpb.RevisionScaling{MinInstanceCount: 1, MaxInstanceCount: 1},
		ServiceAccount: r.opts.ServiceAccount,
		// The longest command (3600 s) must fit one request.
		Timeout:                       durationpb.New(time.Hour),
		MaxInstanceRequestConcurrency: 1000, // many concurrent execs in one session
		ExecutionEnvironment:          runpb.ExecutionEnvironment_EXECUTION_ENVIRONMENT_GEN2,
		Containers: []*runpb.Container{{
			Name:    "sandbox",
			Image:   c.image,
			Command: []string{r.opts.Agent},
			Args:    args,
			Env: append([]*runpb.EnvVar{
				{Name: sandbox.SecretEnv, Values: &runpb.EnvVar_Value{Value: secret}},
				{Name: "CODESET_SANDBOX_WORK_DIR", Values: &runpb.EnvVar_Value{Value: c.workDir}},
			}, c.env...),
			WorkingDir: workingDir(c),
			Ports:      []*runpb.ContainerPort{{Name: "http1", ContainerPort: 8080}},
			Resources: &runpb.ResourceRequirements{
				Limits: map[string]string{"cpu": r.opts.CPU, "memory": r.opts.Memory},
				// CPU always allocated: background processes keep running between requests.
				CpuIdle:         false,
				StartupCpuBoost: true,
			},
			StartupProbe: startupProbe(c),
		}},
	}
	if r.opts.VPCConnector != "" {
		tmpl.VpcAccess = &runpb.VpcAccess{Connector: r.opts.VPCConnector, Egress: runpb.VpcAccess_PRIVATE_RANGES_ONLY}
	}
	return &runpb.Service{
		Labels: labels,
		// The session id as it is (a label value is lowercased and cut): the sweep of leaked
		// sandboxes reads it back.
		Annotations: map[string]string{sessionAnnotation: spec.SessionID},
		Description: fmt.Sprintf("codeset %s sandbox of session %s (%s/%s)", role, spec.SessionID, spec.Dataset, spec.SampleID),
		Ingress:     runpb.IngressTraffic_INGRESS_TRAFFIC_INTERNAL_ONLY,
		Scaling:     &runpb.ServiceScaling{MinInstanceCount: 1, MaxInstanceCount: 1},
		Template:    tmpl,
	}
}

// workingDir is the container's working directory: the work dir, but for an archive's, which
// exists only once the agent unpacked it (the base image's /workspace holds it).
func workingDir(c container) string {
	if c.archive {
		return path.Dir(c.workDir)
	}
	return c.workDir
}

// startupProbe waits for the agent to listen: a minute for an image, four (Cloud Run's most)
// for an archive, which the agent downloads and unpacks first.
func startupProbe(c container) *runpb.Probe {
	p := &runpb.Probe{PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 60,
		ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: 8080}}}
	if c.archive {
		p.PeriodSeconds, p.FailureThreshold = 2, 120
	}
	return p
}

// Start creates the session's service, waits until its revision is ready, grants the backend
// (and only it) the right to invoke it, and returns once the agent answers. Any failure deletes
// what was created.
func (r *Runtime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	return r.start(ctx, spec, ServiceID(spec.SessionID), roleSession)
}

func (r *Runtime) start(ctx context.Context, spec sandbox.Spec, serviceID, role string) (sandbox.Info, error) {
	c, err := r.container(ctx, spec)
	if err != nil {
		return sandbox.Info{}, fmt.Errorf("start sandbox %s: %w", spec.SessionID, err)
	}
	info := sandbox.Info{
		Name:     r.parent() + "/services/" + serviceID,
		Secret:   sandbox.SecretOf(spec),
		Location: r.opts.Region,
		WorkDir:  c.workDir,
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.ReadyTimeout)
	defer cancel()
	svc, err := r.create(ctx, c, info, serviceID, role, spec)
	if err == nil {
		info.URL = svc.GetUri()
		err = r.ready(ctx, info)
	}
	if err != nil {
		r.Stop(context.WithoutCancel(ctx), info)
		return sandbox.Info{}, fmt.Errorf("start %s sandbox %s: %w", role, spec.SessionID, err)
	}
	info.CreatedAt = time.Now().UTC()
	return info, nil
}

// StartVerify starts the oracle in a sandbox of its own: a second service from the session's
// image, the only pristine copy of the environment there is on Cloud Run (everything in the
// session's container is the graded agent's to change, as root). The session's agent reports
// its changes against the manifest it took at start; the oracle's agent applies them, but for
// the protected paths, to its fresh tree and runs the verifier on its own, as a run of id. Its
// service is named after the session and id, and its secret is derived from the session's
// and id: any instance of the backend finds it again (AwaitVerify, StopVerify), and nothing
// needs storing. The graded code runs as root in the oracle: it cannot learn the session's
// secret from the oracle's.
func (r *Runtime) StartVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, req sandbox.VerifyRequest, id string) error {
	session, err := r.client(ctx, info)
	if err != nil {
		return err
	}
	layer, err := session.Changes(ctx)
	if err != nil {
		return fmt.Errorf("the session's changes: %w", err)
	}
	want := r.oracle(info, spec, id)
	oracleSpec := spec
	oracleSpec.Secret = want.Secret
	oracle, err := r.start(ctx, oracleSpec, path.Base(want.Name), roleOracle)
	if err != nil {
		return fmt.Errorf("%w: %v", sandbox.ErrUnreachable, err)
	}
	c, err := r.client(ctx, oracle)
	if err != nil {
		return err
	}
	req.Changes = layer
	_, err = c.Run(ctx, sandbox.RunRequest{ID: id, Verify: &req, Timeout: req.Timeout})
	return err
}

// AwaitVerify waits for the oracle run id in its service.
func (r *Runtime) AwaitVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string, wait time.Duration) (sandbox.VerifyResult, bool, error) {
	oracle := r.oracle(info, spec, id)
	// The service's URL is looked up once per instance: a wait is taken in steps of seconds,
	// and the Admin API's read quota is per project.
	if u, ok := r.oracleURLs.Load(oracle.Name); ok {
		oracle.URL = u.(string)
	} else {
		svc, err := r.services.GetService(ctx, &runpb.GetServiceRequest{Name: oracle.Name})
		if notFound(err) {
			return sandbox.VerifyResult{}, false, fmt.Errorf("%w: no oracle service %s", sandbox.ErrNoSuchRun, oracle.Name)
		}
		if err != nil {
			return sandbox.VerifyResult{}, false, fmt.Errorf("%w: oracle service %s: %s", sandbox.ErrUnreachable, oracle.Name, message(err))
		}
		oracle.URL = svc.GetUri()
		r.oracleURLs.Store(oracle.Name, oracle.URL)
	}
	c, err := r.client(ctx, oracle)
	if err != nil {
		return sandbox.VerifyResult{}, false, err
	}
	st, err := c.Await(ctx, id, wait)
	if err != nil {
		// Gone (stopped by another instance) or unreachable: the next wait asks the Admin API.
		r.oracleURLs.Delete(oracle.Name)
	}
	if err != nil || !st.Done {
		return sandbox.VerifyResult{}, false, err
	}
	a := st.Answer
	switch {
	case a == nil:
		return sandbox.VerifyResult{}, true, fmt.Errorf("%w: the oracle's run %s ended without an answer", sandbox.ErrUnreachable, id)
	case a.Rejected != "":
		return sandbox.VerifyResult{}, true, &sandbox.Rejection{Reason: a.Reason, Message: a.Rejected}
	case a.Error != "":
		return sandbox.VerifyResult{}, true, fmt.Errorf("oracle: %s", a.Error)
	case a.Result == nil:
		return sandbox.VerifyResult{}, true, errors.New("oracle: an empty answer")
	}
	return *a.Result, true, nil
}

// StopVerify deletes the oracle's service, and every process of the run with it.
func (r *Runtime) StopVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string) error {
	oracle := r.oracle(info, spec, id)
	r.oracleURLs.Delete(oracle.Name)
	return r.Stop(ctx, oracle)
}

// oracle is what the oracle run id of a session is known by: its service's name and its secret
// (not its URL, which Cloud Run assigns).
func (r *Runtime) oracle(info sandbox.Info, spec sandbox.Spec, id string) sandbox.Info {
	sum := sha256.Sum256([]byte(id))
	mac := hmac.New(sha256.New, []byte(info.Secret))
	mac.Write([]byte("oracle " + id))
	return sandbox.Info{
		Name:     r.parent() + "/services/" + OracleServiceID(spec.SessionID, hex.EncodeToString(sum[:4])),
		Secret:   hex.EncodeToString(mac.Sum(nil)),
		Location: r.opts.Region,
		WorkDir:  spec.Env.WorkDir,
	}
}

// OracleServiceID is the service id of one oracle run of a session: the session's service id
// with a suffix, within Cloud Run's 49 characters.
func OracleServiceID(sessionID, suffix string) string {
	id := ServiceID(sessionID)
	if len(id) > 49-len(suffix)-2 {
		id = id[:49-len(suffix)-2]
	}
	return strings.TrimRight(id, "-") + "-o" + suffix
}

func (r *Runtime) create(ctx context.Context, c container, info sandbox.Info, serviceID, role string, spec sandbox.Spec) (*runpb.Service, error) {
	op, err := r.services.CreateService(ctx, &runpb.CreateServiceRequest{
		Parent: r.parent(), ServiceId: serviceID, Service: r.service(spec, c, info.Secret, role),
	})
	if err != nil {
		return nil, fmt.Errorf("create service %s: %w", info.Name, err)
	}
	for {
		svc, err := op.Poll(ctx)
		if err != nil {
			if op.Done() {
				return nil, fmt.Errorf("service %s failed to become ready: %s", info.Name, message(err))
			}
			return nil, fmt.Errorf("wait for service %s: %w", info.Name, err)
		}
		if op.Done() {
			// The operation may end with a service whose revision did not become ready.
			if c := svc.GetTerminalCondition(); c != nil && c.GetState() != runpb.Condition_CONDITION_SUCCEEDED {
				return nil, fmt.Errorf("service %s failed to become ready: %s (%s)", info.Name, c.GetMessage(), c.GetState())
			}
			if svc.GetUri() == "" {
				return nil, fmt.Errorf("service %s is ready but has no URL", info.Name)
			}
			if _, err := r.services.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{
				Resource: info.Name,
				Policy: &iampb.Policy{Bindings: []*iampb.Binding{{
					Role: "roles/run.invoker", Members: []string{"serviceAccount:" + r.opts.Invoker},
				}}},
			}); err != nil {
				return nil, fmt.Errorf("grant the backend the right to invoke %s: %w", info.Name, err)
			}
			return svc, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("service %s not ready in time: %w", info.Name, ctx.Err())
		case <-time.After(r.opts.PollInterval):
		}
	}
}

// ready waits for the agent to answer: a new IAM binding takes a moment to apply.
func (r *Runtime) ready(ctx context.Context, info sandbox.Info) error {
	c, err := r.client(ctx, info)
	if err != nil {
		return err
	}
	for {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Health(hctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent of %s does not answer: %v", info.Name, err)
		case <-time.After(r.opts.PollInterval):
		}
	}
}

// Stop deletes the service, and with it the instance and every process in it. A service
// already gone is not an error.
func (r *Runtime) Stop(ctx context.Context, info sandbox.Info) error {
	if c, ok := r.clients.LoadAndDelete(info.URL); ok {
		c.(*sandbox.AgentClient).Close()
	}
	if !strings.Contains(info.Name, "/") {
		// Only the session id: a start that never returned its Info.
		info.Name = r.parent() + "/services/" + ServiceID(info.Name)
	}
	if !strings.HasPrefix(info.Name, r.parent()+"/services/") {
		return fmt.Errorf("stop sandbox: %q is not a service of %s", info.Name, r.parent())
	}
	op, err := r.services.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: info.Name})
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete service %s: %w", info.Name, err)
	}
	for !op.Done() {
		if _, err := op.Poll(ctx); err != nil {
			if notFound(err) {
				return nil
			}
			return fmt.Errorf("delete service %s: %s", info.Name, message(err))
		}
		if op.Done() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete service %s: %w", info.Name, ctx.Err())
		case <-time.After(r.opts.PollInterval):
		}
	}
	return nil
}

// Alive reports whether the service exists, is ready and its agent answers.
func (r *Runtime) Alive(ctx context.Context, info sandbox.Info) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	svc, err := r.services.GetService(ctx, &runpb.GetServiceRequest{Name: info.Name})
	if err != nil || svc.GetTerminalCondition().GetState() != runpb.Condition_CONDITION_SUCCEEDED {
		return false
	}
	c, err := r.client(ctx, info)
	if err != nil {
		return false
	}
	_, err = c.Health(ctx)
	return err == nil
}

// Client talks to the sandbox's agent with an ID token for its URL.
func (r *Runtime) Client(info sandbox.Info) sandbox.Client {
	c, err := r.client(context.Background(), info)
	if err != nil {
		return sandbox.Unreachable(err)
	}
	return c
}

func (r *Runtime) client(ctx context.Context, info sandbox.Info) (*sandbox.AgentClient, error) {
	if c, ok := r.clients.Load(info.URL); ok {
		if ac := c.(*sandbox.AgentClient); ac.Secret() == info.Secret {
			return ac, nil
		}
	}
	hc, err := r.opts.HTTPClient(ctx, info.URL)
	if err != nil {
		return nil, fmt.Errorf("ID token client for %s: %w", info.URL, err)
	}
	c, err := sandbox.NewClient(info, hc)
	if err != nil {
		return nil, err
	}
	r.clients.Store(info.URL, c)
	return c, nil
}

func notFound(err error) bool {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.HTTPCode() == http.StatusNotFound || ae.GRPCStatus().Code() == codes.NotFound
	}
	return status.Code(err) == codes.NotFound
}

// message is the readable part of an API error.
func message(err error) string {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		if m := ae.GRPCStatus().Message(); m != "" {
			return m
		}
	}
	if st, ok := status.FromError(err); ok && st.Message() != "" {
		return st.Message()
	}
	return err.Error()
}

var _ sandbox.Inventory = (*Runtime)(nil)

// List returns the sandbox services of the region that codeset manages (the label
// managed-by=codeset), sessions' and oracles', with their session and creation time.
func (r *Runtime) List(ctx context.Context) ([]sandbox.Listed, error) {
	var out []sandbox.Listed
	it := r.services.ListServices(ctx, &runpb.ListServicesRequest{Parent: r.parent()})
	for {
		svc, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list services of %s: %w", r.parent(), err)
		}
		labels := svc.GetLabels()
		if labels["managed-by"] != "codeset" {
			continue
		}
		session := svc.GetAnnotations()[sessionAnnotation]
		if session == "" {
			session = labels["codeset-session"]
		}
		l := sandbox.Listed{SessionID: session, Oracle: labels["codeset-role"] == roleOracle, Name: svc.GetName()}
		if t := svc.GetCreateTime(); t != nil {
			l.CreatedAt = t.AsTime()
		}
		out = append(out, l)
	}
}

// Reclaim deletes a listed service.
func (r *Runtime) Reclaim(ctx context.Context, s sandbox.Listed) error {
	return r.Stop(ctx, sandbox.Info{Name: s.Name})
}
