package registry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// Action is what a request does to a repository.
type Action int

const (
	Pull Action = iota + 1
	Push
	Delete
)

func (a Action) String() string {
	switch a {
	case Pull:
		return "pull"
	case Push:
		return "push"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Authorizer decides who may do what. The registry asks it before every request.
type Authorizer interface {
	// Authorize authenticates the caller of r and decides whether it may do action on repo; repo
	// "" asks only whether it may use the registry at all (the /v2/ ping, the catalog, a token).
	// It returns the caller's principal ("" when anonymous) or an atelier error: EUNAUTHORIZED
	// (no or bad credentials: 401 with a challenge), EFORBIDDEN (403 DENIED) or ENOTFOUND (404
	// NAME_UNKNOWN, when the caller may not learn that repo exists).
	//
	// A request bearing a token from the registry's token endpoint arrives authenticated:
	// TokenPrincipal(r.Context()) names its principal, and Authorize decides for that principal
	// without reading the Authorization header.
	Authorize(r *http.Request, repo string, action Action) (string, error)
}

type principalKey struct{}

// TokenPrincipal returns the principal named by the registry token r was authenticated with,
// and whether there was one.
func TokenPrincipal(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(principalKey{}).(string)
	return p, ok
}

// tokenPrefix marks the registry's own tokens, so a bearer credential of another kind (an
// atelier API token) goes to the Authorizer untouched.
const tokenPrefix = "atr1."

type tokenClaims struct {
	Subject string `json:"sub"`
	Expires int64  `json:"exp"`
}

// issueToken returns a token naming principal until ttl passes: an HMAC-signed claim, so any
// replica holding the key can verify it without a lookup.
func (reg *Registry) issueToken(principal string, now time.Time) string {
	payload, _ := json.Marshal(tokenClaims{Subject: principal, Expires: now.Add(reg.tokenTTL).Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(reg.sign(p))
}

func (reg *Registry) sign(payload string) []byte {
	m := hmac.New(sha256.New, reg.tokenKey)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// verifyToken returns the principal of a valid, unexpired token.
func (reg *Registry) verifyToken(tok string, now time.Time) (string, error) {
	invalid := atelier.Errorf(atelier.EUNAUTHORIZED, "the registry token is invalid or expired: log in again")
	p, sig, ok := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	if !ok {
		return "", invalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, reg.sign(p)) {
		return "", invalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return "", invalid
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || now.Unix() >= c.Expires {
		return "", invalid
	}
	return c.Subject, nil
}

// authenticateToken puts the principal of a registry token into r's context. A request without
// one is returned as it is; an invalid or expired registry token is refused.
func (reg *Registry) authenticateToken(r *http.Request) (*http.Request, error) {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(cred, tokenPrefix) {
		return r, nil
	}
	p, err := reg.verifyToken(cred, reg.now())
	if err != nil {
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), nil
}

// authorize asks the Authorizer and turns its refusal into the spec's error; a 401 carries the
// challenges docker, podman and containerd understand: a bearer token realm first, then basic.
func (reg *Registry) authorize(w http.ResponseWriter, r *http.Request, repo string, action Action) (string, error) {
	p, err := reg.auth.Authorize(r, repo, action)
	if err == nil {
		return p, nil
	}
	if atelier.ErrorCode(err) == atelier.EUNAUTHORIZED {
		reg.challenge(w, r, repo, action, "")
		return "", errorf(Unauthorized, "%s", atelier.ErrorMessage(err))
	}
	return "", asRegistryError(err, NameUnknown)
}

// challenge sets the WWW-Authenticate headers of a 401.
func (reg *Registry) challenge(w http.ResponseWriter, r *http.Request, repo string, action Action, bearerError string) {
	realm := reg.tokenRealm
	if realm == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		realm = scheme + "://" + r.Host + "/v2/token"
	}
	bearer := fmt.Sprintf("Bearer realm=%q,service=%q", realm, reg.service)
	if repo != "" {
		scope := "pull"
		switch action {
		case Push:
			scope = "pull,push"
		case Delete:
			scope = "delete"
		}
		bearer += fmt.Sprintf(",scope=%q", "repository:"+repo+":"+scope)
	}
	if bearerError != "" {
		bearer += fmt.Sprintf(",error=%q", bearerError)
	}
	w.Header().Add("WWW-Authenticate", bearer)
	w.Header().Add("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", reg.service))
}

// serveToken is the token endpoint of docker's token authentication: for basic credentials (or
// none, when anonymous use is allowed) it hands out a short-lived token naming the principal.
// The token grants nothing by itself: every request it bears is still authorized, so a revoked
// permission takes effect at once. containerd posts an OAuth2 password grant instead of a GET.
func (reg *Registry) serveToken(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return errorf(Unsupported, "invalid token request: %v", err).withStatus(http.StatusBadRequest)
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			return errorf(Unsupported, "unsupported grant_type %q: use password", gt).withStatus(http.StatusBadRequest)
		}
		r = r.Clone(r.Context())
		r.SetBasicAuth(r.PostForm.Get("username"), r.PostForm.Get("password"))
	default:
		w.Header().Set("Allow", "GET, POST")
		return errorf(Unsupported, "the token endpoint takes GET or POST")
	}
	p, err := reg.auth.Authorize(r, "", Pull)
	if err != nil {
		if atelier.ErrorCode(err) == atelier.EUNAUTHORIZED {
			w.Header().Add("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", reg.service))
			return errorf(Unauthorized, "%s", atelier.ErrorMessage(err))
		}
		return asRegistryError(err, NameUnknown)
	}
	now := reg.now()
	tok := reg.issueToken(p, now)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(reg.tokenTTL / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}
