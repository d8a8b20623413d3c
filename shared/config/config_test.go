package config

import (
	"flag"
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
