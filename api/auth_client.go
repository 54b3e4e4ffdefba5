package api

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/atelier-ml/atelier"
)

// CreateUser creates a user (administrators only).
func (c *Client) CreateUser(ctx context.Context, u *atelier.User, password string) error {
	return c.call(ctx, "POST", "/api/v1/users", nil, UserCreate{Name: u.Name, Password: password, Admin: u.Admin}, u)
}

// ListUsers lists users (administrators only).
func (c *Client) ListUsers(ctx context.Context) ([]*atelier.User, error) {
	var out struct{ Users []*atelier.User }
	err := c.call(ctx, "GET", "/api/v1/users", nil, nil, &out)
	return out.Users, err
}

// DisableUser disables a user (administrators only).
func (c *Client) DisableUser(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/api/v1/users/"+url.PathEscape(name)+"/disable", nil, nil, nil)
}

// CreateToken creates a token for the caller (or, for an administrator, for t.Owner).
func (c *Client) CreateToken(ctx context.Context, t *atelier.Token) (*atelier.Token, error) {
	var out atelier.Token
	err := c.call(ctx, "POST", "/api/v1/tokens", nil, TokenCreate{Name: t.Name, User: t.Owner, ExpiresAt: t.ExpiresAt}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens lists the caller's tokens (an administrator's: owner's, or everyone's).
func (c *Client) ListTokens(ctx context.Context, owner string) ([]*atelier.Token, error) {
	var q url.Values
	if owner != "" {
		q = url.Values{"user": {owner}}
	}
	var out struct{ Tokens []*atelier.Token }
	err := c.call(ctx, "GET", "/api/v1/tokens", q, nil, &out)
	return out.Tokens, err
}

// RevokeToken revokes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// ShareWorkspace gives a user a role in a workspace.
func (c *Client) ShareWorkspace(ctx context.Context, workspace, user string, role atelier.Role) (*atelier.Member, error) {
	var m atelier.Member
	if err := c.call(ctx, "PUT", wsPath(workspace, "members", url.PathEscape(user)), nil, MemberPut{Role: role}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListMembers lists a workspace's members.
func (c *Client) ListMembers(ctx context.Context, workspace string) ([]*atelier.Member, error) {
	var out struct{ Members []*atelier.Member }
	err := c.call(ctx, "GET", wsPath(workspace, "members"), nil, nil, &out)
	return out.Members, err
}

// UnshareWorkspace removes a user from a workspace.
func (c *Client) UnshareWorkspace(ctx context.Context, workspace, user string) error {
	return c.call(ctx, "DELETE", wsPath(workspace, "members", url.PathEscape(user)), nil, nil, nil)
}

// ListAudit reads a workspace's audit log ("" for the whole server's).
func (c *Client) ListAudit(ctx context.Context, workspace string, f atelier.AuditFilter) ([]*atelier.AuditEntry, error) {
	q := url.Values{}
	if f.User != "" {
		q.Set("user", f.User)
	}
	if f.Since != nil {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/api/v1/audit"
	if workspace != "" {
		path = wsPath(workspace, "audit")
	}
	var out struct{ Entries []*atelier.AuditEntry }
	err := c.call(ctx, "GET", path, q, nil, &out)
	return out.Entries, err
}
