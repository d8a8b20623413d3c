// Package runtimes picks the sandbox runtime the configuration names, so `codeset serve` and
// the Cloud Functions build it the same way.
package runtimes

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/api/option"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/cloudrun"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// FromConfig returns the runtime cfg.Runtime names and a sentence saying how its sandboxes are
// isolated, for the start-up log.
func FromConfig(ctx context.Context, cfg config.Config) (sandbox.Runtime, string, error) {
	switch cfg.Runtime {
	case "local", "":
		var share []string
		if strings.TrimSpace(cfg.SandboxShare) != "" {
			for _, d := range strings.Split(cfg.SandboxShare, ",") {
				share = append(share, strings.TrimSpace(d))
			}
		}
		r, err := local.New(local.Options{DataDir: cfg.DataDir, Binary: cfg.SandboxBinary, Share: share, BaseImage: cfg.SandboxBaseImage,
			Isolation: cfg.SandboxIsolation, StartTimeout: cfg.SessionStartTimeout, Limits: local.Limits{
				Memory: cfg.SandboxMemory, CPUs: cfg.SandboxCPUs, CPUWeight: cfg.SandboxCPUWeight, Pids: cfg.SandboxPids,
				OpenFiles: cfg.SandboxOpenFiles, Tmp: cfg.SandboxTmpSize, Disk: cfg.SandboxDisk}})
		if err != nil {
			return nil, "", err
		}
		return r, r.Describe() + "; " + r.DescribeLimits(), nil
	case "cloudrun":
		opts := cloudrun.Options{Project: cfg.Project, Region: cfg.CloudRunRegion, Invoker: cfg.CloudRunInvoker,
			ServiceAccount: cfg.CloudRunSandboxSA, Agent: cfg.CloudRunAgent, BaseImage: cfg.CloudRunBaseImage, VPCConnector: cfg.CloudRunVPCConnector,
			ReadyTimeout: cfg.SessionStartTimeout}
		if ep := cfg.CloudRunAdminEndpoint; ep != "" {
			opts.ClientOptions = append(opts.ClientOptions, option.WithEndpoint(ep))
			// A plain-HTTP endpoint is a local fake: no Google credentials for it or its sandboxes.
			if strings.HasPrefix(ep, "http://") {
				opts.ClientOptions = append(opts.ClientOptions, option.WithoutAuthentication())
				opts.HTTPClient = func(context.Context, string) (*http.Client, error) { return &http.Client{}, nil }
			}
		}
		r, err := cloudrun.New(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		return r, r.Describe(), nil
	default:
		return nil, "", fmt.Errorf("unknown sandbox runtime %q (want local or cloudrun)", cfg.Runtime)
	}
}
