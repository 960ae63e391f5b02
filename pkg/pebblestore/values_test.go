package pebblestore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

func sampleValues() []any {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return []any{
		&core.Pool{PoolConfig: core.PoolConfig{Name: "gpu", Capacity: 4, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Hour}, Running: 3, Parked: 7},
		&core.Pool{PoolConfig: core.PoolConfig{Name: "cpu", Capacity: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Hour, Executor: core.ExecutorPull}},
		&core.Task{ID: "t1", Key: "k", Tenant: "acme", Pool: "gpu", Recipient: "r", State: core.StateRunning,
			Payload: json.RawMessage(`{"a":1}`), SubmittedAt: at, Deadline: at.Add(time.Hour), RunTimeout: time.Minute,
			StartedAt: at, Lease: "l", LeaseExpiresAt: at.Add(time.Minute), Result: json.RawMessage{}, BodyHash: "h", Unsent: true, Version: 9},
		&core.Task{ID: "t3", Tenant: "acme", Pool: "push", State: core.StateRunning, StartedAt: at, Lease: "l3",
			LeaseExpiresAt: at.Add(2 * time.Minute), PushAt: at.Add(35 * time.Second), PushAttempts: 2, Error: "503", Version: 4},
		&core.Pool{PoolConfig: core.PoolConfig{Name: "push", Capacity: 2, DefaultMaxWait: time.Minute, RunTimeout: time.Hour, Executor: core.ExecutorPush}},
		&core.Pool{PoolConfig: core.PoolConfig{Name: "stamped", Capacity: 2, DefaultMaxWait: time.Minute, RunTimeout: time.Hour}, Running: 1, LastAt: at},
		&core.Pool{PoolConfig: core.PoolConfig{Name: "pulled", Capacity: 2, DefaultMaxWait: time.Minute, RunTimeout: time.Hour, Executor: core.ExecutorPull}, LastAt: at},
		&core.Task{ID: "t2", Tenant: "acme", State: core.StateExpired, Payload: json.RawMessage("null"), EndedAt: at.In(time.FixedZone("", 3600)), Error: "e"},
		&core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "t1", BodyHash: "h"},
		&core.Message{Cursor: 7, Tenant: "acme", Recipient: "r", TaskID: "t1", Pool: "gpu", Type: "succeeded", Result: json.RawMessage(`[1]`), At: at},
		&core.Message{Cursor: 8, Tenant: "acme", Recipient: "r", TaskID: "t1", Pool: "gpu", Type: core.MessageStarted, Key: "k",
			Payload: json.RawMessage(`{"a":1}`), Deadline: at.Add(time.Hour), Lease: "l", LeaseExpiresAt: at.Add(time.Minute), At: at},
		&core.Event{Seq: 3, At: at, Tenant: "acme", Pool: "gpu", TaskID: "t1", Type: core.EventStart, From: core.StateParked, To: core.StateRunning, Detail: "d"},
		&core.Parked{TaskID: "t1", Tenant: "acme", Deadline: at},
	}
}

func zeroOf(v any) any {
	switch v.(type) {
	case *core.Pool:
		return new(core.Pool)
	case *core.Task:
		return new(core.Task)
	case *core.KeyRecord:
		return new(core.KeyRecord)
	case *core.Message:
		return new(core.Message)
	case *core.Event:
		return new(core.Event)
	case *core.Parked:
		return new(core.Parked)
	}
	panic("unknown")
}

// Every field survives the round trip exactly: nil, empty and "null" JSON
// stay apart, times keep their offset and nanoseconds.
func TestValuesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range sampleValues() {
		b, err := encode(v)
		require.NoError(t, err)
		got := zeroOf(v)
		require.NoError(t, decode(b, got))
		require.Equal(t, v, got)
		// A value of another kind is refused.
		for _, other := range sampleValues() {
			if !sameKind(v, other) {
				require.ErrorIs(t, decode(b, zeroOf(other)), ErrCorrupt)
			}
		}
		// Any flipped bit is caught.
		for i := range b {
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x10
			require.ErrorIs(t, decode(bad, zeroOf(v)), ErrCorrupt, "byte %d", i)
		}
	}
}

func sameKind(a, b any) bool {
	ea, _ := encode(zeroOf(a))
	eb, _ := encode(zeroOf(b))
	return ea[4] == eb[4]
}

// FuzzDecode feeds damaged values to the decoder: it returns an error or a
// value, never panics. With the checksum recomputed, the bytes reach the
// field decoder itself.
func FuzzDecode(f *testing.F) {
	for _, v := range sampleValues() {
		b, err := encode(v)
		require.NoError(f, err)
		f.Add(b[4:])
	}
	f.Add([]byte{})
	f.Add([]byte{tagTask, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		b := make([]byte, 4+len(body))
		copy(b[4:], body)
		putCRC(b)
		for _, v := range sampleValues() {
			out := zeroOf(v)
			if err := decode(b, out); err == nil {
				// What decodes re-encodes to a value that decodes the same.
				again, err := encode(out)
				require.NoError(t, err)
				back := zeroOf(v)
				require.NoError(t, decode(again, back))
				require.Equal(t, out, back)
			}
		}
	})
}
