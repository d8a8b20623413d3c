// Package logging writes JSON lines in the shape Cloud Logging reads from stdout: severity,
// message, time, and the request's trace and id as fields it indexes.
package logging

import (
	"context"
	"io"
	"log/slog"
)

// New returns a logger writing Cloud Logging JSON lines to w at level.
func New(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				return slog.String("severity", severity(a.Value.Any().(slog.Level)))
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	})
	var flush func() error
	if f, ok := w.(interface{ Flush() error }); ok { // a Buffered: warnings and errors go out at once
		flush = f.Flush
	}
	return slog.New(ctxHandler{h, flush})
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

type ctxKey struct{}

// Request is what the HTTP layer knows of the request a log line belongs to.
type Request struct {
	ID    string // our request id, echoed as X-Request-Id
	Trace string // "projects/<p>/traces/<t>" when the platform sent one
}

// WithRequest attaches r to ctx so every log line written with ctx carries it.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// RequestFrom returns the request attached to ctx.
func RequestFrom(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(ctxKey{}).(Request)
	return r, ok
}

// ctxHandler adds the request id and trace of the context to every record, and flushes a
// buffered writer after a warning or an error.
type ctxHandler struct {
	slog.Handler
	flush func() error
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if req, ok := RequestFrom(ctx); ok {
		r.AddAttrs(slog.String("request_id", req.ID))
		if req.Trace != "" {
			r.AddAttrs(slog.String("logging.googleapis.com/trace", req.Trace))
		}
	}
	err := h.Handler.Handle(ctx, r)
	if h.flush != nil && r.Level >= slog.LevelWarn {
		if ferr := h.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(as), h.flush}
}
func (h ctxHandler) WithGroup(n string) slog.Handler {
	return ctxHandler{h.Handler.WithGroup(n), h.flush}
}
