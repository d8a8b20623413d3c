package functions

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/codeset/codeset/shared/httpapi"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tokenAuth takes the bearer token as the user id: the tests' callers, without identity.
type tokenAuth struct{}

func (tokenAuth) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return Principal{}, httpapi.Unauthorized("no bearer token")
	}
	return Principal{UserID: tok}, nil
}
