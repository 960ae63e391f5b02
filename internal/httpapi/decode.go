package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxBodyBytes bounds a request body: a payload or result at its limit plus
// room for the other fields (an error text of 4 KiB may take six bytes a
// character once escaped).
const maxBodyBytes = core.MaxPayloadBytes + 64<<10

// decodeBody decodes the JSON object of r's body into v strictly: the body
// must be one JSON object whose keys are exactly v's JSON field names, each
// at most once, with values of the right types, and nothing after it. An
// empty body counts as {}. Failures are *core.InvalidError naming the field,
// or *api.TooLargeError.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &api.TooLargeError{Field: "body", Msg: fmt.Sprintf("the request body must be at most %d bytes", mbe.Limit)}
		}
		return core.Invalid("body", "reading the request body: %v", err)
	}
	return decodeJSON(data, v)
}

func decodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := checkKeys(data, fieldNames(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return core.Invalid(te.Field, "%s must be a JSON %s, got %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return core.Invalid("body", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// checkKeys walks the top-level object of data: it must be an object, its
// keys must be in allowed (exact case), none twice, and nothing may follow.
func checkKeys(data []byte, allowed map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	malformed := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return core.Invalid("body", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return core.Invalid("body", "malformed JSON: unexpected end of the body")
		}
		return core.Invalid("body", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	tok, err := dec.Token()
	if err != nil {
		return malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return core.Invalid("body", "the request body must be a JSON object")
	}
	seen := make(map[string]bool, len(allowed))
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return malformed(err)
		}
		if !validText(data[start:dec.InputOffset()]) {
			return core.Invalid("body", "a field name is not valid UTF-8 text")
		}
		key, _ := tok.(string)
		if !allowed[key] {
			return core.Invalid(nameOr(key, "body"), "unknown field %q", clip(key))
		}
		if seen[key] {
			return core.Invalid(nameOr(key, "body"), "field %q is given more than once", clip(key))
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return malformed(err)
		}
		if !validText(value) {
			return core.Invalid(key, "%s is not valid UTF-8 text: it holds an invalid byte or a \\u escape of an unpaired surrogate", key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return core.Invalid("body", "unexpected data after the JSON object")
	}
	return nil
}

// validText reports whether the JSON text b is valid Unicode text: valid
// UTF-8, with no \\u escape of an unpaired UTF-16 surrogate (which decodes
// to U+FFFD, as an invalid byte does, so that two different inputs would
// read as one). In JSON, a backslash occurs only inside a string.
func validText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if i >= len(b) || b[i] != 'u' {
			continue
		}
		r, ok := hex4(b[i+1:])
		if !ok {
			continue // malformed JSON, refused as such
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate first
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(b[i+3:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 decodes the four hex digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// fieldNames returns the JSON names of the fields of the struct v points to.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

// parseQuery parses r's query string, refusing malformed ones, parameters
// not in allowed and parameters given twice.
func parseQuery(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, core.Invalid("query", "malformed query string: %v", err)
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return nil, core.Invalid("query", "a query parameter's name is not valid UTF-8 text")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, core.Invalid(nameOr(k, "query"), "query parameter %q is not valid UTF-8 text", clip(k))
			}
		}
	}
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		switch {
		case !known:
			return nil, core.Invalid(nameOr(k, "query"), "unknown query parameter %q; this route takes %s", clip(k), strings.Join(allowed, ", "))
		case len(vs) > 1:
			return nil, core.Invalid(nameOr(k, "query"), "query parameter %q is given more than once", clip(k))
		}
	}
	return q, nil
}

// parseLimit parses a page size in 1..core.MaxPageLimit; empty is zero, the
// default.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > core.MaxPageLimit {
		return 0, core.Invalid("limit", "limit must be an integer from 1 to %d, got %q", core.MaxPageLimit, clip(s))
	}
	return n, nil
}

// parseWait parses a long-poll wait: a Go duration from 0 to
// core.MaxMailboxWait; empty is zero, no wait.
func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > core.MaxMailboxWait {
		return 0, core.Invalid("wait", "wait must be a Go duration from 0s to %s, got %q", core.MaxMailboxWait, clip(s))
	}
	return d, nil
}

// optDuration parses an optional positive duration field; empty is zero.
func optDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return api.ParseDuration(field, s)
}

// optTime parses an optional RFC 3339 field; empty (or null) is the field
// left out, the zero time to core. A given time is never the zero time:
// api.ParseTime refuses times outside [core.MinTime, core.MaxTime], so that
// "0001-01-01T00:00:00Z" is refused like any other time before 1970 rather
// than taken for a field left out.
func optTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return api.ParseTime(field, s)
}

// renameField re-labels a cursor parse error with the field it came in.
func renameField(err error, field string) error {
	var inv *core.InvalidError
	if errors.As(err, &inv) {
		return &core.InvalidError{Field: field, Reason: inv.Reason}
	}
	return err
}

// nameOr is the field name an error names: name, clipped, or def when the
// name is empty.
func nameOr(name, def string) string {
	if name == "" {
		return def
	}
	return clip(name)
}
