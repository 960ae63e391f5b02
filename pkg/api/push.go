package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// PushedTask is what a push pool's target receives for each start: the body
// of the POST to an HTTP target, the event of a Lambda function, the body of
// an SQS message. A target may receive one start more than once (delivery
// is at least once): the task's id is the idempotency key, the lease tells
// a start from a later one of the same task.
type PushedTask struct {
	ID             string          `json:"id"`
	Tenant         string          `json:"tenant"`
	Pool           string          `json:"pool"`
	Key            string          `json:"key,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Deadline       time.Time       `json:"deadline"`
	Lease          string          `json:"lease"`
	LeaseExpiresAt time.Time       `json:"leaseExpiresAt"`
	// Attempt is this delivery's number, from 1: the deliveries before it
	// failed or never had their outcome recorded.
	Attempt int `json:"attempt"`
}

// FromPushed is what t's target receives.
func FromPushed(t *core.Task) PushedTask {
	return PushedTask{
		ID: t.ID, Tenant: t.Tenant, Pool: t.Pool, Key: t.Key, Payload: t.Payload,
		Deadline: t.Deadline.UTC(), Lease: t.Lease, LeaseExpiresAt: t.LeaseExpiresAt.UTC(),
		Attempt: t.PushAttempts + 1,
	}
}

// PushOutcome is a synchronous HTTP target's answer (any 2xx; an empty body
// is "succeeded"), and the body of a result message a worker sends to a
// pool's results queue (with TaskID and Lease).
type PushOutcome struct {
	TaskID string          `json:"taskId,omitempty"`
	Lease  string          `json:"lease,omitempty"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// SignatureHeader carries the signature of a push to an HTTP target:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 with the target's secret of
// "<t>.<body>">".
const SignatureHeader = "Parkinglot-Signature"

// MaxSignatureAge is how old a signed push VerifySignature accepts.
const MaxSignatureAge = 5 * time.Minute

// Sign returns the SignatureHeader value of body sent at t with secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors of VerifySignature.
var (
	ErrSignatureMissing = errors.New("signature missing or malformed")
	ErrSignatureInvalid = errors.New("signature does not match")
	ErrSignatureStale   = errors.New("signature too old or from the future: a replay")
)

// VerifySignature checks header, a SignatureHeader value, against body
// and secret, and that it was made within MaxSignatureAge of now (either
// way): an older one is a replay. Any v1 entry may match (a sender may sign
// with several secrets while one is rotated).
func VerifySignature(secret []byte, header string, body []byte, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMissing
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return fmt.Errorf("%w: v1 is not hex", ErrSignatureMissing)
			}
			sigs = append(sigs, sig)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMissing
	}
	if age := now.Sub(time.Unix(sec, 0)); age > MaxSignatureAge || age < -MaxSignatureAge {
		return ErrSignatureStale
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureInvalid
}
