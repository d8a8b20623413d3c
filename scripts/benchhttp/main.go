// Command benchhttp measures the two HTTP speed targets of docs/PERFORMANCE.md against a built
// codeset binary (scripts/bench.sh builds it and runs this):
//
//	benchhttp start -bin bin/codeset [-runs 10]
//	    process start to the first 200 from /api/v1/health, on a fresh data dir and on a warm one
//	benchhttp load -bin bin/codeset [-conns 64] [-duration 10s]
//	    /api/v1/health requests per second over loopback with keep-alive connections
//
// The load generator speaks HTTP/1.1 on raw connections (a fixed request, the status line and
// Content-Length read back), so on a 2-core machine it leaves the CPU to the server rather than
// to an HTTP client library.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchhttp start|load -bin path [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "start":
		err = startCmd(os.Args[2:])
	case "load":
		err = loadCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchhttp:", err)
		os.Exit(1)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// server is one `codeset serve` process.
type server struct {
	cmd  *exec.Cmd
	addr string
}

func startServer(bin, dataDir string, logTo io.Writer) (*server, time.Time, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, time.Time{}, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", dataDir, "--no-demo")
	cmd.Stdout, cmd.Stderr = logTo, logTo
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, started, err
	}
	return &server{cmd: cmd, addr: addr}, started, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// firstOK polls health until it answers 200 and returns when it did.
func (s *server) firstOK(timeout time.Duration) (time.Time, error) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + s.addr + "/api/v1/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	return time.Time{}, fmt.Errorf("no 200 from %s within %s", s.addr, timeout)
}

func startCmd(args []string) error {
	fs := flag.NewFlagSet("start", flag.ExitOnError)
	bin := fs.String("bin", "bin/codeset", "codeset binary")
	runs := fs.Int("runs", 10, "starts per case")
	fs.Parse(args)
	tmp, err := os.MkdirTemp("", "benchhttp-start-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	warm := filepath.Join(tmp, "warm")
	for _, c := range []struct {
		name  string
		fresh bool
	}{{"fresh data dir", true}, {"existing data dir", false}} {
		var took []time.Duration
		for i := range *runs {
			dir := warm
			if c.fresh {
				dir = filepath.Join(tmp, fmt.Sprint("fresh-", i))
			}
			s, started, err := startServer(*bin, dir, io.Discard)
			if err != nil {
				return err
			}
			ok, err := s.firstOK(30 * time.Second)
			s.stop()
			if err != nil {
				return err
			}
			took = append(took, ok.Sub(started))
		}
		slices.Sort(took)
		fmt.Printf("start to first 200 (%s, %d runs): median %s  min %s  max %s\n", c.name, *runs,
			ms(took[len(took)/2]), ms(took[0]), ms(took[len(took)-1]))
	}
	return nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	bin := fs.String("bin", "bin/codeset", "codeset binary (ignored with -addr)")
	addr := fs.String("addr", "", "address of a running server (default: start one)")
	conns := fs.Int("conns", 64, "concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "measurement time")
	logFile := fs.String("log", "", "file the started server's log (one access line per request) goes to (default: a temp file)")
	fs.Parse(args)
	if *addr == "" {
		tmp, err := os.MkdirTemp("", "benchhttp-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		path := *logFile
		if path == "" {
			path = filepath.Join(tmp, "server.log")
		}
		log, err := os.Create(path)
		if err != nil {
			return err
		}
		defer log.Close()
		s, _, err := startServer(*bin, filepath.Join(tmp, "data"), log)
		if err != nil {
			return err
		}
		defer s.stop()
		if _, err := s.firstOK(30 * time.Second); err != nil {
			return err
		}
		*addr = s.addr
	}
	req := []byte("GET /api/v1/health HTTP/1.1\r\nHost: " + *addr + "\r\nUser-Agent: benchhttp\r\n\r\n")
	var total, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := time.Now().Add(*duration)
	// A short warm-up, so connection set-up is not measured.
	warm := time.Now().Add(time.Second)
	stop = stop.Add(time.Second)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range *conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", *addr)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			r := bufio.NewReaderSize(c, 16<<10)
			var mine []time.Duration
			for n := 0; ; n++ {
				t0 := time.Now()
				if t0.After(stop) {
					break
				}
				if _, err := c.Write(req); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				status, err := readResponse(r)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if t0.Before(warm) {
					continue
				}
				total.Add(1)
				if status != 200 {
					failed.Add(1)
				}
				if n%16 == 0 {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("GET /api/v1/health, %d connections, %s: %d requests, %.0f req/s, %d non-200, latency p50 %s p99 %s\n",
		*conns, *duration, total.Load(), float64(total.Load())/duration.Seconds(), failed.Load(), ms(pct(0.5)), ms(pct(0.99)))
	if failed.Load() > 0 {
		return errors.New("some requests did not get a 200")
	}
	return nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and returns its status.
func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(h), ":"); ok && strings.EqualFold(k, "Content-Length") {
			if length, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
