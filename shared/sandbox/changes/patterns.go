package changes

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Patterns are globs over slash paths relative to the tree root: path.Match syntax per segment,
// plus "**" as a whole segment matching zero or more segments ("**/conftest.py", "tests/**",
// "src/**/fixtures/*.json"). A pattern ending in "/" or naming a directory also covers
// everything under it ("tests/" and "tests" both protect tests/a/b.py). Patterns.Match is the
// protected function Apply takes for a sample's protected paths.
type Patterns []string

// Match reports whether one of the patterns covers rel. An invalid pattern (see ValidPattern)
// covers every path: a mistake in a dataset must protect too much, never too little.
func (p Patterns) Match(rel string) bool {
	segs := pathSegments(rel)
	for _, pattern := range p {
		if ValidPattern(pattern) != nil {
			return true
		}
		if matchSegments(patternSegments(pattern), segs) {
			return true
		}
	}
	return false
}

// ValidPattern reports why a pattern is unusable (empty, absolute, "..", "." or empty segments,
// bad path.Match syntax), for the dataset importer's error messages.
func ValidPattern(pattern string) error {
	switch {
	case pattern == "":
		return errors.New("changes: empty pattern")
	case strings.HasPrefix(pattern, "/"):
		return fmt.Errorf("changes: pattern %q is absolute; patterns are relative to the tree root", pattern)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(pattern, "/"), "/") {
		switch seg {
		case "":
			return fmt.Errorf("changes: pattern %q has an empty segment", pattern)
		case ".", "..":
			return fmt.Errorf("changes: pattern %q has a %q segment; paths are matched clean", pattern, seg)
		case "**":
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("changes: pattern %q, segment %q: %w", pattern, seg, err)
		}
	}
	return nil
}

// pathSegments splits rel, cleaned, into its segments; the root has none.
func pathSegments(rel string) []string {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

// patternSegments splits a valid pattern into its segments, ending with "**": a pattern covers
// everything under what it names.
func patternSegments(pattern string) []string {
	segs := strings.Split(strings.TrimSuffix(pattern, "/"), "/")
	if segs[len(segs)-1] != "**" {
		segs = append(segs, "**")
	}
	return segs
}

// matchSegments reports whether the pattern's segments match all of the path's segments.
func matchSegments(pattern, segs []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			for len(pattern) > 0 && pattern[0] == "**" {
				pattern = pattern[1:]
			}
			for i := range len(segs) + 1 {
				if matchSegments(pattern, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pattern[0], segs[0]); !ok {
			return false
		}
		pattern, segs = pattern[1:], segs[1:]
	}
	return len(segs) == 0
}
