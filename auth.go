package atelier

import (
	"context"
	"strings"
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
	// Runner marks the token of a run's job runner (named RunnerTokenPrefix + the run's id):
	// its word ends the run, where the script's own token cannot end it while it runs.
	Runner bool `json:"runner,omitempty"`
}

// RunnerTokenPrefix starts the name of the run token a job runner gets (see Principal.Runner).
const RunnerTokenPrefix = "job "

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

// Role is what a user may do in one workspace. Roles are ordered: each includes the ones below.
type Role string

const (
	RoleReader      Role = "Reader"      // reads everything in the workspace, changes nothing
	RoleContributor Role = "Contributor" // creates and changes runs, models, datastores, compute...
	RoleOwner       Role = "Owner"       // everything, including members and deleting the workspace
)

var roleRank = map[Role]int{RoleReader: 1, RoleContributor: 2, RoleOwner: 3}

// ParseRole reads a role name, in any letter case.
func ParseRole(s string) (Role, error) {
	for r := range roleRank {
		if strings.EqualFold(s, string(r)) {
			return r, nil
		}
	}
	return "", Errorf(EINVALID, "unknown role %q: use Reader, Contributor or Owner", s)
}

// AtLeast reports whether r includes min.
func (r Role) AtLeast(min Role) bool { return roleRank[r] >= roleRank[min] && roleRank[r] > 0 }

// User is a person who signs in. The server administrator manages users; a user sees only the
// workspaces they are a member of.
type User struct {
	Name       string     `json:"name"`
	Admin      bool       `json:"admin"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at"`
	// PasswordHash is a bcrypt hash; stores keep it, APIs never return it.
	PasswordHash string `json:"-"`
}

// Reserved user names: the built-in administrator's tokens and the server's own records use them.
var reservedUserNames = map[string]bool{"admin": true, "system": true, "root": true}

// Validate returns an EINVALID error when the user cannot be stored.
func (u *User) Validate() error {
	if err := ValidateName("user", u.Name); err != nil {
		return err
	}
	if reservedUserNames[strings.ToLower(u.Name)] {
		return Errorf(EINVALID, "the user name %q is reserved", u.Name)
	}
	return nil
}

// Member is a user's role in a workspace.
type Member struct {
	Workspace string    `json:"workspace"`
	User      string    `json:"user"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// UserService manages users (server administrators only).
type UserService interface {
	// CreateUser stores u with the hash of password.
	CreateUser(ctx context.Context, u *User, password string) error
	ListUsers(ctx context.Context) ([]*User, error)
	// DisableUser stops the user's tokens and sessions from working; nothing is deleted.
	DisableUser(ctx context.Context, name string) error
}

// TokenService manages API tokens: users their own, administrators everyone's.
type TokenService interface {
	// CreateToken returns the token with its secret, shown only this once.
	CreateToken(ctx context.Context, t *Token) (*Token, error)
	// ListTokens lists tokens without secrets; owner "" means the caller's (every one for an
	// administrator).
	ListTokens(ctx context.Context, owner string) ([]*Token, error)
	RevokeToken(ctx context.Context, id string) error
}

// MemberService manages who may use a workspace.
type MemberService interface {
	// ShareWorkspace gives user the role in workspace (Owners and administrators).
	ShareWorkspace(ctx context.Context, workspace, user string, role Role) (*Member, error)
	ListMembers(ctx context.Context, workspace string) ([]*Member, error)
	UnshareWorkspace(ctx context.Context, workspace, user string) error
}

// AuditEntry records one write: who, when, what and from where.
type AuditEntry struct {
	ID        int64         `json:"id"`
	Time      time.Time     `json:"time"`
	Workspace string        `json:"workspace,omitempty"`
	User      string        `json:"user"`
	Kind      PrincipalKind `json:"kind"`
	TokenID   string        `json:"token_id,omitempty"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Status    int           `json:"status"`
	Remote    string        `json:"remote"`
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Since *time.Time
	User  string
	Limit int
}

// AuditService reads the audit log: a workspace's for its Owners, the whole server's ("") for
// administrators.
type AuditService interface {
	ListAudit(ctx context.Context, workspace string, f AuditFilter) ([]*AuditEntry, error)
}
