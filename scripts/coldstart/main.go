// Command coldstart measures a Cloud Function's cold start: from starting a fresh process that
// serves one entry point (FUNCTION_TARGET, functions-framework-go serving the registrations of
// the module's root package, as the platform does) to its first 200. Run it on the emulators:
//
//	scripts/emulators.sh go run ./scripts/coldstart [-runs 10] [-backend gcp] HealthCheck GET ListDatasets GET Reaper POST
//
// Each run is a new process (the binary is already built, as on the platform; the image pull and
// the sandbox that Cloud Functions add are not measured). It prints, per target, the fastest,
// the median and the slowest start, and the median time to the port's first accepted
// connection (the process's own start, before any request builds the App).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/codeset/codeset" // the function registrations, as Cloud Functions builds them
)

// childEnv carries the port to a run: the process then serves FUNCTION_TARGET there.
const childEnv = "CODESET_COLDSTART_PORT"

func main() {
	if port := os.Getenv(childEnv); port != "" {
		if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	runs := flag.Int("runs", 10, "starts per target")
	backend := flag.String("backend", "gcp", "CODESET_BACKEND of the function")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 || len(args)%2 != 0 {
		fmt.Fprintln(os.Stderr, "usage: coldstart [-runs n] [-backend gcp|embedded] TARGET METHOD [TARGET METHOD...]")
		os.Exit(2)
	}
	if *backend == "gcp" && os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		fmt.Fprintln(os.Stderr, "coldstart: the gcp backend needs the emulators: run it under scripts/emulators.sh")
		os.Exit(2)
	}
	data, err := os.MkdirTemp("", "coldstart-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(data)
	env := append(os.Environ(), "CODESET_BACKEND="+*backend, "CODESET_DATA_DIR="+data, "CODESET_NO_DEMO=true",
		"CODESET_LOG_LEVEL=error", "CODESET_SANDBOX_ISOLATION=process", "CODESET_BLOB_BUCKET=coldstart",
		// Secrets of a throwaway deployment (the gcp backend reads them from its environment).
		"CODESET_JWT_KEYS=cs:HS256:Y29sZHN0YXJ0LWNvbGRzdGFydC1jb2xkc3RhcnQtMTIzNA",
		"CODESET_GITHUB_TOKEN_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if os.Getenv("GOOGLE_CLOUD_PROJECT") == "" {
		env = append(env, "GOOGLE_CLOUD_PROJECT=codeset-coldstart")
	}
	for i := 0; i < len(args); i += 2 {
		target, method := args[i], args[i+1]
		var took, listening []time.Duration
		for range *runs {
			l, d, err := start(env, target, method)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", target, err)
				os.Exit(1)
			}
			took, listening = append(took, d), append(listening, l)
		}
		slices.Sort(took)
		slices.Sort(listening)
		fmt.Printf("%-20s %-4s runs %d  first 200: min %6.1f ms  median %6.1f ms  max %6.1f ms;  listening: median %6.1f ms\n", target, method, len(took),
			ms(took[0]), ms(took[len(took)/2]), ms(took[len(took)-1]), ms(listening[len(listening)/2]))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// start runs one fresh process serving target and returns the time until it accepted a
// connection and the time to its first 200.
func start(env []string, target, method string) (listening, first time.Duration, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(env, childEnv+"="+port, "FUNCTION_TARGET="+target)
	cmd.Stderr = os.Stderr
	client := &http.Client{Timeout: 10 * time.Second}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for listening == 0 {
		if time.Since(began) > 30*time.Second {
			return 0, 0, fmt.Errorf("not listening within 30 s")
		}
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			listening = time.Since(began)
			break
		}
		time.Sleep(500 * time.Microsecond)
	}
	req, _ := http.NewRequest(method, "http://127.0.0.1:"+port+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("first answer %d", resp.StatusCode)
	}
	return listening, time.Since(began), nil
}
