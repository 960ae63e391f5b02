package core

import (
	"crypto/rand"
	"encoding/hex"
)

// newID returns a random 96-bit task id.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// newToken returns an unguessable 128-bit token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
