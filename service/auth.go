package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// tokenPrefix marks atelier secrets so scanners (and people) recognise a leaked one.
const tokenPrefix = "atl_"

// HashToken returns the stored form of a token secret. Secrets have 256 random bits, so a
// plain sha256 is enough (no password stretching needed).
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Authenticate resolves a bearer token to its principal. A user's token works while the user
// is enabled; an administrator user's token gives an administrator principal.
func (s *Accounts) Authenticate(ctx context.Context, bearer string) (*atelier.Principal, error) {
	if bearer == "" {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required: send an 'Authorization: Bearer <token>' header")
	}
	hash := HashToken(bearer)
	t, err := s.findToken(ctx, hash)
	if err != nil {
		return nil, err
	}
	// The lookup is by hash; compare again in constant time so no code path depends on
	// a partial match.
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "invalid token")
	}
	now := s.now()
	if t.RevokedAt != nil {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "the token has been revoked")
	}
	if t.ExpiresAt != nil && now.After(*t.ExpiresAt) {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "the token expired at %s", t.ExpiresAt.Format("2006-01-02 15:04:05Z07:00"))
	}
	p := &atelier.Principal{Kind: t.Kind, Name: t.Owner, TokenID: t.ID, Workspace: t.Workspace, RunID: t.RunID,
		Runner: t.Kind == atelier.PrincipalRun && t.Name == atelier.RunnerTokenPrefix+t.RunID}
	if t.Kind == atelier.PrincipalUser {
		u, err := s.findUser(ctx, t.Owner)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "the token's user no longer exists")
		} else if err != nil {
			return nil, err
		}
		if u.DisabledAt != nil {
			return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "user %q is disabled", u.Name)
		}
		if u.Admin {
			p.Kind = atelier.PrincipalAdmin
		}
	}
	return p, nil
}

// CreateToken makes a token and returns it with its secret (shown once). A user makes tokens
// for themself; an administrator for anyone (t.Owner). A context without a principal is the
// server itself (the scheduler's run tokens, the first administrator token).
func (s *Accounts) CreateToken(ctx context.Context, t *atelier.Token) (*atelier.Token, error) {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return s.createToken(ctx, t)
	}
	if p.Kind == atelier.PrincipalRun {
		return nil, refuseRun("a run's token may not create tokens")
	}
	if t.Kind == atelier.PrincipalRun && p.Kind == atelier.PrincipalAdmin {
		// An administrator may mint a run's token (the REST API does not offer it).
		if t.Workspace == "" || t.RunID == "" {
			return nil, atelier.Errorf(atelier.EINVALID, "a run's token needs a workspace and a run")
		}
		return s.createToken(ctx, t)
	}
	if len(t.Name) > 128 {
		return nil, atelier.Errorf(atelier.EINVALID, "the token name is longer than 128 characters")
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(s.now()) {
		return nil, atelier.Errorf(atelier.EINVALID, "the expiry %s is in the past", t.ExpiresAt.Format(time.RFC3339))
	}
	if t.Owner == "" {
		t.Owner = p.Name
	}
	if t.Owner != p.Name && p.Kind != atelier.PrincipalAdmin {
		return nil, atelier.Errorf(atelier.EFORBIDDEN, "only a server administrator may create tokens for other users")
	}
	t.Workspace, t.RunID, t.Kind = "", "", atelier.PrincipalUser
	u, err := s.store.FindUser(ctx, t.Owner)
	switch {
	case atelier.ErrorCode(err) == atelier.ENOTFOUND && p.Kind == atelier.PrincipalAdmin && t.Owner == p.Name:
		// The built-in administrator (from <data>/admin-token) is no user: its tokens are admin tokens.
		t.Kind = atelier.PrincipalAdmin
	case err != nil:
		return nil, err
	case u.DisabledAt != nil:
		return nil, atelier.Errorf(atelier.ECONFLICT, "user %q is disabled", u.Name)
	}
	return s.createToken(ctx, t)
}

func (s *Accounts) createToken(ctx context.Context, t *atelier.Token) (*atelier.Token, error) {
	secret := newSecret()
	t.ID = "tok_" + HashToken(secret)[:16]
	t.Hash = HashToken(secret)
	t.CreatedAt = s.now().UTC()
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	t.Secret = secret
	return t, nil
}

// ListTokens lists tokens without their secrets: the caller's own, or (administrators) those
// of owner, or every token when owner is "".
func (s *Accounts) ListTokens(ctx context.Context, owner string) ([]*atelier.Token, error) {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return nil, refuseRun("a run's token may not list tokens")
	}
	if p.Kind != atelier.PrincipalAdmin {
		if owner != "" && owner != p.Name {
			return nil, atelier.Errorf(atelier.EFORBIDDEN, "only a server administrator may list other users' tokens")
		}
		owner = p.Name
	}
	all, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	list := []*atelier.Token{}
	for _, t := range all {
		if owner == "" || (t.Owner == owner && t.Kind != atelier.PrincipalRun) {
			t.Hash = ""
			list = append(list, t)
		}
	}
	return list, nil
}

// EnsureAdminToken creates the first administrator token on a fresh data directory and writes
// it to path (mode 0600). It returns the secret when it made one, "" when tokens already exist.
func (s *Accounts) EnsureAdminToken(ctx context.Context, path string) (string, error) {
	tokens, err := s.store.ListTokens(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tokens {
		if t.Kind == atelier.PrincipalAdmin && t.RevokedAt == nil {
			return "", nil
		}
	}
	t, err := s.createToken(ctx, &atelier.Token{Name: "admin", Kind: atelier.PrincipalAdmin, Owner: "admin"})
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(t.Secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("writing the admin token: %w", err)
	}
	return t.Secret, nil
}

// ReadTokenFile reads a token written by EnsureAdminToken.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// RevokeToken revokes a token: users their own, administrators any. Another user's token is
// not found, so its id is not confirmed.
func (s *Accounts) RevokeToken(ctx context.Context, id string) error {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return refuseRun("a run's token may not revoke tokens")
	}
	if p.Kind != atelier.PrincipalAdmin {
		mine, err := s.ListTokens(ctx, "")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(mine, func(t *atelier.Token) bool { return t.ID == id }) {
			return atelier.Errorf(atelier.ENOTFOUND, "token %q not found or already revoked", id)
		}
	}
	if err := s.store.RevokeToken(ctx, id); err != nil {
		return err
	}
	s.forgetToken(id)
	return nil
}

// revokeToken revokes a token without authorization (a run's token when the run ends).
func (s *Accounts) revokeToken(ctx context.Context, id string) {
	if err := s.store.RevokeToken(ctx, id); err != nil {
		s.log.Error("revoking a run token", "token", id, "err", err)
	}
	s.forgetToken(id)
}
