package changes_test

import (
	"testing"

	"github.com/codeset/codeset/shared/sandbox/changes"
)

func TestPatternsMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"tests", "tests", true},
		{"tests", "tests/test_x.py", true},
		{"tests", "tests/a/b.py", true},
		{"tests/", "tests/a/b.py", true},
		{"tests/", "tests", true},
		{"tests", "tests2/a.py", false},
		{"tests", "src/tests/a.py", false},
		{"tests/**", "tests", true},
		{"tests/**", "tests/a/b.py", true},
		{"**/conftest.py", "conftest.py", true},
		{"**/conftest.py", "a/b/conftest.py", true},
		{"**/conftest.py", "a/b/conftest.pyc", false},
		{"**/conftest.py", "a/conftest.py/inner", true},
		{"**", "anything/at/all", true},
		{"**", "x", true},
		{"src/**/fixtures/*.json", "src/fixtures/a.json", true},
		{"src/**/fixtures/*.json", "src/a/b/fixtures/a.json", true},
		{"src/**/fixtures/*.json", "src/a/b/fixtures/a.yaml", false},
		{"src/**/fixtures/*.json", "lib/fixtures/a.json", false},
		{"*.py", "setup.py", true},
		{"*.py", "src/setup.py", false},
		{"test_*.py", "test_a.py", true},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/b/c", false},
		{"a/**/**/c", "a/c", true},
		{"tests/[ab].py", "tests/a.py", true},
		{"tests/[ab].py", "tests/c.py", false},
		{"tests", "./tests/x", true},
		{"tests", "/tests/x", true},
		{"[", "anything", true}, // invalid: protects everything
	} {
		if got := (changes.Patterns{tc.pattern}).Match(tc.path); got != tc.want {
			t.Errorf("Patterns{%q}.Match(%q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	if (changes.Patterns{}).Match("a") {
		t.Error("no patterns matched a path")
	}
	if !(changes.Patterns{"x", "y/**"}).Match("y/z") {
		t.Error("the second pattern was not tried")
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern string
		valid   bool
	}{
		{"tests", true},
		{"tests/", true},
		{"**", true},
		{"**/conftest.py", true},
		{"src/**/fixtures/*.json", true},
		{"a[bc]?/*.py", true},
		{"", false},
		{"/etc/passwd", false},
		{"/", false},
		{"../x", false},
		{"a/../b", false},
		{"./tests", false},
		{"a//b", false},
		{"tests//", false},
		{"[", false},
		{"a/[z-a/b", false},
		{`a\`, false},
	} {
		err := changes.ValidPattern(tc.pattern)
		if (err == nil) != tc.valid {
			t.Errorf("ValidPattern(%q) = %v, want valid %v", tc.pattern, err, tc.valid)
		}
	}
}
