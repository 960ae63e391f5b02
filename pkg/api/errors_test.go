package api_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestErrorStatus: every sentinel of core has its status and code, also
// wrapped; an unknown error is 500 internal.
func TestErrorStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err         error
		status      int
		code, field string
	}{
		{&api.TooLargeError{Field: "payload", Msg: "big"}, 413, api.CodePayloadTooLarge, "payload"},
		{core.Invalid("maxWait", "bad"), 400, api.CodeInvalidRequest, "maxWait"},
		{core.ErrInvalid, 400, api.CodeInvalidRequest, ""},
		{core.ErrPoolNotFound, 404, api.CodePoolNotFound, ""},
		{core.ErrNotFound, 404, api.CodeNotFound, ""},
		{core.ErrPoolFull, 429, api.CodePoolFull, ""},
		{core.ErrKeyConflict, 409, api.CodeKeyConflict, "key"},
		{core.ErrLeaseLost, 409, api.CodeLeaseLost, "lease"},
		{core.ErrInvalidState, 409, api.CodeInvalidState, ""},
		{core.ErrForbidden, 403, api.CodeForbidden, ""},
		{errors.New("disk on fire"), 500, api.CodeInternal, ""},
	} {
		for _, err := range []error{c.err, fmt.Errorf("core: x: %w", c.err)} {
			status, code, field := api.ErrorStatus(err)
			require.Equal(t, c.status, status, "%v", err)
			require.Equal(t, c.code, code, "%v", err)
			require.Equal(t, c.field, field, "%v", err)
		}
	}
	require.Nil(t, api.RawJSON([]byte(" null ")))
	require.Equal(t, `{"a":1}`, string(api.RawJSON([]byte(`{"a":1}`))))
}
