// Package config holds every setting of the system in one struct, with its default, its flag of
// `codeset serve` and its environment variable declared once in Settings. Cloud Functions read
// the environment only; the binary reads flags over the environment over defaults.
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration.
type Config struct {
	Addr     string // listen address of `codeset serve`
	DataDir  string // the embedded default's data directory
	Backend  string // "embedded" (SQLite, in-process bus) or "gcp" (Firestore, Pub/Sub)
	Runtime  string // sandbox runtime: "local" or "cloudrun"
	NoDemo   bool   // do not load the demo dataset on first start
	LogLevel string

	// GCP
	Project      string        // Google Cloud project id
	Topic        string        // Pub/Sub topic the events are published on
	ConsumerBase string        // base URL the push subscriptions deliver to (run-emulated)
	BlobBucket   string        // Cloud Storage bucket of the values too large for an event (gcp backend)
	AckDeadline  time.Duration // ack deadline of the push subscriptions the backend creates (run-emulated)

	// Consumers
	ConsumerAttempts int64         // tries of an event before it is dead-lettered
	ConsumerBackoff  time.Duration // delay before the second try, doubled after each failure

	// Identity
	GitHubOAuthURL     string   // GitHub's OAuth base URL (code exchange)
	GitHubAPIURL       string   // GitHub's REST API base URL
	GitHubClientID     string   // the OAuth app's client id
	GitHubClientSecret string   // the OAuth app's client secret
	GitHubRedirectURIs []string // redirect_uri values a login may name
	GitHubTokenKey     string   // base64 32-byte AES-GCM key sealing stored GitHub tokens
	JWTKeys            string   // JWT key ring "kid:alg:base64url-secret,..." (first signs)
	JWTIssuer          string
	JWTAudience        string
	AccessTokenTTL     time.Duration
	RefreshTokenTTL    time.Duration
	APIKeyTTL          time.Duration // 0: API keys do not expire
	AuthCacheTTL       time.Duration // how long a process trusts a cached key or user (0: no cache)
	SignupCreditCents  int64

	// Sessions
	MaxActiveSessions   int64         // sessions creating or ready per user; one more is a 429
	MaxCommandTimeout   int64         // seconds; a longer command_timeout is a 422
	SessionStartTimeout time.Duration // a sandbox not ready by then fails the session
	ReaperInterval      time.Duration // how often the local reaper looks for expired sessions
	Scheduler           string        // "internal": `codeset serve` ticks the scheduled jobs; "external": POST /_jobs/<name> only

	// Verification
	VerifyTimeout time.Duration // the verifier's run time before the job errors with VERIFIER_TIMEOUT
	// DeliveryWait is how long one delivery of the executor or the verifier waits for a command
	// or a verification, which run on their own in the sandbox, before it records that the work
	// runs on and hands the wait to the next delivery: no request lasts as long as the work.
	DeliveryWait time.Duration

	// Agent jobs
	Agents          string        // JSON list of agents beside the built-in demo (shared/agentjob.Agents)
	AgentJobTimeout time.Duration // a job not completed by then is failed and refunded
	LocalReposDir   string        // git repositories <dir>/<owner>/<name> that agent jobs may study
	PublicURL       string        // the API's base URL as a runner reaches it (completion, progress)
	AgentJobName    string        // cloudrun runtime: the Cloud Run job that runs agent jobs

	// Sandboxes
	SandboxIsolation      string // local runtime: auto, namespaces or process
	SandboxShare          string // local runtime: host directories a sandbox sees read-only (comma-separated; empty: the defaults)
	SandboxBaseImage      string // local runtime: an image as the root of archive samples' sandboxes instead of SandboxShare
	SandboxBinary         string // local runtime: the codeset binary that runs sandboxd (empty: this one)
	CloudRunRegion        string // cloudrun runtime: region of the sandbox services
	CloudRunInvoker       string // cloudrun runtime: the backend's service account, the only invoker
	CloudRunSandboxSA     string // cloudrun runtime: the identity sandboxes run as
	CloudRunAgent         string // cloudrun runtime: path of the codeset binary inside sample images
	CloudRunVPCConnector  string // cloudrun runtime: VPC connector of the sandboxes (optional)
	CloudRunBaseImage     string // cloudrun runtime: the sandbox base image that runs archive samples
	CloudRunAdminEndpoint string // cloudrun runtime: Admin API endpoint (empty: Google's; tests: a fake)

	// What each local sandbox may use (0: no limit)
	SandboxMemory    int64   // bytes of memory, its tmpfs included, no swap
	SandboxCPUs      float64 // cores' worth of CPU time
	SandboxCPUWeight int64   // its share of a busy CPU (cgroup v2 cpu.weight)
	SandboxPids      int64   // processes and threads
	SandboxOpenFiles int64   // RLIMIT_NOFILE of its commands
	SandboxTmpSize   int64   // bytes of each of its /tmp, /var/tmp and home (namespaces)
	SandboxDisk      int64   // bytes of disk its work tree's changes may take (overlays)

	Service string // name reported by /health
	Version string // version reported by /health

	// Billing: prices are written into the events they apply to.
	CostPerMinuteCents  int64  // price of a minute of sandbox time
	AgentJobCostCents   int64  // price of an agent job
	MinimumDepositCents int64  // smallest deposit accepted
	StripeSecretKey     string // deposits are refused without it
	StripeWebhookSecret string // the webhook is refused without it
	StripeAPIURL        string // Stripe API base URL (stripe-mock in tests); empty: Stripe's own
	StripeAnyAPIVersion bool   // accept webhook events of another Stripe API version
	DepositReturnURL    string // where Checkout sends a payer back when a deposit names no URL (required on gcp)
}

// Setting is one configurable value: its flag name, its env var, its help text.
type Setting struct {
	Flag, Env, Help string
	// Secret settings are never shown: not in --help, not in the effective configuration.
	Secret bool
	bind   func(fs *flag.FlagSet, name, help string)
	set    func(string) error
	get    func() string
}

// Settings lists every setting bound to c's fields. The order is the order of --help.
func (c *Config) Settings() []Setting {
	return []Setting{
		str(&c.Addr, "addr", "CODESET_ADDR", "127.0.0.1:8080", "address to listen on"),
		str(&c.DataDir, "data", "CODESET_DATA_DIR", "./.codeset", "data directory of the embedded default (SQLite file, sandboxes, bootstrap key)"),
		str(&c.Backend, "backend", "CODESET_BACKEND", "embedded", "store and bus: embedded (SQLite, in-process) or gcp (Firestore, Pub/Sub)"),
		str(&c.Runtime, "runtime", "CODESET_RUNTIME", "local", "sandbox runtime: local (processes) or cloudrun"),
		boolean(&c.NoDemo, "no-demo", "CODESET_NO_DEMO", false, "do not load the demo dataset on first start"),
		str(&c.LogLevel, "log-level", "CODESET_LOG_LEVEL", "info", "debug, info, warn or error"),
		str(&c.Project, "project", "GOOGLE_CLOUD_PROJECT", "codeset-local", "Google Cloud project id (gcp backend)"),
		str(&c.Topic, "topic", "CODESET_TOPIC", "codeset-events", "Pub/Sub topic of the domain events (gcp backend)"),
		str(&c.ConsumerBase, "consumer-base-url", "CODESET_CONSUMER_BASE_URL", "", "gcp backend: when set, create the events topic and one push subscription per consumer at start, pushing to <url>/_consumers/<name> (make run-emulated; on GCP Terraform creates them)"),
		duration(&c.AckDeadline, "ack-deadline", "CODESET_ACK_DEADLINE", 300*time.Second, "gcp backend with --consumer-base-url: the ack deadline of the push subscriptions it creates (10s to 600s); a delivery must end within it, so --delivery-wait stays under it"),
		str(&c.BlobBucket, "blob-bucket", "CODESET_BLOB_BUCKET", "", "gcp backend: the Cloud Storage bucket that holds values too large for an event (long command output, verification reports, environment archives); required there (STORAGE_EMULATOR_HOST points the client at an emulator)"),
		integer(&c.ConsumerAttempts, "consumer-attempts", "CODESET_CONSUMER_ATTEMPTS", 5, "tries of an event by a consumer before it is dead-lettered"),
		duration(&c.ConsumerBackoff, "consumer-backoff", "CODESET_CONSUMER_BACKOFF", 200*time.Millisecond, "delay before a consumer's second try of an event, doubled after each failure"),
		str(&c.GitHubOAuthURL, "github-oauth-url", "CODESET_GITHUB_OAUTH_URL", "https://github.com", "GitHub OAuth base URL (the code exchange)"),
		str(&c.GitHubAPIURL, "github-api-url", "CODESET_GITHUB_API_URL", "https://api.github.com", "GitHub REST API base URL"),
		str(&c.GitHubClientID, "github-client-id", "CODESET_GITHUB_CLIENT_ID", "", "GitHub OAuth app client id (empty: GitHub login off)"),
		secret(&c.GitHubClientSecret, "github-client-secret", "CODESET_GITHUB_CLIENT_SECRET", "GitHub OAuth app client secret"),
		list(&c.GitHubRedirectURIs, "github-redirect-uris", "CODESET_GITHUB_REDIRECT_URIS", "", "redirect_uri values a GitHub login may use"),
		secret(&c.GitHubTokenKey, "github-token-key", "CODESET_GITHUB_TOKEN_KEY", "base64 32-byte AES-GCM key for stored GitHub tokens (embedded default: generated in the data dir)"),
		secret(&c.JWTKeys, "jwt-keys", "CODESET_JWT_KEYS", "JWT key ring kid:alg:base64url-secret,... (alg EdDSA or HS256; the first signs; embedded default: generated in the data dir)"),
		str(&c.JWTIssuer, "jwt-issuer", "CODESET_JWT_ISSUER", "codeset", "iss of issued JWTs"),
		str(&c.JWTAudience, "jwt-audience", "CODESET_JWT_AUDIENCE", "codeset-api", "aud of issued JWTs"),
		duration(&c.AccessTokenTTL, "access-token-ttl", "CODESET_ACCESS_TOKEN_TTL", 15*time.Minute, "lifetime of access tokens"),
		duration(&c.RefreshTokenTTL, "refresh-token-ttl", "CODESET_REFRESH_TOKEN_TTL", 30*24*time.Hour, "lifetime of refresh tokens"),
		duration(&c.APIKeyTTL, "api-key-ttl", "CODESET_API_KEY_TTL", 0, "lifetime of new API keys (0: no expiry)"),
		duration(&c.AuthCacheTTL, "auth-cache-ttl", "CODESET_AUTH_CACHE_TTL", 2*time.Second, "how long a process caches API keys and users it read; bounds how late it sees another instance's revocation (0: no cache)"),
		integer(&c.SignupCreditCents, "signup-credit-cents", "CODESET_SIGNUP_CREDIT_CENTS", 500, "credit given to every new user, in cents"),
		integer(&c.MaxActiveSessions, "max-active-sessions", "CODESET_MAX_ACTIVE_SESSIONS", 10, "sessions a user may have creating or ready at once (one more is a 429)"),
		integer(&c.MaxCommandTimeout, "max-command-timeout", "CODESET_MAX_COMMAND_TIMEOUT", 3600, "largest command_timeout of an exec, in seconds (more is a 422)"),
		duration(&c.SessionStartTimeout, "session-start-timeout", "CODESET_SESSION_START_TIMEOUT", 2*time.Minute, "time a sandbox has to become ready before its session fails"),
		duration(&c.ReaperInterval, "reaper-interval", "CODESET_REAPER_INTERVAL", time.Second, "how often the local reaper ends expired sessions"),
		str(&c.Scheduler, "scheduler", "CODESET_SCHEDULER", "internal", "scheduled jobs of codeset serve: internal (a ticker per job) or external (no ticker; each job answers POST /_jobs/<name> from the loopback only, for a scheduler such as make run-emulated's)"),
		duration(&c.VerifyTimeout, "verify-timeout", "CODESET_VERIFY_TIMEOUT", 1800*time.Second, "time a sample's verifier may run before the verification errors with VERIFIER_TIMEOUT"),
		duration(&c.DeliveryWait, "delivery-wait", "CODESET_DELIVERY_WAIT", 240*time.Second, "how long one delivery of the executor or the verifier waits for a command or a verification (which run on their own in the sandbox) before it hands the wait to the next delivery; keep it well under the push subscriptions' ack deadline on GCP"),
		str(&c.Agents, "agents", "CODESET_AGENTS", "", "agent jobs: JSON list of coding agents beside the built-in demo, each {\"id\", \"name\", \"command\": [...] (local runner), \"image\" (Cloud Run job)}; an entry with id demo replaces the built-in one"),
		duration(&c.AgentJobTimeout, "agent-job-timeout", "CODESET_AGENT_JOB_TIMEOUT", 2*time.Hour, "agent jobs: time a job has to complete before it is failed and refunded"),
		str(&c.LocalReposDir, "local-repos-dir", "CODESET_LOCAL_REPOS_DIR", "", "agent jobs: a directory of git repositories <owner>/<name> that users without GitHub may have studied (empty: none)"),
		str(&c.AgentJobName, "agent-job-name", "CODESET_AGENT_JOB_NAME", "", "cloudrun runtime: the Cloud Run job (its id, in --cloudrun-region) that runs agent jobs from the runner image; empty: agent jobs fail at launch, saying so"),
		str(&c.PublicURL, "public-url", "CODESET_PUBLIC_URL", "", "the API's base URL as agent-job runners reach it, e.g. https://api.example.org (empty: http://<addr> of codeset serve)"),
		str(&c.SandboxIsolation, "sandbox-isolation", "CODESET_SANDBOX_ISOLATION", "auto", "local sandboxes: namespaces (unshare: own mount, pid, network), process, or auto (namespaces when they work here)"),
		str(&c.SandboxShare, "sandbox-share", "CODESET_SANDBOX_SHARE", "", "local sandboxes in namespaces: the host directories they see, read-only, comma-separated (empty: /usr, /bin, /sbin and /lib*, the system and its toolchains)"),
		str(&c.SandboxBaseImage, "sandbox-base-image", "CODESET_SANDBOX_BASE_IMAGE", "", "local sandboxes in namespaces: an image (registry reference, oci:<dir>, docker-archive:<file>) as the root of samples that have an archive, instead of --sandbox-share"),
		str(&c.SandboxBinary, "sandbox-binary", "CODESET_SANDBOX_BINARY", "", "local sandboxes: the codeset binary that runs sandboxd (empty: this binary)"),
		bytesize(&c.SandboxMemory, "sandbox-memory", "CODESET_SANDBOX_MEMORY", "4GiB", "local sandboxes: the memory of each sandbox (a `size`: 4GiB, 512MiB, ...), its /tmp included, no swap; past it the kernel kills one of its processes (0: no limit)"),
		number(&c.SandboxCPUs, "sandbox-cpus", "CODESET_SANDBOX_CPUS", 2, "local sandboxes: cores' worth of CPU time each sandbox may use, however idle the machine (0: no cap)"),
		integer(&c.SandboxCPUWeight, "sandbox-cpu-weight", "CODESET_SANDBOX_CPU_WEIGHT", 100, "local sandboxes: each sandbox's share of a busy CPU, 1-10000 (cgroup v2 cpu.weight; v1 cpu.shares = weight*1024/100); equal weights are equal shares"),
		integer(&c.SandboxPids, "sandbox-pids", "CODESET_SANDBOX_PIDS", 1024, "local sandboxes: processes and threads of each sandbox's commands; a fork past it fails (0: no limit)"),
		integer(&c.SandboxOpenFiles, "sandbox-open-files", "CODESET_SANDBOX_OPEN_FILES", 4096, "local sandboxes: open files per process of a sandbox (RLIMIT_NOFILE, soft and hard; 0: the server's)"),
		bytesize(&c.SandboxTmpSize, "sandbox-tmp-size", "CODESET_SANDBOX_TMP_SIZE", "1GiB", "local sandboxes with namespaces: the `size` of each sandbox's /tmp, /var/tmp and home, each (memory, counted in --sandbox-memory)"),
		bytesize(&c.SandboxDisk, "sandbox-disk", "CODESET_SANDBOX_DISK", "10GiB", "local sandboxes with overlays: the disk (a `size`) the changes to a sandbox's work tree may take; a command that grows them past it is killed (0: no limit)"),
		str(&c.CloudRunRegion, "cloudrun-region", "CODESET_CLOUDRUN_REGION", "europe-west1", "Cloud Run sandboxes: region"),
		str(&c.CloudRunInvoker, "cloudrun-invoker", "CODESET_CLOUDRUN_INVOKER", "", "Cloud Run sandboxes: the backend's service account e-mail, the only one allowed to invoke them"),
		str(&c.CloudRunSandboxSA, "cloudrun-sandbox-service-account", "CODESET_CLOUDRUN_SANDBOX_SERVICE_ACCOUNT", "", "Cloud Run sandboxes: the service account they run as (give it no roles)"),
		str(&c.CloudRunAgent, "cloudrun-agent-path", "CODESET_CLOUDRUN_AGENT_PATH", "/usr/local/bin/codeset", "Cloud Run sandboxes: path of the codeset binary inside sample images"),
		str(&c.CloudRunBaseImage, "cloudrun-base-image", "CODESET_CLOUDRUN_BASE_IMAGE", "", "Cloud Run sandboxes: the sandbox base image (scripts/sandbox/Dockerfile) that runs samples with an environment archive and no image"),
		str(&c.CloudRunVPCConnector, "cloudrun-vpc-connector", "CODESET_CLOUDRUN_VPC_CONNECTOR", "", "Cloud Run sandboxes: VPC connector (optional)"),
		str(&c.CloudRunAdminEndpoint, "cloudrun-admin-endpoint", "CODESET_CLOUDRUN_ADMIN_ENDPOINT", "", "Cloud Run Admin API endpoint (empty: Google's own)"),
		str(&c.Service, "service-name", "CODESET_SERVICE_NAME", "codeset-api", "service name reported by /health"),
		str(&c.Version, "service-version", "CODESET_SERVICE_VERSION", "1.0.0", "version reported by /health"),
		integer(&c.CostPerMinuteCents, "cost-per-minute-cents", "CODESET_COST_PER_MINUTE_CENTS", 10, "price of a minute of sandbox time, in cents"),
		integer(&c.AgentJobCostCents, "agent-job-cost-cents", "CODESET_AGENT_JOB_COST_CENTS", 100, "price of an agent job, in cents"),
		integer(&c.MinimumDepositCents, "minimum-deposit-cents", "CODESET_MINIMUM_DEPOSIT_CENTS", 500, "smallest deposit accepted, in cents"),
		secret(&c.StripeSecretKey, "stripe-secret-key", "CODESET_STRIPE_SECRET_KEY", "Stripe secret key; without it deposits are refused (use codeset credits grant)"),
		secret(&c.StripeWebhookSecret, "stripe-webhook-secret", "CODESET_STRIPE_WEBHOOK_SECRET", "Stripe webhook signing secret (whsec_...); without it the webhook is refused"),
		str(&c.StripeAPIURL, "stripe-api-url", "CODESET_STRIPE_API_URL", "", "Stripe API base URL, e.g. stripe-mock's; empty for Stripe itself"),
		str(&c.DepositReturnURL, "deposit-return-url", "CODESET_DEPOSIT_RETURN_URL", "", "where Stripe Checkout sends the payer back after a deposit that names no success_url or cancel_url (?deposit=success or ?deposit=cancelled is added); empty: this server's /docs on the embedded default; required on the gcp backend, whose functions serve no page"),
		boolean(&c.StripeAnyAPIVersion, "stripe-any-api-version", "CODESET_STRIPE_ANY_API_VERSION", false, "accept webhook events of a Stripe API version other than stripe-go's"),
	}
}

// redacted stands for a secret's value wherever the configuration is shown.
const redacted = "[redacted]"

// Effective is the configuration as it stands, one "flag=value" line per setting in --help's
// order, secrets shown only as set ("[redacted]") or not (empty): safe to print and to log.
func (c Config) Effective() string {
	var b strings.Builder
	for _, s := range c.Settings() {
		fmt.Fprintf(&b, "%s=%s\n", s.Flag, s.get())
	}
	return b.String()
}

// String is Effective: a Config printed with %v or %+v shows no secret.
func (c Config) String() string { return c.Effective() }

// LogValue is how slog writes a Config: every setting by flag name, secrets redacted.
func (c Config) LogValue() slog.Value {
	settings := c.Settings()
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		attrs = append(attrs, slog.String(s.Flag, s.get()))
	}
	return slog.GroupValue(attrs...)
}

// Default returns the configuration with every default set.
func Default() Config {
	var c Config
	for _, s := range c.Settings() {
		s.set("")
	}
	return c
}

// FromEnv returns the defaults overridden by the environment.
func FromEnv() (Config, error) {
	c := Default()
	for _, s := range c.Settings() {
		if v, ok := os.LookupEnv(s.Env); ok {
			if err := s.set(v); err != nil {
				return c, fmt.Errorf("%s: %w", s.Env, err)
			}
		}
	}
	return c, nil
}

// Bind registers every setting as a flag of fs whose default is the environment's value (or the
// built-in default), so flags win over env vars, which win over defaults.
func (c *Config) Bind(fs *flag.FlagSet) error {
	env, err := FromEnv()
	if err != nil {
		return err
	}
	*c = env
	for _, s := range c.Settings() {
		s.bind(fs, s.Flag, fmt.Sprintf("%s (env %s)", s.Help, s.Env))
	}
	return nil
}

func str(p *string, flagName, env, def, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return *p },
		bind: func(fs *flag.FlagSet, n, h string) { fs.StringVar(p, n, *p, h) },
		set: func(v string) error {
			if v == "" {
				v = def
			}
			*p = v
			return nil
		}}
}

func boolean(p *bool, flagName, env string, def bool, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return strconv.FormatBool(*p) },
		bind: func(fs *flag.FlagSet, n, h string) { fs.BoolVar(p, n, *p, h) },
		set: func(v string) error {
			if v == "" {
				*p = def
				return nil
			}
			b, err := strconv.ParseBool(v)
			*p = b
			return err
		}}
}

func integer(p *int64, flagName, env string, def int64, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return strconv.FormatInt(*p, 10) },
		bind: func(fs *flag.FlagSet, n, h string) { fs.Int64Var(p, n, *p, h) },
		set: func(v string) error {
			if v == "" {
				*p = def
				return nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			*p = n
			return err
		}}
}

func duration(p *time.Duration, flagName, env string, def time.Duration, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return p.String() },
		bind: func(fs *flag.FlagSet, n, h string) { fs.DurationVar(p, n, *p, h) },
		set: func(v string) error {
			if v == "" {
				*p = def
				return nil
			}
			d, err := time.ParseDuration(v)
			*p = d
			return err
		}}
}

// number is a setting of a decimal number, such as 1.5 (cores).
func number(p *float64, flagName, env string, def float64, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return strconv.FormatFloat(*p, 'g', -1, 64) },
		bind: func(fs *flag.FlagSet, n, h string) { fs.Float64Var(p, n, *p, h) },
		set: func(v string) error {
			if v == "" {
				*p = def
				return nil
			}
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && (f < 0 || math.IsNaN(f) || math.IsInf(f, 0)) {
				err = fmt.Errorf("%q is not a number of at least 0", v)
			}
			*p = f
			return err
		}}
}

// bytesize is a setting of a number of bytes, written 4GiB, 512MiB, 1.5GiB, 4G or 4096.
func bytesize(p *int64, flagName, env, def, help string) Setting {
	set := func(v string) error {
		if v == "" {
			v = def
		}
		n, err := ParseBytes(v)
		*p = n
		return err
	}
	return Setting{Flag: flagName, Env: env, Help: help, get: byteFlag{p, set}.String,
		bind: func(fs *flag.FlagSet, n, h string) { fs.Var(byteFlag{p, set}, n, h) },
		set:  set}
}

// byteFlag shows a bytesize setting's value in --help as it is written.
type byteFlag struct {
	p   *int64
	set func(string) error
}

func (b byteFlag) String() string {
	if b.p == nil {
		return ""
	}
	return strings.ReplaceAll(FormatBytes(*b.p), " ", "")
}

func (b byteFlag) Set(v string) error { return b.set(v) }

// byteUnits are the units of sizes: binary, whichever way they are written.
var byteUnits = map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}

// ParseBytes reads a size: a number, maybe decimal, and a unit (B, KiB, MiB, GiB, TiB, or K, M,
// G, T, KB, MB, ... all binary), e.g. 4GiB, 512 MiB, 1.5G or 4096.
func ParseBytes(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !ok || f < 0 || f*float64(unit) > math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size (e.g. 4GiB, 512MiB or 4096)", v)
	}
	return int64(f * float64(unit)), nil
}

// FormatBytes writes a size for people: 4 GiB, 256 MiB, 1.5 GiB, 100 B.
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for i < len(units)-1 && math.Abs(v) >= 1024 {
		v /= 1024
		i++
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// secret is a string setting whose value --help never shows (the flag's default would print it).
func secret(p *string, flagName, env, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, Secret: true,
		get: func() string {
			if *p == "" {
				return ""
			}
			return redacted
		},
		bind: func(fs *flag.FlagSet, n, h string) {
			fs.Func(n, h, func(v string) error { *p = v; return nil })
		},
		set: func(v string) error { *p = v; return nil }}
}

func list(p *[]string, flagName, env, def, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help, get: func() string { return strings.Join(*p, ",") },
		bind: func(fs *flag.FlagSet, n, h string) {
			fs.Func(n, h+" (comma-separated)", func(v string) error { *p = split(v); return nil })
		},
		set: func(v string) error {
			if v == "" {
				v = def
			}
			*p = split(v)
			return nil
		}}
}

func split(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var _, _, _ = integer, duration, list // used as the settings of later capabilities arrive
