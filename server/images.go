package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/edge"
	"github.com/atelier-ml/atelier/oci/build"
	"github.com/atelier-ml/atelier/oci/registry"
)

// openImages opens the workspace image registry (served under /v2/; image <ws>/<name>:<version>)
// and gives the service its image builder, which builds into the registry's stores.
//
// The registry's blobs are in the artifact store, under oci/ (a folder, or a bucket's prefix:
// beside the artifact store's objects, not among them, see registry.BucketBlobs), and its
// manifests, tags, links and uploads in the database. Workspaces share the blobs; what keeps them
// apart is the registry's links: a repository <ws>/<name> reads only the blobs pushed to it or
// mounted into it by a caller who could read their source, and the caller's role in <ws> decides
// who reaches the repository at all (registryAuth).
func (s *Server) openImages(ctx context.Context, cfg Config) error {
	dir := filepath.Join(s.DataDir, "registry")
	for _, d := range []string{dir, filepath.Join(s.DataDir, "build-cache")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	blobs, err := s.artifacts.registryBlobs(ctx, cfg.Clock)
	if err != nil {
		return err
	}
	s.onClose(blobs.Close)
	// Staged content of puts a crash cut short (buckets only; a day old, sparing other servers'
	// puts in progress).
	if n, err := blobs.CleanStaging(ctx, cfg.Clock().Add(-24*time.Hour)); err != nil {
		s.log.Warn("cleaning the image registry's staged blobs", "err", err)
	} else if n > 0 {
		s.log.Info("deleted the image registry's staged blobs left by interrupted pushes", "count", n)
	}
	meta := s.DB.Registry()
	// A data directory of a server from before kept the registry in <data>/registry/{blobs,meta}.
	rep, migrated, err := registry.MigrateDisk(ctx, dir, blobs, meta, cfg.Clock())
	if err != nil {
		return fmt.Errorf("moving the image registry of %s into the artifact store and the database (nothing was removed; the next start tries again): %w", dir, err)
	} else if migrated {
		s.log.Info("moved the image registry into the artifact store and the database", "from", dir,
			"repositories", rep.Repositories, "manifests", rep.Manifests, "tags", rep.Tags, "blobs", rep.Blobs, "bytes", rep.Bytes)
	}
	key, err := registryKey(filepath.Join(dir, "token.key"))
	if err != nil {
		return err
	}
	s.Registry, err = registry.New(registry.Options{Blobs: blobs, Metadata: meta, Logger: s.log, TokenKey: key, Now: cfg.Clock,
		Authorizer: &registryAuth{auth: edge.Authenticator{Auth: s.Service}, svc: s.Service}})
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.DataDir, "tmp")
	s.images = &workspaceImages{Workspaces: &build.Workspaces{Blobs: blobs, Metadata: meta, CacheDir: filepath.Join(s.DataDir, "build-cache"),
		TmpDir: tmp, DefaultBase: cfg.ImageBase, PipArgs: cfg.ImagePipArgs,
		Host: strings.TrimPrefix(s.URL, "http://"), Credentials: s.baseRegistryCredentials},
		db: s.DB, reg: s.Registry, log: s.log, tmp: tmp, now: cfg.Clock, owner: registryGCOwner(cfg.Owner)}
	s.Service.Builder = s.images
	return nil
}

// registryBlobs opens the registry's blobs: oci/ of the artifact store.
func (a *artifactStore) registryBlobs(ctx context.Context, now func() time.Time) (*registry.BucketBlobs, error) {
	if a.dir != "" {
		dir := filepath.Join(a.dir, "oci")
		// No sidecar metadata files: a blob's put time is its file's modification time.
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			return nil, err
		}
		return registry.NewBucketBlobs(b, dir, now), nil
	}
	loc := a.loc.Sub("oci")
	b, err := datastore.NewOpener("").OpenBucket(ctx, loc.Datastore, loc.Credentials)
	if err != nil {
		return nil, fmt.Errorf("the artifact store %s: %s", loc, atelier.ErrorMessage(err))
	}
	return registry.NewBucketBlobs(b, "", now), nil
}

// registryKey is the key the registry signs its bearer tokens with, kept so they outlive a
// restart.
func registryKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, os.WriteFile(path, b, 0o600)
}

// registryAuth lets the registry's clients in with atelier's tokens (Basic: any user name and a
// token as the password, as `podman login -u NAME -p TOKEN` sends it; or Bearer) and decides by
// the caller's role in the repository's workspace: members pull, Contributors push.
type registryAuth struct {
	auth edge.Authenticator
	svc  interface {
		AuthorizeRegistry(ctx context.Context, repo string, write bool) error
	}
}

func (a *registryAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	var p *atelier.Principal
	if claims, ok := registry.TokenPrincipal(r.Context()); ok {
		if err := json.Unmarshal([]byte(claims), &p); err != nil || p == nil {
			return "", atelier.Errorf(atelier.EUNAUTHORIZED, "an unreadable registry token")
		}
	} else {
		if r.Header.Get("Authorization") == "" {
			return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required: log in with your user name and an atelier token as the password")
		}
		var err error
		if p, err = a.auth.Authenticate(r); err != nil {
			return "", err
		}
	}
	ctx := atelier.NewContextWithPrincipal(r.Context(), p)
	if err := a.svc.AuthorizeRegistry(ctx, repo, action == registry.Push || action == registry.Delete); err != nil {
		return "", err
	}
	b, err := json.Marshal(p)
	return string(b), err
}

// baseRegistryCredentials reads the credentials of another registry from the workspace's vault:
// the secret build.RegistrySecretName(host), USER:PASSWORD (a value without ':' is a token,
// sent with the user name "atelier").
func (s *Server) baseRegistryCredentials(ctx context.Context, workspace, host string) (string, string, error) {
	name := build.RegistrySecretName(host)
	v, ok, err := s.Service.ImageRegistrySecret(ctx, workspace, name)
	if err != nil || !ok {
		return "", "", err
	}
	if user, pass, found := strings.Cut(v, ":"); found {
		return user, pass, nil
	}
	return "atelier", v, nil
}
