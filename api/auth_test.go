package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"golang.org/x/crypto/bcrypt"
)

func TestUsersTokensAndWorkspaces(t *testing.T) {
	s := MustStack(t)
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	for _, u := range []string{"ana", "bo"} {
		if err := s.Client.CreateUser(ctx, &atelier.User{Name: u}, "long enough"); err != nil {
			t.Fatal(err)
		}
	}
	MustCode(t, s.Client.CreateUser(ctx, &atelier.User{Name: "cy"}, "short"), atelier.EINVALID)
	MustCode(t, s.Client.CreateUser(ctx, &atelier.User{Name: "admin"}, "long enough"), atelier.EINVALID)
	MustCode(t, s.Client.CreateUser(ctx, &atelier.User{Name: "ana"}, "long enough"), atelier.ECONFLICT)

	tok, err := s.Client.CreateToken(ctx, &atelier.Token{Name: "laptop", Owner: "ana"})
	if err != nil || !strings.HasPrefix(tok.Secret, "atl_") || tok.Kind != atelier.PrincipalUser {
		t.Fatalf("CreateToken: %+v, %v", tok, err)
	}
	ana := api.NewClient(s.Server.URL, tok.Secret)
	// A user creates a workspace and owns it; nobody else sees it.
	if err := ana.CreateWorkspace(ctx, &atelier.Workspace{Name: "ana-ws"}); err != nil {
		t.Fatal(err)
	}
	list, err := ana.ListWorkspaces(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "ana-ws" {
		t.Fatalf("ana's workspaces: %v, %v", list, err)
	}
	boTok, err := s.Client.CreateToken(ctx, &atelier.Token{Owner: "bo"})
	if err != nil {
		t.Fatal(err)
	}
	bo := api.NewClient(s.Server.URL, boTok.Secret)
	_, err = bo.FindWorkspace(ctx, "ana-ws")
	MustCode(t, err, atelier.ENOTFOUND)
	if list, _ := bo.ListWorkspaces(ctx); len(list) != 0 {
		t.Errorf("bo sees %v", list)
	}
	// Shared as Reader: bo reads, cannot write, cannot share.
	if _, err := ana.ShareWorkspace(ctx, "ana-ws", "bo", atelier.RoleReader); err != nil {
		t.Fatal(err)
	}
	if _, err := bo.FindWorkspace(ctx, "ana-ws"); err != nil {
		t.Errorf("a Reader reading: %v", err)
	}
	_, err = bo.CreateRun(ctx, "ana-ws", atelier.RunCreate{Experiment: "e"})
	MustCode(t, err, atelier.EFORBIDDEN)
	_, err = bo.ShareWorkspace(ctx, "ana-ws", "bo", atelier.RoleOwner)
	MustCode(t, err, atelier.EFORBIDDEN)
	// The last Owner stays.
	MustCode(t, ana.UnshareWorkspace(ctx, "ana-ws", "ana"), atelier.ECONFLICT)
	// Tokens: a user sees and revokes only their own.
	mine, err := bo.ListTokens(ctx, "")
	if err != nil || len(mine) != 1 || mine[0].ID != boTok.ID || mine[0].Secret != "" {
		t.Fatalf("bo's tokens: %+v, %v", mine, err)
	}
	MustCode(t, bo.RevokeToken(ctx, tok.ID), atelier.ENOTFOUND)
	_, err = bo.CreateToken(ctx, &atelier.Token{Owner: "ana"})
	MustCode(t, err, atelier.EFORBIDDEN)
	// A disabled user's tokens stop working.
	if err := s.Client.DisableUser(ctx, "bo"); err != nil {
		t.Fatal(err)
	}
	_, err = bo.ListWorkspaces(ctx)
	MustCode(t, err, atelier.EUNAUTHORIZED)
	// An administrator user is an administrator.
	if err := s.Client.CreateUser(ctx, &atelier.User{Name: "root2", Admin: true}, "long enough"); err != nil {
		t.Fatal(err)
	}
	rootTok, err := s.Client.CreateToken(ctx, &atelier.Token{Owner: "root2"})
	if err != nil {
		t.Fatal(err)
	}
	if users, err := api.NewClient(s.Server.URL, rootTok.Secret).ListUsers(ctx); err != nil || len(users) != 3 {
		t.Errorf("an admin user listing users: %v, %v", users, err)
	}
	// The audit log has the writes, for the Owner.
	entries, err := ana.ListAudit(ctx, "ana-ws", atelier.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var sawShare bool
	for _, e := range entries {
		if e.Method == "PUT" && e.User == "ana" && strings.HasSuffix(e.Path, "/members/bo") && e.Status == 200 && e.Remote != "" {
			sawShare = true
		}
	}
	if !sawShare {
		t.Errorf("the audit log lacks the share: %+v", entries)
	}
}

func TestLoginSessionCSRFAndThrottle(t *testing.T) {
	s := MustStack(t)
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	if err := s.Client.CreateUser(ctx, &atelier.User{Name: "ana"}, "long enough"); err != nil {
		t.Fatal(err)
	}
	none := ""
	resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/login", Body: `{"user":"ana","password":"long enough"}`, Token: &none})
	if resp.Status != 200 {
		t.Fatalf("login: %d %s", resp.Status, resp.Body)
	}
	var lr api.LoginResponse
	if err := json.Unmarshal(resp.Body, &lr); err != nil || lr.CSRFToken == "" {
		t.Fatalf("login body %s: %v", resp.Body, err)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: resp.Header}).Cookies() {
		if c.Name == api.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	if strings.Contains(string(resp.Body), cookie.Value) {
		t.Errorf("the login body holds the session secret")
	}
	withCookie := map[string]string{"Cookie": api.SessionCookie + "=" + cookie.Value}
	if r := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces", Token: &none, Header: withCookie}); r.Status != 200 {
		t.Errorf("a read with the cookie: %d %s", r.Status, r.Body)
	}
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"x"}`, Token: &none, Header: withCookie}), 403, "CSRF")
	withCSRF := map[string]string{"Cookie": withCookie["Cookie"], api.CSRFHeader: lr.CSRFToken}
	if r := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"x"}`, Token: &none, Header: withCSRF}); r.Status != 201 {
		t.Errorf("a write with the cookie and the CSRF token: %d %s", r.Status, r.Body)
	}
	// Throttling: after repeated failures even the right password waits.
	for range 6 {
		s.MustDo(t, Request{Method: "POST", Path: "/api/v1/login", Body: `{"user":"ana","password":"wrong password"}`, Token: &none})
	}
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/login", Body: `{"user":"ana","password":"long enough"}`, Token: &none}), 429, "too many")
}

// TestSessionCookieSecure: the session cookie is Secure when the deployment says so, or (auto)
// when the request came over https, directly or through a proxy.
func TestSessionCookieSecure(t *testing.T) {
	s := MustStack(t)
	s.Service.PasswordCost = bcrypt.MinCost
	if err := s.Client.CreateUser(Ctx(t), &atelier.User{Name: "ana"}, "long enough"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode   api.CookieSecure
		header map[string]string
		want   bool
	}{
		{"", nil, false},
		{api.CookieSecureAuto, nil, false},
		{api.CookieSecureAuto, map[string]string{"X-Forwarded-Proto": "https"}, true},
		{api.CookieSecureAuto, map[string]string{"X-Forwarded-Proto": "HTTPS, http"}, true},
		{api.CookieSecureAuto, map[string]string{"X-Forwarded-Proto": "http"}, false},
		{api.CookieSecureAuto, map[string]string{"Forwarded": `for=10.0.0.1;proto="https", for=10.0.0.2;proto=http`}, true},
		{api.CookieSecureAuto, map[string]string{"Forwarded": "for=10.0.0.1;proto=http"}, false},
		{api.CookieSecureAlways, nil, true},
		{api.CookieSecureNever, nil, false},
		{api.CookieSecureNever, map[string]string{"X-Forwarded-Proto": "https"}, false},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.mode, tc.header), func(t *testing.T) {
			s.API.CookieSecure = tc.mode
			none := ""
			login := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/login", Body: `{"user":"ana","password":"long enough"}`, Token: &none, Header: tc.header})
			c := sessionCookie(t, login)
			if c.Secure != tc.want || !c.HttpOnly {
				t.Errorf("login cookie Secure=%v HttpOnly=%v, want Secure=%v", c.Secure, c.HttpOnly, tc.want)
			}
			header := map[string]string{"Authorization": "Bearer " + c.Value}
			for k, v := range tc.header {
				header[k] = v
			}
			logout := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/logout", Token: &none, Header: header})
			if logout.Status != http.StatusNoContent {
				t.Fatalf("logout: %d %s", logout.Status, logout.Body)
			}
			if c := sessionCookie(t, logout); c.Secure != tc.want || c.MaxAge >= 0 {
				t.Errorf("logout cookie Secure=%v MaxAge=%d, want Secure=%v and a deletion", c.Secure, c.MaxAge, tc.want)
			}
		})
	}
	// Over TLS, auto marks it Secure.
	s.API.CookieSecure = api.CookieSecureAuto
	tls := httptest.NewTLSServer(s.API)
	defer tls.Close()
	resp, err := tls.Client().Post(tls.URL+"/api/v1/login", "application/json", strings.NewReader(`{"user":"ana","password":"long enough"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := sessionCookie(t, Response{Status: resp.StatusCode, Header: resp.Header}); !c.Secure {
		t.Errorf("a login over https got a cookie without Secure")
	}
	if _, err := api.ParseCookieSecure("sometimes"); atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(err.Error(), "auto, always or never") {
		t.Errorf("ParseCookieSecure(sometimes) = %v, want EINVALID naming the modes", err)
	}
	if m, err := api.ParseCookieSecure(" Never "); err != nil || m != api.CookieSecureNever {
		t.Errorf("ParseCookieSecure(Never) = %q, %v", m, err)
	}
}

func sessionCookie(t *testing.T, resp Response) *http.Cookie {
	t.Helper()
	if resp.Status >= 300 {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	for _, c := range (&http.Response{Header: resp.Header}).Cookies() {
		if c.Name == api.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", api.SessionCookie, resp.Header)
	return nil
}
