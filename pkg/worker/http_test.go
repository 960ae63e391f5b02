package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

func TestHTTPHandler(t *testing.T) {
	var ran []string
	h := worker.HTTPHandler("s3cret", func(ctx context.Context, task *worker.Task) (any, error) {
		ran = append(ran, task.ID)
		switch task.ID {
		case "fails":
			return nil, errors.New("no luck")
		case "panics":
			panic("boom")
		case "lease":
			dl, ok := ctx.Deadline()
			require.True(t, ok, "the handler's context ends with the lease")
			require.True(t, dl.Equal(task.LeaseExpiresAt.Round(0)), "%s vs %s", dl, task.LeaseExpiresAt)
		}
		var in map[string]int
		require.NoError(t, task.Decode(&in))
		return map[string]int{"got": in["n"]}, nil
	})
	post := func(body []byte, sig string) (*httptest.ResponseRecorder, api.PushOutcome, api.Error) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if sig != "" {
			r.Header.Set(api.SignatureHeader, sig)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var o api.PushOutcome
		var e api.Error
		if w.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &o))
		} else {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
		}
		return w, o, e
	}
	push := func(id string) []byte {
		b, err := json.Marshal(api.PushedTask{ID: id, Tenant: "acme", Pool: "p", Lease: "l1", Payload: json.RawMessage(`{"n":3}`),
			Deadline: time.Now().Add(time.Hour), LeaseExpiresAt: time.Now().Add(time.Minute), Attempt: 1})
		require.NoError(t, err)
		return b
	}
	signed := func(b []byte) string { return api.Sign([]byte("s3cret"), time.Now(), b) }

	b := push("ok")
	w, o, _ := post(b, signed(b))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "succeeded", o.Status)
	require.JSONEq(t, `{"got":3}`, string(o.Result))

	b = push("fails")
	_, o, _ = post(b, signed(b))
	require.Equal(t, api.PushOutcome{Status: "failed", Error: "no luck"}, o)
	b = push("panics")
	_, o, _ = post(b, signed(b))
	require.Equal(t, api.PushOutcome{Status: "failed", Error: "panic: boom"}, o)
	b = push("lease")
	_, o, _ = post(b, signed(b))
	require.Equal(t, "succeeded", o.Status)

	// Refused before the handler runs.
	n := len(ran)
	b = push("unsigned")
	w, _, e := post(b, "")
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, api.CodeUnauthorized, e.Error.Code)
	w, _, e = post(b, api.Sign([]byte("s3cret"), time.Now().Add(-10*time.Minute), b))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Contains(t, e.Error.Message, "replay")
	w, _, _ = post(b, signed(push("other")))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	bad := []byte(`{"id":""}`)
	w, _, e = post(bad, signed(bad))
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, e.Error.Message, "id and lease are required")
	huge := bytes.Repeat([]byte("x"), 300<<10)
	w, _, e = post(huge, signed(huge))
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	require.Equal(t, api.CodePayloadTooLarge, e.Error.Code)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, n, len(ran), "the handler ran for none of them")
}
