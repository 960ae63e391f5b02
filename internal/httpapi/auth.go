package httpapi

import (
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"strings"
)

// Authenticator establishes the tenant of a request, never from its body.
// An error makes the request 401 unauthorized.
type Authenticator interface {
	Tenant(r *http.Request) (string, error)
}

// DefaultTenant is the tenant of every loopback client when no bearer tokens
// are configured.
const DefaultTenant = "default"

// Authentication failures.
var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("missing bearer token")
	// ErrBadToken: the bearer token is not known.
	ErrBadToken = errors.New("unknown bearer token")
	// ErrNotLoopback: without tokens, only loopback clients are accepted.
	ErrNotLoopback = errors.New("only loopback clients are accepted when no tokens are configured")
)

type tokenAuth struct {
	// byHash maps the SHA-256 of a token to its tenant, so that a lookup
	// takes the same time whichever bytes of a guess are right.
	byHash map[[sha256.Size]byte]string
}

// NewTokenAuth returns an Authenticator that maps bearer tokens
// ("Authorization: Bearer <token>") to tenants. With no tokens it accepts
// loopback clients only (judged by r.RemoteAddr), all as tenant "default",
// and refuses every other client.
func NewTokenAuth(tokens map[string]string) Authenticator {
	a := &tokenAuth{byHash: make(map[[sha256.Size]byte]string, len(tokens))}
	for token, tenant := range tokens {
		a.byHash[sha256.Sum256([]byte(token))] = tenant
	}
	return a
}

func (a *tokenAuth) Tenant(r *http.Request) (string, error) {
	if len(a.byHash) == 0 {
		if !isLoopback(r.RemoteAddr) {
			return "", ErrNotLoopback
		}
		return DefaultTenant, nil
	}
	token, ok := bearer(r)
	if !ok {
		return "", ErrNoToken
	}
	tenant, ok := a.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return "", ErrBadToken
	}
	return tenant, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
