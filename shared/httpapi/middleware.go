package httpapi

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/logging"
)

// Wrap adds what every request gets: a request id (X-Request-Id, taken from the caller when it
// is sane), the trace for Cloud Logging, one access log line, and recovery from a panic into a
// 500 that says nothing of the cause.
func Wrap(log *slog.Logger, project string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || strings.ContainsAny(id, " \t\r\n\"") {
			id = newID()
		}
		req := logging.Request{ID: id}
		if tc := r.Header.Get("X-Cloud-Trace-Context"); tc != "" && project != "" {
			req.Trace = fmt.Sprintf("projects/%s/traces/%s", project, strings.SplitN(tc, "/", 2)[0])
		}
		ctx := logging.WithRequest(r.Context(), req)
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()), "method", r.Method, "path", r.URL.Path)
				if !sw.wrote {
					WriteError(sw, fmt.Errorf("panic"))
				}
			}
			// LogAttrs: no []any boxing on the hottest line of the server.
			log.LogAttrs(ctx, slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status()), slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000))
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newID needs uniqueness, not secrecy: a request id is echoed to the caller and logged, so the
// runtime's fast per-thread generator is enough.
func newID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}
