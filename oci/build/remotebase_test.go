package build_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/build"
	"github.com/atelier-ml/atelier/oci/build/buildtest"
	"github.com/atelier-ml/atelier/oci/registry"
)

// basicAuth lets in one user (and the tokens the registry gave it).
type basicAuth struct{ user, password string }

func (a basicAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	if p, ok := registry.TokenPrincipal(r.Context()); ok {
		return p, nil
	}
	if u, p, ok := r.BasicAuth(); ok && u == a.user && p == a.password {
		return u, nil
	}
	return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
}

// remoteRegistry serves a registry on loopback (atelier's own, as another server's would be)
// holding lib/base:1 for this machine and lib/other:1 for another architecture; only bob may
// pull.
func remoteRegistry(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	blobs, err := registry.OpenDiskBlobs(dir+"/blobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := registry.OpenDiskMetadata(dir + "/meta")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: blobs, Metadata: meta, Authorizer: basicAuth{"bob", "s3cret"}, TokenKey: bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "bob", Password: "s3cret"}))
	for repo, platform := range map[string]v1.Platform{"lib/base:1": buildtest.Platform(), "lib/other:1": {OS: "linux", Architecture: "s390x"}} {
		if buildtest.Platform().Architecture == "s390x" && repo == "lib/other:1" {
			platform.Architecture = "arm64"
		}
		img, err := buildtest.Image(platform, "3.11")
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatalf("pushing %s: %v", repo, err)
		}
	}
	return host
}

// --base HOST/REPO:TAG pulls the base from another registry, with the credentials of the
// workspace's vault secret REGISTRY_<HOST>; what goes wrong is a 400 naming the registry.
func TestRemoteBase(t *testing.T) {
	ctx := context.Background()
	host := remoteRegistry(t)
	secret := build.RegistrySecretName(host)
	if !strings.HasPrefix(secret, "REGISTRY_127_0_0_1_") {
		t.Fatalf("the secret of %s is %s", host, secret)
	}
	creds := map[string][2]string{}
	w := &build.Workspaces{Credentials: func(ctx context.Context, workspace, h string) (string, string, error) {
		c := creds[workspace+" "+h]
		return c[0], c[1], nil
	}}
	check := func(base, want string) {
		t.Helper()
		err := w.CheckBase(ctx, "ws", base)
		if want == "" {
			if err != nil {
				t.Fatalf("CheckBase(%s): %v", base, err)
			}
			return
		}
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), want) {
			t.Fatalf("CheckBase(%s) = %v, want EINVALID with %q", base, err, want)
		}
	}
	check(host+"/lib/base:1", "registry "+host+" refused access anonymously: set the vault secret "+secret)
	creds["ws "+host] = [2]string{"bob", "wrong"}
	check(host+"/lib/base:1", "refused access with the credentials of the vault secret "+secret)
	creds["ws "+host] = [2]string{"bob", "s3cret"}
	check(host+"/lib/base:1", "")
	check(host+"/lib/nothere:1", "not found in registry "+host)
	check(host+"/lib/other:1", "base image is for linux/")
	check(host+"/Lib/Bad:1", "not a valid image reference")
	// Credentials are the workspace's: another workspace pulls anonymously.
	if err := w.CheckBase(ctx, "other", host+"/lib/base:1"); !strings.Contains(atelier.ErrorMessage(err), "anonymously") {
		t.Fatalf("another workspace used ws's credentials: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	check(closed+"/lib/base:1", "registry "+closed+" is unreachable")
}

// A build on a base of another registry: the image holds the base's layer and the source.
func TestBuildOnRemoteBase(t *testing.T) {
	ctx := context.Background()
	host := remoteRegistry(t)
	dir := t.TempDir()
	blobs, err := registry.OpenDiskBlobs(dir+"/blobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := registry.OpenDiskMetadata(dir + "/meta")
	if err != nil {
		t.Fatal(err)
	}
	w := &build.Workspaces{Blobs: blobs, Metadata: meta, CacheDir: t.TempDir(), TmpDir: t.TempDir(),
		Credentials: func(context.Context, string, string) (string, string, error) { return "bob", "s3cret", nil }}
	score := []byte("def init():\n    pass\n\ndef run(data):\n    return data\n")
	sum := sha256.Sum256(score)
	digest := hex.EncodeToString(sum[:])
	job := &atelier.ImageBuildJob{
		Image:    &atelier.Image{Workspace: "ws", Name: "app", Version: 1, EntryScript: "score.py", Base: host + "/lib/base:1", Location: "ws/app:1"},
		Snapshot: &atelier.Snapshot{Entries: []atelier.SnapshotEntry{{Path: "score.py", Digest: digest, Size: int64(len(score))}}},
		Open: func(ctx context.Context, d string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(score)), nil
		},
	}
	var log bytes.Buffer
	res, err := w.Build(ctx, job, &log)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log.String())
	}
	ref, err := name.ParseReference(host + "/lib/base:1")
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "bob", Password: "s3cret"})))
	if err != nil {
		t.Fatal(err)
	}
	baseLayers, _ := base.Layers()
	baseDigest, _ := baseLayers[0].Digest()
	if _, err := blobs.Stat(ctx, registry.Digest(baseDigest.String())); err != nil {
		t.Fatalf("the image's base layer %s is not in the registry: %v", baseDigest, err)
	}
	if d, err := meta.Tag(ctx, "ws/app", "1"); err != nil || string(d) != res.Digest {
		t.Fatalf("ws/app:1 = %s, %v; built %s", d, err, res.Digest)
	}
}
