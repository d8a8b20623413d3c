package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/functions"
	"github.com/codeset/codeset/shared/config"
)

// serve runs the whole system in one process: every function at its real path, the bus, the
// consumers and the scheduled jobs.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg config.Config
	if err := cfg.Bind(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Listen first: health answers while the store opens and the start-up tasks run.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	a, err := functions.Open(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	if err := a.OpenAll(); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.Logger.Info("serving", "addr", "http://"+ln.Addr().String()+app.Prefix, "backend", cfg.Backend, "data", cfg.DataDir)

	wg, err := a.Start(ctx)
	if err != nil {
		srv.Close()
		return fmt.Errorf("start: %w", err)
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	wg.Wait()
	return nil
}
