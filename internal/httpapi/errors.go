package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// retryAfterSeconds is the Retry-After of a 429: parked depth frees as slots
// do, so a client should come back soon, not at once.
const retryAfterSeconds = "1"

// fail writes the error response of err. Internal errors are logged and
// their text is not shown: the message is "internal error", or a backend's
// core.PublicError message ("embedded store: data file is corrupt").
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, apiCode, field := api.ErrorStatus(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
		var pub core.PublicError
		if errors.As(err, &pub) {
			msg = pub.PublicMessage()
		}
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody reads the answer.
			h.log.DebugContext(r.Context(), "request cancelled by the client", "method", r.Method, "path", r.URL.Path)
		} else {
			h.log.ErrorContext(r.Context(), "internal error serving request", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	WriteError(w, code, apiCode, msg, field)
}

// WriteError writes the API's error body: status code, its api.Code*
// code, the message and the field it names, if any.
func WriteError(w http.ResponseWriter, code int, apiCode, msg, field string) {
	writeJSON(w, code, api.Error{Error: api.ErrorDetail{Code: apiCode, Message: msg, Field: field}})
}

// NoRoute writes the 404 of a path that no route serves.
func NoRoute(w http.ResponseWriter, path string) {
	WriteError(w, http.StatusNotFound, api.CodeNotFound, "no such route: "+clip(path), "")
}

// writeJSON encodes v before writing anything, so that an encoding failure
// is still a well-formed 500. It leaves <, > and & as they are (the body is
// JSON, never HTML): a stored payload or result is written at most at its
// own size, as core.MessageBytes counts it.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		code = http.StatusInternalServerError
		_ = json.NewEncoder(&buf).Encode(api.Error{Error: api.ErrorDetail{Code: api.CodeInternal, Message: "internal error"}})
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes()) // a failed write means the client left
}
