package api

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// TooLargeError is input over a size limit: 413 payload_too_large. Field
// names it ("payload", "result", or "body" for a whole request body).
type TooLargeError struct {
	Field string
	Msg   string
}

func (e *TooLargeError) Error() string { return e.Msg }

// ErrorStatus maps an error of core, or of the decoding of a request, to
// its HTTP status, its error code and the field it names: the one mapping
// of every runtime (the HTTP handler, the Lambda functions through it, the
// web runtime). Unknown errors are 500 internal. The statuses are written
// as numbers so that this package stays free of net/http, which the web
// runtime's build leaves out.
func ErrorStatus(err error) (status int, code, field string) {
	var inv *core.InvalidError
	var big *TooLargeError
	switch {
	case errors.As(err, &big):
		return 413, CodePayloadTooLarge, big.Field
	case errors.As(err, &inv):
		return 400, CodeInvalidRequest, inv.Field
	case errors.Is(err, core.ErrInvalid):
		return 400, CodeInvalidRequest, ""
	case errors.Is(err, core.ErrPoolNotFound):
		return 404, CodePoolNotFound, ""
	case errors.Is(err, core.ErrNotFound):
		return 404, CodeNotFound, ""
	case errors.Is(err, core.ErrPoolFull):
		return 429, CodePoolFull, ""
	case errors.Is(err, core.ErrKeyConflict):
		return 409, CodeKeyConflict, "key"
	case errors.Is(err, core.ErrLeaseLost):
		return 409, CodeLeaseLost, "lease"
	case errors.Is(err, core.ErrInvalidState):
		return 409, CodeInvalidState, ""
	case errors.Is(err, core.ErrForbidden):
		return 403, CodeForbidden, ""
	}
	return 500, CodeInternal, ""
}

// RawJSON drops an explicit JSON null, which means "absent".
func RawJSON(m json.RawMessage) json.RawMessage {
	if string(bytes.TrimSpace(m)) == "null" {
		return nil
	}
	return m
}
