package boltstore

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's meta page: a 16-byte page header, then magic, version, page size,
// flags, root bucket (root page, sequence), freelist page, high-water page,
// txid and the FNV-64a checksum of the fields before it.
const (
	boltMagic      = 0xED0CDAED
	boltPageHeader = 16
	boltMetaSize   = 64
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// precheck reads the file's two meta pages and checks that the file holds
// every page they refer to, before bbolt maps it: bbolt would fault on a
// truncated file instead of returning an error. A missing or empty file
// passes (bbolt creates it).
func precheck(file string) error {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	m0, ok0 := readMeta(f, 0)
	pageSize := int64(os.Getpagesize())
	if ok0 {
		pageSize = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, pageSize)
	var m boltMeta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return fmt.Errorf("boltstore: %s: %w: no valid meta page", file, ErrCorrupt)
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return fmt.Errorf("boltstore: %s: %w: file is %d bytes, its metadata says %d (truncated)", file, ErrCorrupt, size, need)
	}
	if m.root >= m.pgid || m.freelist >= m.pgid && m.freelist != ^uint64(0) {
		return fmt.Errorf("boltstore: %s: %w: meta page points past the end of the file", file, ErrCorrupt)
	}
	return nil
}

func readMeta(f *os.File, off int64) (boltMeta, bool) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil && err != io.EOF {
		return boltMeta{}, false
	}
	p := b[boltPageHeader:]
	le := binary.LittleEndian
	h := fnv.New64a()
	_, _ = h.Write(p[:56])
	if le.Uint32(p[0:]) != boltMagic || le.Uint64(p[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: le.Uint32(p[8:]), root: le.Uint64(p[16:]), freelist: le.Uint64(p[32:]), pgid: le.Uint64(p[40:]), txid: le.Uint64(p[48:])}
	if m.pageSize < 1024 || m.pageSize > 1<<20 {
		return boltMeta{}, false
	}
	return m, true
}
