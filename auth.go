package atelier

import (
	"context"
	"time"
)

// PrincipalKind says who is calling.
type PrincipalKind string

const (
	PrincipalAdmin PrincipalKind = "admin" // the server administrator
	PrincipalUser  PrincipalKind = "user"  // a user acting through a token or a session
	PrincipalRun   PrincipalKind = "run"   // a submitted run, limited to itself and its children
)

// Principal is the authenticated caller of a request. It travels in the context so that the
// service layer (not the transport) decides what the caller may do.
type Principal struct {
	Kind    PrincipalKind `json:"kind"`
	Name    string        `json:"name"`
	TokenID string        `json:"token_id"`
	// Workspace and RunID scope a run token.
	Workspace string `json:"workspace,omitempty"`
	RunID     string `json:"run_id,omitempty"`
}

type principalKey struct{}

// NewContextWithPrincipal returns ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the caller, or nil for an unauthenticated context.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// PrincipalName returns the caller's name for created_by fields.
func PrincipalName(ctx context.Context) string {
	if p := PrincipalFromContext(ctx); p != nil {
		return p.Name
	}
	return ""
}

// Token is an API token. Its secret is shown once at creation and stored only as a hash.
type Token struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Kind      PrincipalKind `json:"kind"`
	Owner     string        `json:"owner"`
	Workspace string        `json:"workspace,omitempty"`
	RunID     string        `json:"run_id,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt *time.Time    `json:"expires_at"`
	RevokedAt *time.Time    `json:"revoked_at"`
	// Secret is set only in the response that creates the token.
	Secret string `json:"token,omitempty"`
	// Hash is the sha256 of the secret; stores keep it, APIs never return it.
	Hash string `json:"-"`
}

// AuthService turns a bearer token into a principal.
type AuthService interface {
	Authenticate(ctx context.Context, bearer string) (*Principal, error)
}
