package lambdaapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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

// ClaimAuth is an httpapi.Authenticator that takes the tenant from the JWT
// authorizer's claims of the API Gateway event (requestContext.authorizer.
// jwt.claims), which API Gateway fills only from a verified token. A request
// without the claim, or with an empty one, is refused.
type ClaimAuth struct {
	// Claim names the tenant claim. Default: DefaultTenantClaim.
	Claim string
}

var _ httpapi.Authenticator = ClaimAuth{}

// Tenant returns the tenant claim of the request's event.
func (a ClaimAuth) Tenant(r *http.Request) (string, error) {
	claim := a.Claim
	if claim == "" {
		claim = DefaultTenantClaim
	}
	rc, ok := RequestContext(r.Context())
	if !ok || rc.Authorizer == nil || rc.Authorizer.JWT == nil {
		return "", ErrNoTenantClaim
	}
	tenant := rc.Authorizer.JWT.Claims[claim]
	if tenant == "" {
		return "", fmt.Errorf("%w: claim %q is missing or empty", ErrNoTenantClaim, claim)
	}
	return tenant, nil
}
