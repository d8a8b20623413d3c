package functions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/auth"
)

// BootstrapKeyFile is the file, in the data dir, holding the local user's API key.
const BootstrapKeyFile = "bootstrap-api-key"

// bootstrap gives the embedded default a user without GitHub: on the first start it registers
// the local user (who gets the sign-up credit like anyone), creates an API key, writes it to
// <data>/bootstrap-api-key (0600) and prints it on a.Console (stdout), not the log, which never
// carries keys. Later starts reuse the key while it still
// authenticates, and make a new one if it was revoked or the file was lost.
func bootstrap(ctx context.Context, a *app.App) error {
	if a.Config.Backend != "embedded" {
		return nil
	}
	path := filepath.Join(a.Config.DataDir, BootstrapKeyFile)
	userID := events.LocalUserID()
	if ok, err := bootstrapKeyWorks(ctx, a, path, userID); err != nil || ok {
		if ok {
			a.Logger.Info("bootstrap API key reused", "file", path)
		}
		return err
	}
	u, err := changeUser(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
		if u.Exists() {
			return nil, nil
		}
		return events.Register(u, newEventID(), userID, events.Profile{Name: "Local User", Email: "local@localhost"}, true, a.Clock.Now())
	})
	if err != nil {
		return fmt.Errorf("bootstrap user: %w", err)
	}
	if err := ensureSignupCredit(ctx, a, u); err != nil {
		return fmt.Errorf("bootstrap user: %w", err)
	}
	key, err := auth.NewAPIKey()
	if err != nil {
		return err
	}
	name := "bootstrap"
	if _, err := createKey(ctx, a, userID, key, &name); errors.Is(err, events.ErrUserInactive) {
		a.Logger.Warn("the local user is deactivated: no bootstrap API key")
		return nil
	} else if err != nil {
		return fmt.Errorf("bootstrap API key: %w", err)
	}
	os.Remove(path) // a stale key, if any: the new one replaces it
	if err := app.WriteSecretFile(path, key+"\n"); err != nil {
		return fmt.Errorf("bootstrap API key: %w", err)
	}
	fmt.Fprintf(a.Console, "\nBootstrap API key of the local user (also in %s):\n\n    %s\n\n", path, key)
	a.Logger.Info("bootstrap API key created", "file", path, "user_id", userID)
	return nil
}

// bootstrapKeyWorks reports whether the key in path still authenticates the local user.
func bootstrapKeyWorks(ctx context.Context, a *app.App, path, userID string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", BootstrapKeyFile, err)
	}
	key := strings.TrimSpace(string(b))
	if !auth.ValidAPIKey(key) {
		a.Logger.Warn("bootstrap API key file holds no valid key; making a new one", "file", path)
		return false, nil
	}
	rec, err := a.AuthLookup().KeyByHash(ctx, auth.HashAPIKey(key))
	if errors.Is(err, auth.ErrUnknown) {
		a.Logger.Warn("bootstrap API key is unknown; making a new one", "file", path)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	expired := rec.ExpiresAt != nil && !a.Clock.Now().Before(*rec.ExpiresAt)
	if rec.UserID != userID || rec.Revoked || expired || !rec.UserActive {
		a.Logger.Warn("bootstrap API key no longer works; making a new one", "file", path)
		return false, nil
	}
	return true, nil
}
