package lambdaapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parkinglot/parkinglot/internal/httpapi"
)

// DefaultTenantClaim is the JWT claim that names the tenant unless
// Config.TenantClaim says otherwise.
const DefaultTenantClaim = "tenant"

// ErrNoTenantClaim: the request carries no authorizer claims, or none naming
// the tenant.
var ErrNoTenantClaim = errors.New("no tenant claim in the request's authorizer context")

type requestContextKey struct{}

// withRequestContext returns ctx carrying the API Gateway request context of
// the event being served.
func withRequestContext(ctx context.Context, rc *events.APIGatewayV2HTTPRequestContext) context.Context {
	return context.WithValue(ctx, requestContextKey{}, rc)
}

// RequestContext returns the API Gateway request context of the event that
// ctx (a request's context inside a Handler) serves.
func RequestContext(ctx context.Context) (*events.APIGatewayV2HTTPRequestContext, bool) {
	rc, ok := ctx.Value(requestContextKey{}).(*events.APIGatewayV2HTTPRequestContext)
	return rc, ok && rc != nil
}

// The JWT claims of a worker's token: role "worker", the pools it works in,
// and its name (the token's subject), which the audit trail records on
// every claim.
const (
	RoleClaim    = "role"
	PoolsClaim   = "pools"
	SubjectClaim = "sub"
	// RoleWorker is the role claim's value for a worker.
	RoleWorker = "worker"
)

// ClaimAuth is an httpapi.Authenticator that takes the caller's identity
// from the JWT authorizer's claims of the API Gateway event
// (requestContext.authorizer.jwt.claims), which API Gateway fills only from
// a verified token:
//
//   - a tenant: the tenant claim (Claim), and no role claim or role
//     "tenant";
//   - a worker: role "worker", its pools in the pools claim (a JSON-like
//     list, "[a b]" as API Gateway flattens an array claim, or "a,b"), and
//     its name in the sub claim.
//
// A request without the claims its role needs, or with empty ones, is
// refused.
type ClaimAuth struct {
	// Claim names the tenant claim. Default: DefaultTenantClaim.
	Claim string
}

var _ httpapi.Authenticator = ClaimAuth{}

// Identify returns the identity of the request's event.
func (a ClaimAuth) Identify(r *http.Request) (httpapi.Identity, error) {
	claim := a.Claim
	if claim == "" {
		claim = DefaultTenantClaim
	}
	rc, ok := RequestContext(r.Context())
	if !ok || rc.Authorizer == nil || rc.Authorizer.JWT == nil {
		return httpapi.Identity{}, ErrNoTenantClaim
	}
	claims := rc.Authorizer.JWT.Claims
	switch role := claims[RoleClaim]; role {
	case "", "tenant":
	case RoleWorker:
		name, pools := claims[SubjectClaim], claimList(claims[PoolsClaim])
		if name == "" || len(pools) == 0 {
			return httpapi.Identity{}, fmt.Errorf("%w: a worker's token needs the %q and %q claims", ErrNoTenantClaim, SubjectClaim, PoolsClaim)
		}
		return httpapi.WorkerIdentity(name, pools...), nil
	default:
		return httpapi.Identity{}, fmt.Errorf("%w: claim %q must be \"tenant\" or \"worker\", got %q", ErrNoTenantClaim, RoleClaim, role)
	}
	tenant := claims[claim]
	if tenant == "" {
		return httpapi.Identity{}, fmt.Errorf("%w: claim %q is missing or empty", ErrNoTenantClaim, claim)
	}
	return httpapi.TenantIdentity(tenant), nil
}

// claimList splits a list claim: "[a b]" (an array claim as API Gateway
// passes it), "a,b" or "a b".
func claimList(v string) []string {
	v = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "["), "]")
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '"' })
}
