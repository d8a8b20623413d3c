package dataset

import (
	"bytes"
	"fmt"
	"strings"
)

// ParseTxtar reads a work tree written as txtar, the plain-text archive format of Go's own
// tests: an optional comment, then for each file a line "-- path --" followed by its content.
// Keeping a work tree as one text file keeps it reviewable in diffs and out of the way of Go
// tooling (a go.mod inside it would otherwise be a nested module).
func ParseTxtar(data []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	var name string
	var content []byte
	flush := func() {
		if name != "" {
			files[name] = content
		}
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		trimmed := strings.TrimRight(string(line), "\r\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			name, content = strings.TrimSpace(trimmed[3:len(trimmed)-3]), []byte{}
			if !relativeClean(name) {
				return nil, fmt.Errorf("txtar: %q is not a relative path", name)
			}
			if _, dup := files[name]; dup {
				return nil, fmt.Errorf("txtar: %s appears twice", name)
			}
			continue
		}
		if name != "" {
			content = append(content, line...)
		}
	}
	flush()
	return files, nil
}
