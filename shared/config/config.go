// Package config holds every setting of the system in one struct, with its default, its flag of
// `codeset serve` and its environment variable declared once in Settings. Cloud Functions read
// the environment only; the binary reads flags over the environment over defaults.
package config

import (
	"flag"
	"fmt"
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
	Project      string // Google Cloud project id
	Topic        string // Pub/Sub topic the events are published on
	ConsumerBase string // base URL the push subscriptions deliver to (run-emulated)

	Service string // name reported by /health
	Version string // version reported by /health
}

// Setting is one configurable value: its flag name, its env var, its help text.
type Setting struct {
	Flag, Env, Help string
	bind            func(fs *flag.FlagSet, name, help string)
	set             func(string) error
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
		str(&c.ConsumerBase, "consumer-base-url", "CODESET_CONSUMER_BASE_URL", "", "base URL Pub/Sub pushes consumer deliveries to (gcp backend)"),
		str(&c.Service, "service-name", "CODESET_SERVICE_NAME", "codeset-api", "service name reported by /health"),
		str(&c.Version, "service-version", "CODESET_SERVICE_VERSION", "1.0.0", "version reported by /health"),
	}
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
	return Setting{Flag: flagName, Env: env, Help: help,
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
	return Setting{Flag: flagName, Env: env, Help: help,
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
	return Setting{Flag: flagName, Env: env, Help: help,
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
	return Setting{Flag: flagName, Env: env, Help: help,
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

func list(p *[]string, flagName, env, def, help string) Setting {
	return Setting{Flag: flagName, Env: env, Help: help,
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
