package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// ErrCorrupt marks a data file whose content fails a check: a bad checksum,
// a value that does not decode, a file shorter than its own metadata says.
var ErrCorrupt = errors.New("data file is corrupt")

// Buckets. Each holds one kind of item; keys are built so that a bucket
// scan in key order is the order its queries need.
var (
	bucketMeta   = []byte("meta")   // "format" -> format version, "seq" -> last sequence number
	bucketPools  = []byte("pools")  // name -> core.Pool
	bucketTasks  = []byte("tasks")  // id -> core.Task
	bucketKeys   = []byte("keys")   // str(tenant) key -> core.KeyRecord
	bucketDue    = []byte("due")    // time(dueAt) id -> empty
	bucketUnsent = []byte("unsent") // id -> empty
	bucketQueue  = []byte("queue")  // str(pool) seq -> core.Parked
	bucketMbox   = []byte("mbox")   // str(tenant) str(recipient) cursor -> core.Message
	bucketMlog   = []byte("mlog")   // cursor -> time(at) str(tenant) str(recipient)
	bucketAcks   = []byte("acks")   // str(tenant) str(recipient) -> cursor
	bucketAudit  = []byte("audit")  // str(tenant) time(at) seq -> core.Event

	allBuckets = [][]byte{bucketMeta, bucketPools, bucketTasks, bucketKeys, bucketDue, bucketUnsent,
		bucketQueue, bucketMbox, bucketMlog, bucketAcks, bucketAudit}

	metaFormat = []byte("format")
	metaSeq    = []byte("seq")
)

// formatVersion is the layout of the buckets above.
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
		return nil, fmt.Errorf("boltstore: encode %T: unknown kind", v)
	}
	binary.BigEndian.PutUint32(e.b, crc32.Checksum(e.b[4:], castagnoli))
	return e.b, nil
}

// decode checks b's CRC and decodes it into v.
func decode(b []byte, v any) error {
	if len(b) < 4 || binary.BigEndian.Uint32(b) != crc32.Checksum(b[4:], castagnoli) {
		return fmt.Errorf("boltstore: %T: %w: checksum mismatch", v, ErrCorrupt)
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
		return fmt.Errorf("boltstore: decode %T: unknown kind", v)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("boltstore: %T: %w: %v", v, ErrCorrupt, d.err)
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

// mailboxKey is the key prefix of one mailbox.
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
		return nil, nil, fmt.Errorf("boltstore: %w: malformed key %x", ErrCorrupt, b)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}
