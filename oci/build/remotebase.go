package build

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/atelier-ml/atelier"
)

// RegistryCredentials returns the user name and password to pull from host for workspace
// ("" and "" for anonymous access).
type RegistryCredentials func(ctx context.Context, workspace, host string) (username, password string, err error)

// IsRemoteBase reports whether base names an image of another registry: its first component
// is a host (it has a '.' or a ':', or is localhost), as docker reads a reference.
func IsRemoteBase(base string) bool {
	first, _, ok := strings.Cut(base, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

var nonAlnum = regexp.MustCompile(`[^A-Z0-9]+`)

// RegistrySecretName is the vault secret holding the credentials of host: REGISTRY_ and the
// host in capitals with every other character an underscore (127.0.0.1:5000 →
// REGISTRY_127_0_0_1_5000); its value is USER:PASSWORD.
func RegistrySecretName(host string) string {
	return "REGISTRY_" + strings.Trim(nonAlnum.ReplaceAllString(strings.ToUpper(host), "_"), "_")
}

// remoteBase pulls a base image's manifest and config from another registry (its layers are
// read when the build needs them), for this server's platform. Loopback and private addresses
// are spoken to over plain HTTP, others over HTTPS.
func (w *Workspaces) remoteBase(ctx context.Context, workspace, base string) (v1.Image, error) {
	ref, err := name.ParseReference(base)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "base image %s: not a valid image reference: %v", base, err)
	}
	host := ref.Context().RegistryStr()
	auth := authn.Anonymous
	if w.Credentials != nil {
		user, pass, err := w.Credentials(ctx, workspace, host)
		if err != nil {
			return nil, err
		}
		if user != "" || pass != "" {
			auth = authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
		}
	}
	platform := DefaultPlatform()
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithPlatform(platform))
	if err != nil {
		return nil, remoteError(ctx, base, host, auth == authn.Anonymous, err)
	}
	if _, err := img.ConfigFile(); err != nil {
		return nil, remoteError(ctx, base, host, auth == authn.Anonymous, err)
	}
	if err := checkPlatform(img, platform); err != nil {
		return nil, err
	}
	return img, nil
}

// remoteError says what went wrong reaching another registry, as a 400 naming it.
func remoteError(ctx context.Context, base, host string, anonymous bool, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			how := "with the credentials of the vault secret " + RegistrySecretName(host)
			if anonymous {
				how = "anonymously: set the vault secret " + RegistrySecretName(host) + " to USER:PASSWORD (atelier secret set " + RegistrySecretName(host) + ")"
			}
			return atelier.Errorf(atelier.EINVALID, "base image %s: registry %s refused access %s", base, host, how)
		case http.StatusNotFound:
			return atelier.Errorf(atelier.EINVALID, "base image %s not found in registry %s", base, host)
		}
		return atelier.Errorf(atelier.EINVALID, "base image %s: registry %s answered: %v", base, host, te)
	}
	return atelier.Errorf(atelier.EINVALID, "base image %s: registry %s is unreachable: %v", base, host, err)
}
