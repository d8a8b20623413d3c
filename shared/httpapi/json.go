package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// MaxBody is the default request body limit; endpoints that take files set their own.
const MaxBody = 1 << 20

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"detail":"internal server error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf)
}

// Decode reads a JSON object body (at most limit bytes) into dst, a pointer to a struct, and
// checks it the way FastAPI would: malformed JSON, a field of the wrong type and a missing
// required field (tag `required:"true"`) are 422s naming the field; a body over the limit is 413.
// Unknown fields are ignored, as pydantic does.
func Decode(r *http.Request, limit int64, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes", limit)
		}
		return BadRequest("could not read the request body")
	}
	return DecodeBytes(body, dst)
}

// DecodeBytes is Decode on a body already read.
func DecodeBytes(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("null")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Invalid("json_invalid", "JSON decode error: "+se.Error(), "body", int(se.Offset))
		}
		return Invalid("model_attributes_type", "Input should be a valid dictionary or object to extract fields from", "body")
	}
	if raw == nil {
		return Invalid("missing", "Field required", "body")
	}
	var fields []FieldError
	t := reflect.TypeOf(dst).Elem()
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		val, present := raw[name]
		if !present || (string(val) == "null" && f.Tag.Get("required") == "true") {
			if f.Tag.Get("required") == "true" {
				fields = append(fields, FieldError{Loc: []any{"body", name}, Msg: "Field required", Type: "missing"})
			}
			continue
		}
		if err := json.Unmarshal(val, v.Field(i).Addr().Interface()); err != nil {
			fields = append(fields, typeError(name, f.Type, err))
		}
	}
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

func typeError(name string, t reflect.Type, err error) FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typ, msg := "type_error", fmt.Sprintf("Input should be a valid %s", t.Kind())
	switch t.Kind() {
	case reflect.String:
		typ, msg = "string_type", "Input should be a valid string"
	case reflect.Int, reflect.Int32, reflect.Int64:
		typ, msg = "int_type", "Input should be a valid integer"
	case reflect.Bool:
		typ, msg = "bool_type", "Input should be a valid boolean"
	case reflect.Float64, reflect.Float32:
		typ, msg = "float_type", "Input should be a valid number"
	case reflect.Slice:
		typ, msg = "list_type", "Input should be a valid list"
	}
	return FieldError{Loc: []any{"body", name}, Msg: msg, Type: typ}
}
