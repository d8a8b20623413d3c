// Package httpapi holds the HTTP conventions every function follows: JSON in and out, errors in
// the spec's shapes ({"detail": "..."} and FastAPI's 422 {"detail": [{"loc","msg","type"}]}),
// request decoding and validation, query parameters, request ids, logging and panic recovery.
package httpapi

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an HTTP error with a plain detail message.
type Error struct {
	Status int
	Detail string
	Header http.Header // extra headers, e.g. WWW-Authenticate
	// Code, when set, is a stable machine-readable reason written beside the detail
	// ({"detail": "...", "code": "..."}), for a client that must tell two errors of the same
	// status apart (a repository GitHub does not show, one that needs the GitHub App).
	Code string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Detail) }

// Errorf builds an *Error.
func Errorf(status int, format string, a ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, a...)}
}

// Common errors.
func NotFound(what string) *Error   { return Errorf(http.StatusNotFound, "%s not found", what) }
func Conflict(detail string) *Error { return &Error{Status: http.StatusConflict, Detail: detail} }
func BadRequest(detail string) *Error {
	return &Error{Status: http.StatusBadRequest, Detail: detail}
}

// Unauthorized is a 401 with the WWW-Authenticate challenge RFC 6750 asks for.
func Unauthorized(detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Detail: detail, Header: http.Header{"Www-Authenticate": {"Bearer"}}}
}

// FieldError is one entry of a FastAPI-shaped 422.
type FieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// ValidationError is a 422 with one entry per invalid field.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "validation error"
	}
	return fmt.Sprintf("validation error: %v %s", e.Fields[0].Loc, e.Fields[0].Msg)
}

// Invalid builds a 422 for one location, e.g. Invalid("value_error", "must be positive", "body", "amount_cents").
func Invalid(typ, msg string, loc ...any) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Loc: loc, Msg: msg, Type: typ}}}
}

// WriteError writes err in the spec's shape. Anything that is not an *Error or a
// *ValidationError is a 500 whose detail says nothing of the cause; the caller logs the cause.
func WriteError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	if errors.As(err, &ve) {
		WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": ve.Fields})
		return
	}
	var he *Error
	if errors.As(err, &he) {
		for k, v := range he.Header {
			w.Header()[k] = v
		}
		body := map[string]string{"detail": he.Detail}
		if he.Code != "" {
			body["code"] = he.Code
		}
		WriteJSON(w, he.Status, body)
		return
	}
	WriteJSON(w, http.StatusInternalServerError, map[string]string{"detail": "internal server error"})
}

// IsClientError reports whether err maps to a 4xx.
func IsClientError(err error) bool {
	var ve *ValidationError
	var he *Error
	return errors.As(err, &ve) || (errors.As(err, &he) && he.Status < 500)
}
