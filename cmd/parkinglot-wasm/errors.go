package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// errorCode maps an error of core or of the decoding of arguments to HTTP
// API v1's error code and the field it names: api.ErrorStatus, without the
// status.
func errorCode(err error) (code, field string) {
	_, code, field = api.ErrorStatus(err)
	return code, field
}

// decode decodes the JSON object args into v strictly: unknown fields,
// wrong types and trailing data are invalid_request naming the field.
// Empty arguments are {}.
func decode(args []byte, v any) error {
	if len(bytes.TrimSpace(args)) == 0 {
		args = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return core.Invalid(te.Field, "%s must be a JSON %s, got %s", te.Field, kind(te.Type.Kind().String()), te.Value)
		}
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
			name = strings.Trim(name, `"`)
			return core.Invalid(clip(name), "unknown option %q", clip(name))
		}
		return core.Invalid("body", "malformed arguments: %s", msg)
	}
	if _, err := dec.Token(); err != io.EOF {
		return core.Invalid("body", "unexpected data after the arguments")
	}
	return nil
}

// kind names a Go kind as a JSON type.
func kind(k string) string {
	switch {
	case k == "string", k == "bool":
		return map[string]string{"string": "string", "bool": "boolean"}[k]
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "slice", k == "array":
		return "array"
	}
	return "object"
}

// optDuration parses an optional positive duration; empty is zero.
func optDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return api.ParseDuration(field, s)
}

// requiredDuration parses a positive duration that must be given.
func requiredDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, core.Invalid(field, "%s is required, a duration such as \"30s\"", field)
	}
	return api.ParseDuration(field, s)
}

// renameField re-labels a cursor parse error with the field it came in.
func renameField(err error, field string) error {
	var inv *core.InvalidError
	if errors.As(err, &inv) {
		return &core.InvalidError{Field: field, Reason: inv.Reason}
	}
	return err
}

// prefixField names the field of an *InvalidError within at ("pools[1]").
func prefixField(err error, at string) error {
	var inv *core.InvalidError
	if errors.As(err, &inv) {
		return &core.InvalidError{Field: at + "." + inv.Field, Reason: inv.Reason}
	}
	return err
}

// clip shortens an echoed bad value so that an error stays small.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
