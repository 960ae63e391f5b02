package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
)

// anyClient is the Authenticator of auth.anonymous: every client, from any
// address, is tenant "default".
type anyClient struct{}

var _ httpapi.Authenticator = anyClient{}

func (anyClient) Identify(*http.Request) (httpapi.Identity, error) {
	return httpapi.TenantIdentity(httpapi.DefaultTenant), nil
}

// identities maps the configured bearer tokens to who they are: a tenant,
// or a worker of some pools.
func identities(a config.Auth) map[string]httpapi.Identity {
	m := make(map[string]httpapi.Identity, len(a.Tokens))
	for _, t := range a.Tokens {
		if t.IsWorker() {
			m[t.Token] = httpapi.WorkerIdentity(t.Name, t.Pools...)
		} else {
			m[t.Token] = httpapi.TenantIdentity(t.Tenant)
		}
	}
	return m
}

// bearerToken returns the token of r's "Authorization: Bearer <token>"
// header, read as the API reads it.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// requireToken answers 401 to a request without the bearer token, and
// serves the others with next.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(bearerToken(r)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parkinglot-metrics"`)
			http.Error(w, "unauthorized: /metrics needs the bearer token of metrics.token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseUnknownTokens answers 401, without reading its body, a request
// that has a body but no configured bearer token, as API Gateway's JWT
// authorizer does before the function runs. It stands before the lambda
// runtime's gateway, which reads a whole body (up to 10 MiB) before the
// function authenticates the request. A request without a body goes on to
// the gateway, and to the function's own answer.
func refuseUnknownTokens(tokens map[string]string, next http.Handler) http.Handler {
	known := make(map[[sha256.Size]byte]bool, len(tokens))
	for t := range tokens {
		known[sha256.Sum256([]byte(t))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		token := bearerToken(r)
		if token != "" && known[sha256.Sum256([]byte(token))] {
			next.ServeHTTP(w, r)
			return
		}
		msg := httpapi.ErrBadToken.Error()
		if token == "" {
			msg = httpapi.ErrNoToken.Error()
		}
		w.Header().Set("Connection", "close") // rather than read the body
		w.Header().Set("WWW-Authenticate", `Bearer realm="parkinglot"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(api.Error{Error: api.ErrorDetail{Code: api.CodeUnauthorized, Message: msg}})
	})
}
