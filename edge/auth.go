package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Names of a UI session. The session cookie is HttpOnly; the CSRF token is derived from the
// session's secret, so the server keeps no state for it.
const (
	SessionCookie = "atelier_session"
	CSRFHeader    = "X-CSRF-Token"
	CSRFFormField = "csrf_token"
)

// CSRFToken is the CSRF token of a session.
func CSRFToken(session string) string {
	sum := sha256.Sum256([]byte("atelier csrf\x00" + session))
	return hex.EncodeToString(sum[:])
}

// Authenticator finds the caller of a request: a user's or a run's token (Bearer, or Basic
// with the token as its password, as MLflow's client sends MLFLOW_TRACKING_USERNAME and
// MLFLOW_TRACKING_PASSWORD), or the UI's session cookie.
type Authenticator struct {
	Auth atelier.AuthService
}

// Authenticate reads the Authorization header, or else the session cookie. A cookie comes with
// every request the browser makes, even one another site triggers, so a write authenticated by
// it must also carry the CSRF token, which only the UI's own pages know. No credentials at all
// is for the AuthService to refuse (or to serve, on a server without tokens).
func (a Authenticator) Authenticate(r *http.Request) (*atelier.Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, err := HeaderToken(h)
		if err != nil {
			return nil, err
		}
		return a.Auth.Authenticate(r.Context(), token)
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return a.Auth.Authenticate(r.Context(), "")
	}
	p, err := a.Auth.Authenticate(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if IsWrite(r.Method) {
		got := r.Header.Get(CSRFHeader)
		if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			got = r.PostFormValue(CSRFFormField)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(CSRFToken(c.Value))) != 1 {
			return nil, atelier.Errorf(atelier.EFORBIDDEN, "missing or wrong CSRF token: send the %s header (or the %s form field) with a write made with the session cookie", CSRFHeader, CSRFFormField)
		}
	}
	return p, nil
}

// HeaderToken reads the token of an Authorization header: Bearer <token>, or Basic with the
// token as the password. The scheme is case-insensitive (RFC 7235), so "bearer" and "BASIC"
// are Bearer and Basic.
func HeaderToken(h string) (string, error) {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(h), " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return cred, nil
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", atelier.Errorf(atelier.EUNAUTHORIZED, "invalid Basic authorization header: its credentials are not base64")
		}
		_, token, _ := strings.Cut(string(raw), ":")
		return token, nil
	}
	return "", atelier.Errorf(atelier.EUNAUTHORIZED, "unsupported authorization scheme %q: send Authorization: Bearer <token>, or Basic with the token as the password", scheme)
}
