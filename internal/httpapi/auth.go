package httpapi

import (
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Authenticator establishes who a request acts as, never from its body.
// An error makes the request 401 unauthorized.
type Authenticator interface {
	Identify(r *http.Request) (Identity, error)
}

// Identity is who a request acts as: a tenant (role tenant), or a worker
// (role worker) when Worker is set. A tenant submits and reads its own
// tasks, mailboxes and audit trail; a worker claims, heartbeats, completes
// and cancels the tasks of every tenant in its pools, and nothing else.
type Identity struct {
	Tenant string
	Worker *core.Worker
}

// TenantIdentity is the identity of tenant.
func TenantIdentity(tenant string) Identity { return Identity{Tenant: tenant} }

// WorkerIdentity is the identity of a worker named name, in pools.
func WorkerIdentity(name string, pools ...string) Identity {
	return Identity{Worker: &core.Worker{Name: name, Pools: pools}}
}

// valid reports whether id names a tenant or a worker.
func (id Identity) valid() bool {
	if id.Worker != nil {
		return id.Worker.Name != ""
	}
	return id.Tenant != ""
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
	// byHash maps the SHA-256 of a token to its identity, so that a lookup
	// takes the same time whichever bytes of a guess are right.
	byHash map[[sha256.Size]byte]Identity
}

// NewTokenAuth returns an Authenticator that maps bearer tokens
// ("Authorization: Bearer <token>") to tenants. With no tokens it accepts
// loopback clients only (judged by r.RemoteAddr), all as tenant "default",
// and refuses every other client.
func NewTokenAuth(tokens map[string]string) Authenticator {
	ids := make(map[string]Identity, len(tokens))
	for token, tenant := range tokens {
		ids[token] = TenantIdentity(tenant)
	}
	return NewIdentityAuth(ids)
}

// NewIdentityAuth is NewTokenAuth with tokens of tenants and of workers.
func NewIdentityAuth(tokens map[string]Identity) Authenticator {
	a := &tokenAuth{byHash: make(map[[sha256.Size]byte]Identity, len(tokens))}
	for token, id := range tokens {
		a.byHash[sha256.Sum256([]byte(token))] = id
	}
	return a
}

func (a *tokenAuth) Identify(r *http.Request) (Identity, error) {
	if len(a.byHash) == 0 {
		if !isLoopback(r.RemoteAddr) {
			return Identity{}, ErrNotLoopback
		}
		return TenantIdentity(DefaultTenant), nil
	}
	token, ok := bearer(r)
	if !ok {
		return Identity{}, ErrNoToken
	}
	id, ok := a.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Identity{}, ErrBadToken
	}
	return id, nil
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
