package functions

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/codeset/codeset/app"
)

// specOperations reads "METHOD /path" and whether it is secured from an OpenAPI file, and how
// many of them are this server's extensions ("x-codeset-extension").
func specOperations(t *testing.T, path string) (map[string]bool, int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read spec: %v", err)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			Security  []map[string]any `json:"security"`
			Extension bool             `json:"x-codeset-extension"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	ops, extensions := map[string]bool{}, 0
	for p, methods := range spec.Paths {
		for m, op := range methods {
			ops[strings.ToUpper(m)+" "+p] = len(op.Security) > 0
			if op.Extension {
				extensions++
			}
		}
	}
	return ops, extensions
}

// TestRoutesCoverExactlyTheSpec checks the table against the project's own copy of the contract
// (the one the binary serves): the project stands alone.
func TestRoutesCoverExactlyTheSpec(t *testing.T) {
	t.Parallel()
	const file = "openapi.json"
	want, extensions := specOperations(t, file)
	if len(want)-extensions != 31 {
		t.Errorf("the spec has %d operations besides %d extensions, the contract promises 31", len(want)-extensions, extensions)
	}
	got := map[string]bool{}
	for _, rt := range Routes {
		key := rt.Method + " " + rt.Path
		if _, dup := got[key]; dup {
			t.Errorf("route %s twice in the table", key)
		}
		got[key] = rt.Auth == app.Bearer
	}
	var missing, extra, auth []string
	for op, secured := range want {
		g, ok := got[op]
		if !ok {
			missing = append(missing, op)
		} else if g != secured {
			auth = append(auth, op)
		}
	}
	for op := range got {
		if _, ok := want[op]; !ok {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(auth)
	if len(missing)+len(extra)+len(auth) > 0 {
		t.Errorf("route table differs from %s:\nmissing %v\nextra %v\nauth differs %v", file, missing, extra, auth)
	}
}

func TestRouteNamesAreFunctionNames(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	seen := map[string]bool{}
	for _, rt := range Routes {
		if !valid.MatchString(rt.Name) {
			t.Errorf("%s %s: %q is not a valid entry point name", rt.Method, rt.Path, rt.Name)
		}
		if seen[rt.Name] {
			t.Errorf("function name %s used twice", rt.Name)
		}
		seen[rt.Name] = true
		if rt.Handler == nil {
			t.Errorf("%s has no handler", rt.Name)
		}
	}
}
