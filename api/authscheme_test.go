package api_test

import (
	"encoding/base64"
	"net/http"
	"testing"
)

// TestAuthSchemeCase: the scheme of the Authorization header is case-insensitive (RFC 7235);
// Basic carries the token as its password, as on the MLflow front door.
func TestAuthSchemeCase(t *testing.T) {
	s := MustStack(t)
	basic := func(scheme, token string) string {
		return scheme + " " + base64.StdEncoding.EncodeToString([]byte("me:"+token))
	}
	get := func(auth string) Response {
		return s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces", Token: ptr(""), Header: map[string]string{"Authorization": auth}})
	}
	for _, auth := range []string{"Bearer " + s.Token, "bearer " + s.Token, "BEARER " + s.Token, "bEaReR  " + s.Token,
		basic("Basic", s.Token), basic("basic", s.Token), basic("BASIC", s.Token)} {
		if r := get(auth); r.Status != http.StatusOK {
			t.Errorf("%.12s...: %d %s", auth, r.Status, r.Body)
		}
	}
	for _, tc := range []struct {
		auth string
		want []string
	}{
		{"bearer atl_nope", []string{"token"}},
		{basic("basic", "atl_nope"), []string{"token"}},
		{"Token " + s.Token, []string{`"Token"`, "Bearer"}},
		{"basic %%%", []string{"base64"}},
	} {
		MustAPIError(t, get(tc.auth), http.StatusUnauthorized, tc.want...)
	}
}
