package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
)

// IntParam reads an optional integer query parameter within [min, max]; absent gives ok=false.
// A value that is not an integer or out of range is a FastAPI-shaped 422.
func IntParam(r *http.Request, name string, min, max int) (n int, ok bool, err error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, false, nil
	}
	n, perr := strconv.Atoi(s)
	if perr != nil {
		return 0, false, Invalid("int_parsing", "Input should be a valid integer, unable to parse string as an integer", "query", name)
	}
	if n < min {
		return 0, false, Invalid("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", min), "query", name)
	}
	if n > max {
		return 0, false, Invalid("less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", max), "query", name)
	}
	return n, true, nil
}
