package config

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSizes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"4GiB", 4 << 30}, {"4 GiB", 4 << 30}, {"4g", 4 << 30}, {"4G", 4 << 30}, {"512MiB", 512 << 20},
		{"1.5GiB", 3 << 29}, {"4096", 4096}, {"0", 0}, {"10kb", 10 << 10},
	} {
		if got, err := ParseBytes(c.in); err != nil || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "4 parsecs", "1e30GiB", "4GiB4"} {
		if n, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, n)
		}
	}
	for n, want := range map[int64]string{4 << 30: "4 GiB", 256 << 20: "256 MiB", 3 << 29: "1.5 GiB", 100: "100 B", 0: "0 B"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The sandbox limits a user gets without asking, and set by flag or environment.
func TestSandboxLimits(t *testing.T) {
	c := Default()
	if c.SandboxMemory != 4<<30 || c.SandboxCPUs != 2 || c.SandboxCPUWeight != 100 || c.SandboxPids != 1024 ||
		c.SandboxOpenFiles != 4096 || c.SandboxTmpSize != 1<<30 || c.SandboxDisk != 10<<30 {
		t.Errorf("defaults: %+v", c)
	}
	t.Setenv("CODESET_SANDBOX_MEMORY", "512MiB")
	t.Setenv("CODESET_SANDBOX_CPUS", "0.5")
	var got Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := got.Bind(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--sandbox-pids", "64", "--sandbox-disk", "1GiB"}); err != nil {
		t.Fatal(err)
	}
	if got.SandboxMemory != 512<<20 || got.SandboxCPUs != 0.5 || got.SandboxPids != 64 || got.SandboxDisk != 1<<30 {
		t.Errorf("from env and flags: %+v", got)
	}
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if !strings.Contains(help.String(), "(default 1GiB)") {
		t.Errorf("--help shows sizes as they are written:\n%s", help.String())
	}
	t.Setenv("CODESET_SANDBOX_TMP_SIZE", "lots")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "CODESET_SANDBOX_TMP_SIZE") {
		t.Errorf("a bad size: %v", err)
	}
}

// Every kind of setting takes its value from the flag over the environment over the default.
// Not parallel: it sets environment variables.
func TestPrecedence(t *testing.T) {
	cases := []struct {
		flag, env       string
		envValue, flagV string
		def, fromEnv    string // Effective's value with nothing set, and with the env var only
		fromFlag        string // with both
	}{
		{"addr", "CODESET_ADDR", "0.0.0.0:9", "127.0.0.1:7", "127.0.0.1:8080", "0.0.0.0:9", "127.0.0.1:7"},
		{"no-demo", "CODESET_NO_DEMO", "true", "false", "false", "true", "false"},
		{"max-active-sessions", "CODESET_MAX_ACTIVE_SESSIONS", "3", "7", "10", "3", "7"},
		{"session-start-timeout", "CODESET_SESSION_START_TIMEOUT", "30s", "1m30s", "2m0s", "30s", "1m30s"},
		{"sandbox-cpus", "CODESET_SANDBOX_CPUS", "0.5", "3", "2", "0.5", "3"},
		{"sandbox-memory", "CODESET_SANDBOX_MEMORY", "512MiB", "1GiB", "4GiB", "512MiB", "1GiB"},
		{"github-redirect-uris", "CODESET_GITHUB_REDIRECT_URIS", "http://a/cb", "http://b/cb,http://c/cb", "", "http://a/cb", "http://b/cb,http://c/cb"},
	}
	effective := func(c Config, name string) string {
		for _, line := range strings.Split(c.Effective(), "\n") {
			if v, ok := strings.CutPrefix(line, name+"="); ok {
				return v
			}
		}
		t.Fatalf("no %s in the effective configuration", name)
		return ""
	}
	bind := func(args ...string) Config {
		t.Helper()
		var c Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		if err := c.Bind(fs); err != nil {
			t.Fatal(err)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			if got := effective(bind(), c.flag); got != c.def {
				t.Errorf("default: %q, want %q", got, c.def)
			}
			t.Setenv(c.env, c.envValue)
			if got := effective(bind(), c.flag); got != c.fromEnv {
				t.Errorf("from %s: %q, want %q", c.env, got, c.fromEnv)
			}
			if got := effective(bind("--"+c.flag+"="+c.flagV), c.flag); got != c.fromFlag {
				t.Errorf("--%s over %s: %q, want %q", c.flag, c.env, got, c.fromFlag)
			}
		})
	}
}

// A secret set by flag or environment appears in no output: not in --help, not in the effective
// configuration, not when the Config is printed or logged.
func TestSecretsNeverShown(t *testing.T) {
	const fromEnv, fromFlag = "sk_env_0123456789secret", "whsec_flag_0123456789secret"
	for _, s := range new(Config).Settings() {
		if !s.Secret {
			continue
		}
		t.Run(s.Flag, func(t *testing.T) {
			t.Setenv(s.Env, fromEnv)
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			if err := c.Bind(fs); err != nil {
				t.Fatal(err)
			}
			// Which outputs show a secret (never the outputs themselves: they would print it).
			leaks := func(secrets ...string) []string {
				var help, log strings.Builder
				fs.SetOutput(&help)
				fs.PrintDefaults() // --help, with the values bound
				slog.New(slog.NewJSONHandler(&log, nil)).Info("configuration", "config", c)
				var found []string
				for name, out := range map[string]string{"--help": help.String(), "Effective": c.Effective(),
					"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "slog": log.String()} {
					for _, secret := range secrets {
						if strings.Contains(out, secret) {
							found = append(found, name)
						}
					}
				}
				return found
			}
			if found := leaks(fromEnv); len(found) > 0 {
				t.Errorf("the secret of %s is shown by %v", s.Env, found)
			}
			if !strings.Contains(c.Effective(), s.Flag+"="+redacted) {
				t.Errorf("the effective configuration does not say %s is set", s.Flag)
			}
			if err := fs.Parse([]string{"--" + s.Flag, fromFlag}); err != nil {
				t.Fatal(err)
			}
			if found := leaks(fromEnv, fromFlag); len(found) > 0 {
				t.Errorf("the secret of --%s is shown by %v", s.Flag, found)
			}
		})
	}
}
