package pebblestore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Values are stored in a compact binary form that round-trips every field
// exactly (nil and empty JSON stay distinct, times keep their zone), behind
// a CRC-32C of the whole value. Each kind starts with a tag byte, so that a
// value read from the wrong key space is caught too.
const (
	tagPool byte = iota + 1
	tagTask
	tagKey
	tagMessage
	tagEvent
	tagParked
)

type enc struct{ b []byte }

func (e *enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// raw keeps nil apart from empty: its length is stored plus one, 0 for nil.
func (e *enc) raw(r json.RawMessage) {
	if r == nil {
		e.b = append(e.b, 0)
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(r))+1)
	e.b = append(e.b, r...)
}

func (e *enc) int(n int64) { e.b = binary.AppendVarint(e.b, n) }

func (e *enc) time(t time.Time) {
	n := len(e.b)
	e.b = append(e.b, 0)
	e.b, _ = t.AppendBinary(e.b) // fails only for zone offsets that are not whole minutes
	e.b[n] = byte(len(e.b) - n - 1)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("malformed %s", what)
	}
	d.b = nil
}

func (d *dec) uvarint(what string) uint64 {
	n, w := binary.Uvarint(d.b)
	if w <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[w:]
	return n
}

func (d *dec) take(n uint64, what string) []byte {
	if uint64(len(d.b)) < n {
		d.fail(what)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) str() string { return string(d.take(d.uvarint("string"), "string")) }

func (d *dec) raw() json.RawMessage {
	n := d.uvarint("bytes")
	if n == 0 {
		return nil
	}
	return json.RawMessage(append([]byte{}, d.take(n-1, "bytes")...))
}

func (d *dec) int() int64 {
	n, w := binary.Varint(d.b)
	if w <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[w:]
	return n
}

func (d *dec) time() time.Time {
	if len(d.b) == 0 {
		d.fail("time")
		return time.Time{}
	}
	n := uint64(d.b[0])
	d.b = d.b[1:]
	b := d.take(n, "time")
	var t time.Time
	if err := t.UnmarshalBinary(b); err != nil && d.err == nil {
		d.fail("time")
		return time.Time{}
	}
	// UnmarshalBinary takes nanoseconds past a second; accept only what
	// encoding makes.
	if again, err := t.AppendBinary(nil); d.err == nil && (err != nil || string(again) != string(b)) {
		d.fail("time")
		return time.Time{}
	}
	return t
}

func (d *dec) tag(want byte) {
	if len(d.b) == 0 || d.b[0] != want {
		d.fail("value kind")
		return
	}
	d.b = d.b[1:]
}

func encPool(e *enc, p *core.Pool) {
	e.b = append(e.b, tagPool)
	e.str(p.Name)
	e.int(int64(p.Capacity))
	e.int(int64(p.MaxParked))
	e.int(int64(p.DefaultMaxWait))
	e.int(int64(p.RunTimeout))
	e.int(int64(p.Running))
	e.int(int64(p.Parked))
	// The executor follows in files written since it was added, when it is
	// not the default, and the last stamp after it, when the pool has one
	// (in Unix nanoseconds: it is only compared, and every transition
	// writes it); a pool without them ends here, as older files hold it.
	if p.Executor != "" || !p.LastAt.IsZero() {
		e.str(string(p.Executor))
	}
	if !p.LastAt.IsZero() {
		e.int(p.LastAt.UnixNano())
	}
}

func decPool(d *dec, p *core.Pool) {
	d.tag(tagPool)
	p.Name = d.str()
	p.Capacity = int(d.int())
	p.MaxParked = int(d.int())
	p.DefaultMaxWait = time.Duration(d.int())
	p.RunTimeout = time.Duration(d.int())
	p.Running = int(d.int())
	p.Parked = int(d.int())
	if len(d.b) > 0 {
		p.Executor = core.Executor(d.str())
	}
	if len(d.b) > 0 {
		p.LastAt = time.Unix(0, d.int()).UTC()
	}
}

func encTask(e *enc, t *core.Task) {
	e.b = append(e.b, tagTask)
	e.str(t.ID)
	e.str(t.Key)
	e.str(t.Tenant)
	e.str(t.Pool)
	e.str(t.Recipient)
	e.str(string(t.State))
	e.raw(t.Payload)
	e.time(t.SubmittedAt)
	e.time(t.Deadline)
	e.int(int64(t.RunTimeout))
	e.time(t.StartedAt)
	e.str(t.Lease)
	e.time(t.LeaseExpiresAt)
	e.time(t.EndedAt)
	e.raw(t.Result)
	e.str(t.Error)
	e.str(t.BodyHash)
	if t.Unsent {
		e.int(1)
	} else {
		e.int(0)
	}
	e.int(t.Version)
	// Trailing fields, absent from values written before they existed: only
	// a pending push writes them.
	if !t.PushAt.IsZero() || t.PushAttempts != 0 {
		e.time(t.PushAt)
		e.int(int64(t.PushAttempts))
	}
}

func decTask(d *dec, t *core.Task) {
	d.tag(tagTask)
	t.ID = d.str()
	t.Key = d.str()
	t.Tenant = d.str()
	t.Pool = d.str()
	t.Recipient = d.str()
	t.State = core.State(d.str())
	t.Payload = d.raw()
	t.SubmittedAt = d.time()
	t.Deadline = d.time()
	t.RunTimeout = time.Duration(d.int())
	t.StartedAt = d.time()
	t.Lease = d.str()
	t.LeaseExpiresAt = d.time()
	t.EndedAt = d.time()
	t.Result = d.raw()
	t.Error = d.str()
	t.BodyHash = d.str()
	t.Unsent = d.int() != 0
	t.Version = d.int()
	if len(d.b) > 0 {
		t.PushAt = d.time()
		t.PushAttempts = int(d.int())
	}
}

func encKey(e *enc, k *core.KeyRecord) {
	e.b = append(e.b, tagKey)
	e.str(k.Tenant)
	e.str(k.Key)
	e.str(k.TaskID)
	e.str(k.BodyHash)
}

func decKey(d *dec, k *core.KeyRecord) {
	d.tag(tagKey)
	k.Tenant = d.str()
	k.Key = d.str()
	k.TaskID = d.str()
	k.BodyHash = d.str()
}

func encMessage(e *enc, m *core.Message) {
	e.b = append(e.b, tagMessage)
	e.int(int64(m.Cursor))
	e.str(m.Tenant)
	e.str(m.Recipient)
	e.str(m.TaskID)
	e.str(m.Pool)
	e.str(string(m.Type))
	e.str(m.Lease)
	e.raw(m.Result)
	e.str(m.Error)
	e.time(m.At)
	// A started message's task fields follow, in files written since they
	// were added; a message without them ends here, as older files hold it.
	if m.Key != "" || len(m.Payload) > 0 || !m.Deadline.IsZero() || !m.LeaseExpiresAt.IsZero() {
		e.str(m.Key)
		e.raw(m.Payload)
		e.time(m.Deadline)
		e.time(m.LeaseExpiresAt)
	}
}

func decMessage(d *dec, m *core.Message) {
	d.tag(tagMessage)
	m.Cursor = core.Cursor(d.int())
	m.Tenant = d.str()
	m.Recipient = d.str()
	m.TaskID = d.str()
	m.Pool = d.str()
	m.Type = core.MessageType(d.str())
	m.Lease = d.str()
	m.Result = d.raw()
	m.Error = d.str()
	m.At = d.time()
	if len(d.b) > 0 {
		m.Key = d.str()
		m.Payload = d.raw()
		m.Deadline = d.time()
		m.LeaseExpiresAt = d.time()
	}
}

func encEvent(e *enc, ev *core.Event) {
	e.b = append(e.b, tagEvent)
	e.int(int64(ev.Seq))
	e.time(ev.At)
	e.str(ev.Tenant)
	e.str(ev.Pool)
	e.str(ev.TaskID)
	e.str(ev.Type)
	e.str(string(ev.From))
	e.str(string(ev.To))
	e.str(ev.Detail)
}

func decEvent(d *dec, ev *core.Event) {
	d.tag(tagEvent)
	ev.Seq = uint64(d.int())
	ev.At = d.time()
	ev.Tenant = d.str()
	ev.Pool = d.str()
	ev.TaskID = d.str()
	ev.Type = d.str()
	ev.From = core.State(d.str())
	ev.To = core.State(d.str())
	ev.Detail = d.str()
}

func encParked(e *enc, p *core.Parked) {
	e.b = append(e.b, tagParked)
	e.str(p.TaskID)
	e.str(p.Tenant)
	e.time(p.Deadline)
}

func decParked(d *dec, p *core.Parked) {
	d.tag(tagParked)
	p.TaskID = d.str()
	p.Tenant = d.str()
	p.Deadline = d.time()
}
