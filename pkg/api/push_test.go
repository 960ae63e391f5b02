package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
)

func TestSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"id":"t1"}`)
	at := time.Unix(1_800_000_000, 0)
	h := api.Sign(secret, at, body)
	require.Regexp(t, `^t=1800000000,v1=[0-9a-f]{64}$`, h)
	require.NoError(t, api.VerifySignature(secret, h, body, at))
	require.NoError(t, api.VerifySignature(secret, h, body, at.Add(api.MaxSignatureAge)), "up to five minutes old")

	require.ErrorIs(t, api.VerifySignature(secret, h, body, at.Add(api.MaxSignatureAge+time.Second)), api.ErrSignatureStale, "a replay")
	require.ErrorIs(t, api.VerifySignature(secret, h, body, at.Add(-api.MaxSignatureAge-time.Second)), api.ErrSignatureStale)
	require.ErrorIs(t, api.VerifySignature(secret, h, []byte(`{"id":"t2"}`), at), api.ErrSignatureInvalid, "another body")
	require.ErrorIs(t, api.VerifySignature([]byte("other"), h, body, at), api.ErrSignatureInvalid, "another secret")
	for _, bad := range []string{"", "t=1800000000", "v1=00", "t=x,v1=00", "t=1800000000,v1=zz", "garbage"} {
		require.ErrorIs(t, api.VerifySignature(secret, bad, body, at), api.ErrSignatureMissing, bad)
	}
	// While a secret is rotated, the sender signs with both.
	old := api.Sign([]byte("old"), at, body)
	both := h + "," + old[len("t=1800000000,"):]
	require.NoError(t, api.VerifySignature([]byte("old"), both, body, at))
	require.NoError(t, api.VerifySignature(secret, both, body, at))
}
