package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"slices"
	"strings"
	"time"
)

// A keyed submission is replayed when a retry has the same body; another
// body under the same key is ErrKeyConflict. The same body is the same
// request as the pool resolves it:
//
//   - the pool and the recipient (the tenant when none is given);
//   - the payload as a JSON value: objects' members sorted by name (members
//     of one name kept in their order), no insignificant whitespace,
//     strings compared by their text whatever their escapes, numbers as
//     written (1 and 1.0 differ); no payload and null are the same;
//   - the wait: a deadline given is that instant; otherwise maxWait, given
//     or the pool's defaultMaxWait (naming the default is leaving it out);
//   - runTimeout, given or the pool's.
//
// Defaults are the pool's at the time of each request: after a pool's
// defaults change, a retry that leaves them out is another body.
//
// The fingerprint of that (bodyHash) is stored with the key, prefixed
// with its version. A key stored by an earlier version holds the hash of
// the request's raw fields (legacyBodyHash); a retry of such a request
// still replays when it repeats them byte for byte, as it did then.

// bodyHashVersion prefixes the hashes bodyHash makes; a stored hash
// without it is a legacyBodyHash.
const bodyHashVersion = "v2:"

// bodyHash fingerprints what a retry with the same key must repeat,
// resolved against the pool's defaults.
func (r *SubmitRequest) bodyHash(pool PoolConfig) string {
	h := newFieldHash()
	h.field([]byte(r.Pool))
	h.field([]byte(r.Recipient))
	h.field(canonicalPayload(r.Payload))
	if !r.Deadline.IsZero() {
		h.field([]byte("deadline"))
		h.field([]byte(r.Deadline.UTC().Format(time.RFC3339Nano)))
	} else {
		wait := r.MaxWait
		if wait == 0 {
			wait = pool.DefaultMaxWait
		}
		h.field([]byte("maxWait"))
		h.field([]byte(wait.String()))
	}
	run := r.RunTimeout
	if run == 0 {
		run = pool.RunTimeout
	}
	h.field([]byte(run.String()))
	return bodyHashVersion + h.sum()
}

// legacyBodyHash is the hash of a request's raw fields that keys stored
// before bodyHash hold.
func (r *SubmitRequest) legacyBodyHash() string {
	h := newFieldHash()
	h.field([]byte(r.Pool))
	h.field([]byte(r.Recipient))
	h.field(r.Payload)
	h.field([]byte(r.MaxWait.String()))
	if !r.Deadline.IsZero() {
		h.field([]byte(r.Deadline.UTC().Format(time.RFC3339Nano)))
	} else {
		h.field(nil)
	}
	h.field([]byte(r.RunTimeout.String()))
	return h.sum()
}

// sameBody reports whether r, whose bodyHash is hash, has the body of the
// submission whose stored hash is stored.
func (r *SubmitRequest) sameBody(stored, hash string) bool {
	if strings.HasPrefix(stored, bodyHashVersion) {
		return stored == hash
	}
	return stored == r.legacyBodyHash()
}

// fieldHash hashes a sequence of length-prefixed fields, so that moving
// bytes from one field to the next changes the hash.
type fieldHash struct {
	h hash.Hash
	n [8]byte
}

func newFieldHash() *fieldHash { return &fieldHash{h: sha256.New()} }

func (f *fieldHash) field(b []byte) {
	binary.BigEndian.PutUint64(f.n[:], uint64(len(b)))
	_, _ = f.h.Write(f.n[:])
	_, _ = f.h.Write(b)
}

func (f *fieldHash) sum() string { return hex.EncodeToString(f.h.Sum(nil)[:16]) }

// canonicalPayload is the canonical form of a payload (see above); an
// absent payload is empty. A payload that is not valid JSON, which
// validate refuses, is taken as it is.
func canonicalPayload(p json.RawMessage) []byte {
	if len(p) == 0 {
		return nil
	}
	var out bytes.Buffer
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := canonicalValue(dec, &out); err != nil {
		return p
	}
	if bytes.Equal(out.Bytes(), []byte("null")) {
		return nil
	}
	return out.Bytes()
}

var errNotJSON = errors.New("core: not a JSON value")

// canonicalValue writes the canonical form of the next JSON value of dec.
func canonicalValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			type member struct {
				name  string
				value []byte
			}
			var ms []member
			for dec.More() {
				nt, err := dec.Token()
				if err != nil {
					return err
				}
				name, ok := nt.(string)
				if !ok {
					return errNotJSON
				}
				var vb bytes.Buffer
				if err := canonicalValue(dec, &vb); err != nil {
					return err
				}
				ms = append(ms, member{name, vb.Bytes()})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return err
			}
			slices.SortStableFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
			out.WriteByte('{')
			for i, m := range ms {
				if i > 0 {
					out.WriteByte(',')
				}
				writeJSONString(out, m.name)
				out.WriteByte(':')
				out.Write(m.value)
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := canonicalValue(dec, out); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			out.WriteByte(']')
		default:
			return errNotJSON
		}
	case string:
		writeJSONString(out, v)
	case json.Number:
		out.WriteString(v.String())
	case bool:
		if v {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case nil:
		out.WriteString("null")
	default:
		return errNotJSON
	}
	return nil
}

// writeJSONString writes s as encoding/json does.
func writeJSONString(out *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	out.Write(b)
}
