// Command fakegcs serves an in-memory Cloud Storage emulator (fake-gcs-server) for
// scripts/emulators.sh, which builds it and exports STORAGE_EMULATOR_HOST: the gcp backend keeps
// the values too large for an event in a bucket, and `make run-emulated` has no real one.
//
//	fakegcs -addr 127.0.0.1:PORT -bucket NAME [-bucket NAME...]
//
// It runs until SIGINT or SIGTERM. Like the Firestore and Pub/Sub emulators it starts empty
// every time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakegcs:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("fakegcs", flag.ContinueOnError)
	addr := fl.String("addr", "127.0.0.1:0", "`host:port` to listen on")
	var buckets []string
	fl.Func("bucket", "a bucket to create (repeatable)", func(s string) error {
		if s == "" {
			return errors.New("empty bucket name")
		}
		buckets = append(buckets, s)
		return nil
	})
	if err := fl.Parse(args); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return fmt.Errorf("-addr: port %q: %w", portText, err)
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Host: host, Port: uint16(port), Scheme: "http",
		// The client found through STORAGE_EMULATOR_HOST reads objects through the XML API at
		// http://<host:port>/<bucket>/<object>, which the emulator serves only on its public
		// host; a public host without a port matches any port.
		PublicHost: host,
		Writer:     io.Discard, // its request log would drown the server's
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	fmt.Fprintf(os.Stderr, "fakegcs: Cloud Storage on %s, buckets %v\n", srv.URL(), buckets)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
