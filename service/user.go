package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 8

// CreateUser creates a user with a bcrypt hash of password (administrators only).
func (s *Accounts) CreateUser(ctx context.Context, u *atelier.User, password string) error {
	if err := s.authorizeAdmin(ctx); err != nil {
		return err
	}
	if err := u.Validate(); err != nil {
		return err
	}
	if len(password) < MinPasswordLength {
		return atelier.Errorf(atelier.EINVALID, "the password is shorter than %d characters", MinPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.PasswordCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return atelier.Errorf(atelier.EINVALID, "the password is longer than 72 bytes")
	} else if err != nil {
		return err
	}
	u.PasswordHash = string(hash)
	err = s.store.CreateUser(ctx, u)
	u.PasswordHash = ""
	return err
}

// ListUsers lists users (administrators only), without password hashes.
func (s *Accounts) ListUsers(ctx context.Context) ([]*atelier.User, error) {
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	list, err := s.store.ListUsers(ctx)
	for _, u := range list {
		u.PasswordHash = ""
	}
	return list, err
}

// DisableUser disables a user (administrators only): their tokens and sessions stop working
// at once on this server, within the token cache's lifetime on others.
func (s *Accounts) DisableUser(ctx context.Context, name string) error {
	if err := s.authorizeAdmin(ctx); err != nil {
		return err
	}
	if err := s.store.DisableUser(ctx, name); err != nil {
		return err
	}
	s.users.m.Delete(name)
	return nil
}

// ShareWorkspace gives a user a role in a workspace (its Owners and administrators).
func (s *Accounts) ShareWorkspace(ctx context.Context, workspace, user string, role atelier.Role) (*atelier.Member, error) {
	if err := s.authorizeOwner(ctx, workspace); err != nil {
		return nil, err
	}
	role, err := atelier.ParseRole(string(role))
	if err != nil {
		return nil, err
	}
	if role != atelier.RoleOwner {
		if err := s.keepAnOwner(ctx, workspace, user); err != nil {
			return nil, err
		}
	}
	m := &atelier.Member{Workspace: workspace, User: user, Role: role}
	if err := s.store.PutMember(ctx, m); err != nil {
		return nil, err
	}
	s.forgetRoles()
	return m, nil
}

// keepAnOwner refuses to take the last Owner's role away (a user-created workspace would be
// left to the administrators).
func (s *Accounts) keepAnOwner(ctx context.Context, workspace, user string) error {
	members, err := s.store.ListMembers(ctx, workspace)
	if err != nil {
		return err
	}
	owners, isOwner := 0, false
	for _, m := range members {
		if m.Role == atelier.RoleOwner {
			owners++
			isOwner = isOwner || m.User == user
		}
	}
	if isOwner && owners == 1 {
		return atelier.Errorf(atelier.ECONFLICT, "%s is the last Owner of workspace %q: make another member Owner first", user, workspace)
	}
	return nil
}

// ListMembers lists a workspace's members (anyone who may read the workspace).
func (s *Accounts) ListMembers(ctx context.Context, workspace string) ([]*atelier.Member, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListMembers(ctx, workspace)
}

// UnshareWorkspace removes a user from a workspace (its Owners and administrators).
func (s *Accounts) UnshareWorkspace(ctx context.Context, workspace, user string) error {
	if err := s.authorizeOwner(ctx, workspace); err != nil {
		return err
	}
	if err := s.keepAnOwner(ctx, workspace, user); err != nil {
		return err
	}
	if err := s.store.DeleteMember(ctx, workspace, user); err != nil {
		return err
	}
	s.forgetRoles()
	return nil
}

// RecordAudit stores an audit entry. It is the transports' hook (they know the status and the
// remote address), not an API: it does no authorization.
func (s *Accounts) RecordAudit(ctx context.Context, e *atelier.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	if err := s.store.AppendAudit(context.WithoutCancel(ctx), e); err != nil && atelier.ErrorCode(err) != atelier.ENOSPACE {
		// A full disk refused the request too: it is logged once an episode, at the edge.
		s.log.Error("recording an audit entry", "method", e.Method, "path", e.Path, "err", err)
	}
}

// RecordAudits stores new audit entries together (the files of a batch), as RecordAudit does.
func (s *Accounts) RecordAudits(ctx context.Context, entries []*atelier.AuditEntry) {
	if len(entries) == 0 {
		return
	}
	now := s.now().UTC()
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = now
		}
	}
	if err := s.store.AppendAudits(context.WithoutCancel(ctx), entries); err != nil && atelier.ErrorCode(err) != atelier.ENOSPACE {
		s.log.Error("recording audit entries", "entries", len(entries), "first", entries[0].Path, "err", err)
	}
}

// ListAudit reads the audit log: a workspace's for its Owners, the whole server's (workspace
// "") for administrators.
func (s *Accounts) ListAudit(ctx context.Context, workspace string, f atelier.AuditFilter) ([]*atelier.AuditEntry, error) {
	if workspace == "" {
		if err := s.authorizeAdmin(ctx); err != nil {
			return nil, err
		}
	} else if err := s.authorizeOwner(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListAudit(ctx, workspace, f)
}

// Login throttling: after loginFreeFailures failed logins for one user or from one address,
// each further attempt must wait, doubling up to loginMaxDelay; a success clears the user's
// record.
const (
	loginFreeFailures = 5
	loginBaseDelay    = time.Second
	loginMaxDelay     = 15 * time.Minute
	loginForget       = time.Hour
)

type throttle struct {
	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	count int
	last  time.Time
	until time.Time
}

func newThrottle() *throttle { return &throttle{keys: map[string]*failures{}} }

// wait returns how long the key must still wait before its next attempt.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.keys[key]
	if f == nil || now.After(f.until) {
		return 0
	}
	return f.until.Sub(now)
}

func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.keys) > 100000 {
		for k, f := range t.keys {
			if now.Sub(f.last) > loginForget {
				delete(t.keys, k)
			}
		}
	}
	f := t.keys[key]
	if f == nil || now.Sub(f.last) > loginForget {
		f = &failures{}
		t.keys[key] = f
	}
	f.count++
	f.last = now
	if n := f.count - loginFreeFailures; n >= 0 {
		d := loginBaseDelay << min(n, 20)
		f.until = now.Add(min(d, loginMaxDelay))
	}
}

func (t *throttle) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// SessionTTL is how long a login session lasts.
const SessionTTL = 12 * time.Hour

// Login checks a user's password and opens a session: a token of the user that expires after
// SessionTTL, for the UI's cookie. remote is the caller's address, for throttling. Every
// failure says the same thing, so it does not tell which user names exist.
func (s *Accounts) Login(ctx context.Context, user, password, remote string) (*atelier.Token, error) {
	now := s.now()
	for _, key := range []string{"user:" + user, "addr:" + remote} {
		if d := s.logins.wait(key, now); d > 0 {
			return nil, atelier.Errorf(atelier.ETOOMANY, "too many failed logins: try again in %s", d.Round(time.Second))
		}
	}
	u, err := s.store.FindUser(ctx, user)
	if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return nil, err
	}
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(newSecret()), s.PasswordCost)
	})
	hash := s.dummyHash
	if u != nil {
		hash = []byte(u.PasswordHash)
	}
	// Compare even for an unknown user, so the answer's timing does not tell.
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if u == nil || !match || u.DisabledAt != nil {
		s.logins.fail("user:"+user, now)
		s.logins.fail("addr:"+remote, now)
		s.log.Warn("failed login", "user", user, "remote", remote)
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "wrong user name or password")
	}
	s.logins.clear("user:" + user)
	expires := now.Add(SessionTTL).UTC()
	return s.createToken(ctx, &atelier.Token{Name: "session", Kind: atelier.PrincipalUser, Owner: u.Name, ExpiresAt: &expires})
}

// Logout ends the caller's session (or revokes the token it used).
func (s *Accounts) Logout(ctx context.Context) error {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return refuseRun("a run's token may not log out")
	}
	if err := s.store.RevokeToken(ctx, p.TokenID); err != nil {
		return err
	}
	s.forgetToken(p.TokenID)
	return nil
}
