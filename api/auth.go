package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// authRoutes are users, tokens, workspace members, the audit log and the UI's sessions.
func (s *Server) authRoutes() []Route {
	return []Route{
		{Pattern: "POST /api/v1/login", Public: true, Policy: PolicyPublic, handler: s.login},
		{Pattern: "POST /api/v1/logout", Policy: PolicyUser, handler: s.logout},

		{Pattern: "GET /api/v1/users", Policy: PolicyAdmin, handler: s.listUsers},
		{Pattern: "POST /api/v1/users", Policy: PolicyAdmin, handler: s.createUser},
		{Pattern: "POST /api/v1/users/{user}/disable", Policy: PolicyAdmin, handler: s.disableUser},

		{Pattern: "GET /api/v1/tokens", Policy: PolicyUser, handler: s.listTokens},
		{Pattern: "POST /api/v1/tokens", Policy: PolicyUser, handler: s.createToken},
		{Pattern: "DELETE /api/v1/tokens/{token}", Policy: PolicyUser, handler: s.revokeToken},

		{Pattern: "GET /api/v1/audit", Policy: PolicyAdmin, handler: s.listServerAudit},
		{Pattern: "GET " + ws + "/audit", Policy: PolicyOwner, handler: s.listAudit},

		{Pattern: "GET " + ws + "/members", Policy: PolicyMember, handler: s.listMembers},
		{Pattern: "PUT " + ws + "/members/{user}", Policy: PolicyOwner, handler: s.shareWorkspace},
		{Pattern: "DELETE " + ws + "/members/{user}", Policy: PolicyOwner, handler: s.unshareWorkspace},
	}
}

// auditRecorder stores audit entries; *service.Service implements it.
type auditRecorder interface {
	RecordAudit(ctx context.Context, e *atelier.AuditEntry)
	RecordAudits(ctx context.Context, entries []*atelier.AuditEntry)
}

// sessionService opens and closes the UI's sessions; *service.Service implements it.
type sessionService interface {
	Login(ctx context.Context, user, password, remote string) (*atelier.Token, error)
	Logout(ctx context.Context) error
}

// Names of a UI session (see edge.Authenticator).
const (
	SessionCookie = edge.SessionCookie
	CSRFHeader    = edge.CSRFHeader
)

// CookieSecure says when the session cookie carries the Secure attribute, which keeps a browser
// from sending it over plain http.
type CookieSecure string

const (
	// CookieSecureAuto marks it Secure when the request came over TLS, or through a proxy that
	// says it did (X-Forwarded-Proto: https, or Forwarded: proto=https). A client that fakes
	// the header only makes its own cookie stricter.
	CookieSecureAuto   CookieSecure = "auto"
	CookieSecureAlways CookieSecure = "always"
	// CookieSecureNever is for plain-http deployments off localhost, where a browser drops a
	// Secure cookie (on localhost browsers keep it anyway).
	CookieSecureNever CookieSecure = "never"
)

// ParseCookieSecure reads a --cookie-secure value.
func ParseCookieSecure(s string) (CookieSecure, error) {
	switch m := CookieSecure(strings.ToLower(strings.TrimSpace(s))); m {
	case CookieSecureAuto, CookieSecureAlways, CookieSecureNever:
		return m, nil
	}
	return "", atelier.Errorf(atelier.EINVALID, "invalid cookie-secure mode %q: use auto, always or never", s)
}

// secureCookie reports whether the session cookie of a response to r is Secure.
func (s *Server) secureCookie(r *http.Request) bool {
	switch s.CookieSecure {
	case CookieSecureAlways:
		return true
	case CookieSecureNever:
		return false
	}
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(proto), "https") {
		return true
	}
	// Forwarded: for=...;proto=https, the first hop's element (RFC 7239).
	first, _, _ := strings.Cut(r.Header.Get("Forwarded"), ",")
	for _, pair := range strings.Split(first, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && strings.EqualFold(k, "proto") {
			return strings.EqualFold(strings.Trim(v, `"`), "https")
		}
	}
	return false
}

// SecureCookie reports whether the session cookie of a response to r is Secure; the studio
// (ui/) sets the same cookie by the same rule.
func (s *Server) SecureCookie(r *http.Request) bool { return s.secureCookie(r) }

// fileAudit is the audit entry of one file of a batch upload, as the PUT of that file would
// be recorded; nil when the server keeps no audit log.
func (s *Server) fileAudit(r *http.Request, path string, status int) *atelier.AuditEntry {
	p := atelier.PrincipalFromContext(r.Context())
	if s.audit == nil || p == nil {
		return nil
	}
	return &atelier.AuditEntry{Workspace: r.PathValue("workspace"), User: p.Name, Kind: p.Kind,
		TokenID: p.TokenID, Method: http.MethodPut, Path: datastorePath(r.PathValue("workspace"), r.PathValue("datastore"), "files", escapePath(path)),
		Status: status, Remote: edge.RemoteHost(r)}
}

// LoginRequest is the body of POST /login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginResponse answers a login; the session itself travels only in its HttpOnly cookie.
type LoginResponse struct {
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
	CSRFToken string    `json:"csrf_token"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if s.sessions == nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "this server does not open sessions")
	}
	// Logins are audited, failed ones too; a session is stored with its entry.
	remote := edge.RemoteHost(r)
	d := s.door()
	ctx, finish := d.BeginAudit(r.Context(), atelier.AuditEntry{User: req.User, Kind: atelier.PrincipalUser,
		Method: r.Method, Path: r.URL.Path, Remote: remote})
	t, err := s.sessions.Login(ctx, req.User, req.Password, remote)
	finish(edge.StatusOf(statusOf, err))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: t.Secret, Path: "/", Expires: *t.ExpiresAt,
		Secure: s.secureCookie(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return writeJSON(w, http.StatusOK, LoginResponse{User: t.Owner, ExpiresAt: *t.ExpiresAt, CSRFToken: edge.CSRFToken(t.Secret)})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if s.sessions == nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "this server does not open sessions")
	}
	if err := s.sessions.Logout(r.Context()); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: s.secureCookie(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// UserCreate is the body of POST /users.
type UserCreate struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Admin    bool   `json:"admin,omitempty"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req UserCreate
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	u := &atelier.User{Name: req.Name, Admin: req.Admin}
	if err := s.svc.CreateUser(r.Context(), u, req.Password); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, u)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListUsers(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"users": list})
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DisableUser(r.Context(), r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// TokenCreate is the body of POST /tokens.
type TokenCreate struct {
	Name      string     `json:"name,omitempty"`
	User      string     `json:"user,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req TokenCreate
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	t, err := s.svc.CreateToken(r.Context(), &atelier.Token{Name: req.Name, Owner: req.User, ExpiresAt: req.ExpiresAt})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListTokens(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.RevokeToken(r.Context(), r.PathValue("token")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MemberPut is the body of PUT /members/{user}.
type MemberPut struct {
	Role atelier.Role `json:"role"`
}

func (s *Server) shareWorkspace(w http.ResponseWriter, r *http.Request) error {
	var req MemberPut
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	m, err := s.svc.ShareWorkspace(r.Context(), r.PathValue("workspace"), r.PathValue("user"), req.Role)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListMembers(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"members": list})
}

func (s *Server) unshareWorkspace(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.UnshareWorkspace(r.Context(), r.PathValue("workspace"), r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func auditFilter(r *http.Request) (atelier.AuditFilter, error) {
	f := atelier.AuditFilter{User: r.URL.Query().Get("user")}
	if v, err := queryTyped(r, "since", "a time"); err != nil {
		return f, err
	} else if v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, atelier.Errorf(atelier.EINVALID, "since=%q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", v)
		}
		f.Since = &t
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return f, err
	}
	if limit != nil {
		if *limit < 0 || *limit > 10000 {
			return f, atelier.Errorf(atelier.EINVALID, "limit=%d is out of range (0 to 10000)", *limit)
		}
		f.Limit = int(*limit)
	}
	return f, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	list, err := s.svc.ListAudit(r.Context(), r.PathValue("workspace"), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"entries": list})
}

func (s *Server) listServerAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	list, err := s.svc.ListAudit(r.Context(), "", f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"entries": list})
}
