package pebblestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// ErrCorrupt marks stored data that fails a check: a bad checksum, a value
// that does not decode, a table file whose size differs from the manifest's,
// a store whose data is gone. It is a core.PublicError: the HTTP API answers
// a read that meets it with "embedded store: data file is corrupt".
var ErrCorrupt error = corruptError{}

type corruptError struct{}

func (corruptError) Error() string         { return "data file is corrupt" }
func (corruptError) PublicMessage() string { return "embedded store: data file is corrupt" }

var _ core.PublicError = corruptError{}

// Key spaces. Every key starts with one byte naming what it holds; the
// rest is built so that a scan in key order is the order its queries need.
const (
	spaceMeta   byte = 'm' // "format" -> format version, "seq" -> last sequence number
	spacePools  byte = 'p' // name -> core.Pool
	spaceTasks  byte = 't' // id -> core.Task
	spaceKeys   byte = 'k' // str(tenant) key -> core.KeyRecord
	spaceDue    byte = 'd' // time(dueAt) id -> empty
	spaceUnsent byte = 'u' // id -> empty
	spaceQueue  byte = 'q' // str(pool) seq -> core.Parked
	spaceMbox   byte = 'b' // str(tenant) str(recipient) cursor -> core.Message
	spaceMlog   byte = 'l' // cursor -> time(at) str(tenant) str(recipient)
	spaceAcks   byte = 'a' // str(tenant) str(recipient) -> cursor
	spaceNewest byte = 'n' // str(tenant) str(recipient) -> cursor of the newest message
	spaceAudit  byte = 'e' // str(tenant) time(at) seq -> core.Event
)

var (
	keyFormat = []byte{spaceMeta, 'f'}
	keySeq    = []byte{spaceMeta, 's'}
)

// key starts a key in space.
func key(space byte, extra int) []byte {
	return append(make([]byte, 0, 1+extra), space)
}

// formatVersion is the layout of the key spaces above.
const formatVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode returns v in its binary form behind its CRC-32C.
func encode(v any) ([]byte, error) {
	e := enc{b: make([]byte, 4, 128)}
	switch v := v.(type) {
	case *core.Pool:
		encPool(&e, v)
	case *core.Task:
		encTask(&e, v)
	case *core.KeyRecord:
		encKey(&e, v)
	case *core.Message:
		encMessage(&e, v)
	case *core.Event:
		encEvent(&e, v)
	case *core.Parked:
		encParked(&e, v)
	default:
		return nil, fmt.Errorf("pebblestore: encode %T: unknown kind", v)
	}
	putCRC(e.b)
	return e.b, nil
}

// putCRC sets the first four bytes of b to the CRC-32C of the rest.
func putCRC(b []byte) {
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
}

// decode checks b's CRC and decodes it into v.
func decode(b []byte, v any) error {
	if len(b) < 4 || binary.BigEndian.Uint32(b) != crc32.Checksum(b[4:], castagnoli) {
		return fmt.Errorf("pebblestore: %T: %w: checksum mismatch", v, ErrCorrupt)
	}
	d := dec{b: b[4:]}
	switch v := v.(type) {
	case *core.Pool:
		decPool(&d, v)
	case *core.Task:
		decTask(&d, v)
	case *core.KeyRecord:
		decKey(&d, v)
	case *core.Message:
		decMessage(&d, v)
	case *core.Event:
		decEvent(&d, v)
	case *core.Parked:
		decParked(&d, v)
	default:
		return fmt.Errorf("pebblestore: decode %T: unknown kind", v)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("pebblestore: %T: %w: %v", v, ErrCorrupt, d.err)
	}
	return nil
}

// appendStr appends s with its length, so that keys made of several strings
// are unambiguous and a string's keys share one prefix.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime appends t so that byte order is time order.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^1<<63)
}

func readTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^1<<63)).UTC()
}

func appendU64(b []byte, n uint64) []byte { return binary.BigEndian.AppendUint64(b, n) }

// mailboxKey identifies one mailbox; keys of its messages and of its ack
// add a space byte in front.
func mailboxKey(tenant, recipient string) []byte {
	return appendStr(appendStr(make([]byte, 0, len(tenant)+len(recipient)+4), tenant), recipient)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// readStr splits the str() element that starts b from the rest of b.
func readStr(b []byte) (str, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, fmt.Errorf("pebblestore: %w: malformed key %x", ErrCorrupt, b)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

// messageKey is the key of the message at cursor c of mailbox box.
func messageKey(box []byte, c core.Cursor) []byte {
	return appendU64(append(key(spaceMbox, len(box)+8), box...), uint64(c))
}

// eventKey is the key of a tenant's event: in (At, Seq) order per tenant.
func eventKey(tenant string, at time.Time, seq uint64) []byte {
	return appendU64(appendTime(appendStr(key(spaceAudit, len(tenant)+18), tenant), at), seq)
}
