package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/codeset/codeset/functions"
	"github.com/codeset/codeset/shared/config"
)

// users runs an operator action on one user: deactivate, reactivate or revoke-tokens. A running
// server sees the change within CODESET_AUTH_CACHE_TTL.
func users(args []string) error {
	names := make([]string, 0, len(functions.UserAdminActions))
	for n := range functions.UserAdminActions {
		names = append(names, n)
	}
	sort.Strings(names)
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: codeset users %s USER_ID [flags]\n", strings.Join(names, "|"))
		fs.PrintDefaults()
	}
	var cfg config.Config
	if err := cfg.Bind(fs); err != nil {
		return err
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:] // flags may follow the arguments
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("give an action and a user id")
	}
	action, ok := functions.UserAdminActions[pos[0]]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown action %q", pos[0])
	}
	ctx := context.Background()
	a, err := functions.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	changed, err := action(ctx, a, pos[1])
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(os.Stdout, "%s: %s done\n", pos[1], pos[0])
	} else {
		fmt.Fprintf(os.Stdout, "%s: nothing to do (already so)\n", pos[1])
	}
	return nil
}
