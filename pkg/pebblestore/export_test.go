package pebblestore

import (
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Flush writes the memtable to table files, so that tests can damage them.
func Flush(s *Store) error { return s.db.Flush() }

// Seq returns the last sequence number committed. Call it only while no
// write is in progress: the writer goroutine owns it.
func Seq(s *Store) uint64 { return s.seq }

// Encode and Decode are the store's value encoding, for tests that write
// through Pebble behind the store's back.
func Encode(v any) ([]byte, error) { return encode(v) }
func Decode(b []byte, v any) error { return decode(b, v) }

// Keys of the store's items, for the same tests.
func PoolKey(name string) []byte                { return poolKey(name) }
func TaskKey(id string) []byte                  { return taskKey(id) }
func DueKey(at time.Time, id string) []byte     { return dueKey(at, id) }
func NewestKey(tenant, recipient string) []byte { return newestKey(mailboxKey(tenant, recipient)) }
func AckKey(tenant, recipient string) []byte    { return ackKey(mailboxKey(tenant, recipient)) }
func MessageKey(tenant, recipient string, c core.Cursor) []byte {
	return messageKey(mailboxKey(tenant, recipient), c)
}

// QueuePrefix is the prefix of pool's parking-queue messages.
func QueuePrefix(pool string) []byte { return appendStr(key(spaceQueue, len(pool)+1), pool) }
