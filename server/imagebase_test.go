package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/oci/build"
	"github.com/atelier-ml/atelier/oci/build/buildtest"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
)

// layoutTar is the test base for platform as an OCI image layout in a tar (what the CLI sends
// for a directory).
func layoutTar(t *testing.T, platform v1.Platform, py string) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := buildtest.WriteLayout(dir, platform, py); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := build.TarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// userClient makes user name with role in workspace and returns a client with their token.
func userClient(t *testing.T, st *servertest.Stack, name, workspace string, role atelier.Role) *api.Client {
	t.Helper()
	ctx := context.Background()
	if err := st.Client.CreateUser(ctx, &atelier.User{Name: name}, "correct horse battery "+name); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.ShareWorkspace(ctx, workspace, name, role); err != nil {
		t.Fatal(err)
	}
	tok, err := st.Client.CreateToken(ctx, &atelier.Token{Name: "t", Owner: name})
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(st.URL, tok.Secret)
}

// registryGet asks the workspace registry for path (under /v2/) as the administrator.
func registryGet(t *testing.T, st *servertest.Stack, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, st.URL+"/v2/"+path, nil)
	req.SetBasicAuth("admin", st.Token)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// atelier image base import: an OCI layout (as a tar) and a docker archive become tags of the
// workspace registry, listed as imported; an image for another architecture, a truncated or
// damaged archive, an empty upload and a bad name are 400s naming the problem, leaving nothing
// under the name; a Reader may not import, a Contributor may not set the default; the
// default base is what images without --base are built on.
func TestImportBaseImage(t *testing.T) {
	ctx := context.Background()
	st := servertest.New(t)
	c := st.Client
	platform := buildtest.Platform()
	oci := layoutTar(t, platform, "3.11")

	b, err := c.ImportBaseImage(ctx, "default", "python:3.11", false, bytes.NewReader(oci))
	if err != nil {
		t.Fatal(err)
	}
	if b.Location != "default/python:3.11" || b.Platform != "linux/"+runtime.GOARCH || b.Format == "" || !strings.HasPrefix(b.Digest, "sha256:") || b.Size <= 0 || b.Default || b.ImportedBy == "" {
		t.Errorf("imported %+v", b)
	}
	if code, _ := registryGet(t, st, "GET", "default/python/manifests/3.11"); code != 200 {
		t.Errorf("GET /v2/default/python/manifests/3.11: %d", code)
	}

	img, err := buildtest.Image(platform, "3.12")
	if err != nil {
		t.Fatal(err)
	}
	var docker bytes.Buffer
	if err := build.ExportDocker(img, "example.com/py:3.12", &docker); err != nil {
		t.Fatal(err)
	}
	d, err := c.ImportBaseImage(ctx, "default", "py-docker", false, bytes.NewReader(docker.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if d.Location != "default/py-docker:latest" || d.Format != "docker" {
		t.Errorf("imported docker archive %+v", d)
	}
	if err := st.Server.Service.Builder.CheckBase(ctx, "default", "py-docker"); err != nil {
		t.Errorf("CheckBase(py-docker): %v", err)
	}

	list, err := c.ListBaseImages(ctx, "default")
	if err != nil || len(list.Bases) != 2 || list.Default != "" {
		t.Fatalf("ListBaseImages = %+v, %v", list, err)
	}
	images, err := c.ListImages(ctx, "default", atelier.ImageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	imported := 0
	for _, img := range images {
		if img.Source == atelier.ImageImported {
			imported++
		}
	}
	if imported != 2 {
		t.Errorf("ListImages lists %d imported images, want 2: %+v", imported, images)
	}

	// Bad input: 400, a message naming the problem, nothing under the name.
	wrong := platform
	wrong.Architecture = otherArch()
	half := oci[:len(oci)/2]
	// A layout whose layer is cut short but whose tar is whole: its blob is checked.
	damaged := damageLayer(t, platform)
	for _, tc := range []struct {
		name, ref string
		body      []byte
		want      string
	}{
		{"other architecture", "arm:1", layoutTar(t, wrong, "3.11"), "linux/" + otherArch() + ", not linux/" + runtime.GOARCH},
		{"truncated", "half:1", half, "truncated"},
		{"damaged layer", "damaged:1", damaged, "damaged or truncated"},
		{"not an archive", "junk:1", []byte("not an archive at all, just text that goes on for a while to fill a block or two"), "the uploaded base image"},
		{"empty", "empty:1", nil, "the upload is empty"},
		{"bad name", "Python:3", oci, "invalid image name"},
		{"bad tag", "python:-x", oci, "invalid tag"},
		{"no name", "", oci, "name is required"},
	} {
		_, err := c.ImportBaseImage(ctx, "default", tc.ref, false, bytes.NewReader(tc.body))
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.want) {
			t.Errorf("%s: %v, want a 400 saying %q", tc.name, err, tc.want)
		}
		if strings.Contains(atelier.ErrorMessage(err), filepath.Join(st.Dir, "tmp")) {
			t.Errorf("%s: the message names the server's temporary file: %v", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		name, tag, _ := strings.Cut(tc.ref, ":")
		if code, _ := registryGet(t, st, "HEAD", "default/"+strings.ToLower(name)+"/manifests/"+tag); name != "" && code == 200 {
			t.Errorf("%s: %s is there after a refused import (%d)", tc.name, tc.ref, code)
		}
	}
	if !strings.Contains(func() string {
		_, err := c.ImportBaseImage(ctx, "default", "arm:1", false, bytes.NewReader(layoutTar(t, wrong, "3.11")))
		return atelier.ErrorMessage(err)
	}(), "this server builds linux/"+runtime.GOARCH) {
		t.Error("the refusal of another architecture does not say what this server builds")
	}

	// Who may: a Reader imports nothing; a Contributor imports but does not set the default.
	reader := userClient(t, st, "rita", "default", atelier.RoleReader)
	if _, err := reader.ImportBaseImage(ctx, "default", "mine:1", false, bytes.NewReader(oci)); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a Reader's import: %v, want forbidden", err)
	}
	if list, err := reader.ListBaseImages(ctx, "default"); err != nil || len(list.Bases) != 2 {
		t.Errorf("a Reader's list: %+v, %v", list, err)
	}
	contributor := userClient(t, st, "carl", "default", atelier.RoleContributor)
	if _, err := contributor.ImportBaseImage(ctx, "default", "python:3.11", true, bytes.NewReader(oci)); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a Contributor's import --default: %v, want forbidden", err)
	}
	if err := contributor.SetDefaultBaseImage(ctx, "default", "python:3.11"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a Contributor's default: %v, want forbidden", err)
	}
	if _, err := contributor.ImportBaseImage(ctx, "default", "carls:1", false, bytes.NewReader(oci)); err != nil {
		t.Errorf("a Contributor's import: %v", err)
	}

	// The Owner's --default: images that name no base are built on it.
	b, err = c.ImportBaseImage(ctx, "default", "python:3.11", true, bytes.NewReader(oci))
	if err != nil || !b.Default {
		t.Fatalf("import --default: %+v, %v", b, err)
	}
	if list, err := c.ListBaseImages(ctx, "default"); err != nil || list.Default != "python:3.11" {
		t.Errorf("the default after import --default: %+v, %v", list, err)
	}
	if err := c.SetDefaultBaseImage(ctx, "default", "nothere:1"); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("a default that is not in the registry: %v, want 400", err)
	}
	if err := c.SetDefaultBaseImage(ctx, "default", "py-docker:latest"); err != nil {
		t.Fatal(err)
	}
	list, err = c.ListBaseImages(ctx, "default")
	if err != nil || list.Default != "py-docker:latest" {
		t.Fatalf("the default after set: %+v, %v", list, err)
	}
	for _, b := range list.Bases {
		if b.Default != (b.Name == "py-docker") {
			t.Errorf("%s default=%v with the default %s", b.Location, b.Default, list.Default)
		}
	}
}

// damageLayer is the test base's layout as a tar whose layer blob has its last bytes changed
// (the tar itself whole): its digest no longer matches.
func damageLayer(t *testing.T, platform v1.Platform) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := buildtest.WriteLayout(dir, platform, "3.11"); err != nil {
		t.Fatal(err)
	}
	img, err := buildtest.Image(platform, "3.11")
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	p := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := build.TarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The CPython base of scripts/build-python-base.sh (when it was built here) imports as a
// directory's layout, and the builder reads its Python from it.
func TestImportRealPythonBase(t *testing.T) {
	dir := os.Getenv("ATELIER_PYTHON_BASE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	}
	dir, _ = filepath.EvalSymlinks(dir) // current is a link
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Skipf("no CPython base image in %s: run scripts/build-python-base.sh", dir)
	}
	ctx := context.Background()
	st := servertest.New(t)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(build.TarDir(pw, dir)) }()
	b, err := st.Client.ImportBaseImage(ctx, "default", "python:bookworm", true, pr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %s: %s, %d bytes", b.Location, b.Digest, b.Size)
	if err := st.Server.Service.Builder.CheckBase(ctx, "default", ""); err != nil {
		t.Errorf("CheckBase of the default (the imported CPython): %v", err)
	}
	code, body := registryGet(t, st, "GET", "default/python/manifests/bookworm")
	if code != 200 {
		t.Fatalf("GET manifest: %d %s", code, body)
	}
	if sum := sha256.Sum256(body); "sha256:"+hex.EncodeToString(sum[:]) != b.Digest {
		t.Errorf("the served manifest's digest is not %s", b.Digest)
	}
}

// The server collects the registry's garbage on its own every --registry-gc-interval, under a
// lease: an unreferenced blob older than the grace period goes, the blobs of an image stay.
func TestRegistryGCScheduled(t *testing.T) {
	ctx := context.Background()
	var ahead atomic.Int64
	logs := &syncBuffer{}
	st := servertest.New(t, servertest.WithLog(slog.New(slog.NewTextHandler(logs, nil))), servertest.WithConfig(func(c *server.Config) {
		c.Clock = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		c.RegistryGCInterval = 20 * time.Millisecond
		c.Owner = "gc-test-server"
	}))
	if _, err := st.Client.ImportBaseImage(ctx, "default", "python:3.11", false, bytes.NewReader(layoutTar(t, buildtest.Platform(), "3.11"))); err != nil {
		t.Fatal(err)
	}
	// A blob pushed and never referenced.
	junk := []byte("a blob no manifest references")
	sum := sha256.Sum256(junk)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	req, _ := http.NewRequest("POST", st.URL+"/v2/default/junk/blobs/uploads/?digest="+digest, bytes.NewReader(junk))
	req.SetBasicAuth("admin", st.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("pushing the blob: %d", resp.StatusCode)
	}
	if code, _ := registryGet(t, st, "HEAD", "default/junk/blobs/"+digest); code != 200 {
		t.Fatalf("the pushed blob: %d", code)
	}
	// Rounds run meanwhile and spare it (within the grace period); two hours later it goes.
	ahead.Store(int64(2 * time.Hour))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "blobs_deleted=1 ") {
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled collection removed the blob; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := registryGet(t, st, "HEAD", "default/junk/blobs/"+digest); code != 404 {
		t.Errorf("the unreferenced blob after the collection: %d, want 404", code)
	}
	code, body := registryGet(t, st, "GET", "default/python/manifests/3.11")
	if code != 200 {
		t.Fatalf("the imported image's manifest after the collection: %d", code)
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if code, b := registryGet(t, st, "GET", "default/python/blobs/"+desc.Digest.String()); code != 200 || int64(len(b)) != desc.Size {
			t.Errorf("the imported image's blob %s after the collection: %d, %d bytes", desc.Digest, code, len(b))
		}
	}
	leases, err := st.Server.DB.ListLeases(ctx, server.LeaseKindRegistryGC)
	if err != nil || len(leases) != 1 || leases[0].Owner != "gc-test-server" {
		t.Errorf("the collection's lease: %+v, %v", leases, err)
	}
	// atelier registry gc: now, the report back (nothing left to remove).
	rep, err := st.Client.CollectRegistryGarbage(ctx)
	if err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Fatal(err)
	}
	if err == nil && rep.BlobsDeleted != 0 {
		t.Errorf("registry gc after the scheduled one: %+v", rep)
	}
}

// Another server holding the lease keeps this one from collecting.
func TestRegistryGCLeaseHeldElsewhere(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	st := servertest.New(t, servertest.WithLog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		servertest.WithConfig(func(c *server.Config) {
			c.RegistryGCInterval = 20 * time.Millisecond
			c.Owner = "this-server"
		}))
	if _, err := st.Server.DB.AcquireLease(ctx, &atelier.Lease{Kind: server.LeaseKindRegistryGC, ID: "registry", Owner: "other-server",
		Expires: time.Now().Add(time.Hour)}, time.Now(), ""); err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "collected by another server") {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not see the other's lease; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "scheduled image registry garbage collection") {
		// This server may have taken the lease before the test did; then it collects.
		if l, _ := st.Server.DB.ListLeases(ctx, server.LeaseKindRegistryGC); len(l) == 1 && l[0].Owner == "other-server" {
			t.Errorf("collected while another server held the lease:\n%s", logs.String())
		}
	}
}

// A deleted workspace's registry repositories go with it: made again under its name, it serves
// none of the old images.
func TestDeletedWorkspaceServesNoOldImages(t *testing.T) {
	ctx := context.Background()
	st := servertest.New(t)
	c := st.Client
	if err := c.CreateWorkspace(ctx, &atelier.Workspace{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportBaseImage(ctx, "gone", "python:3.11", true, bytes.NewReader(layoutTar(t, buildtest.Platform(), "3.11"))); err != nil {
		t.Fatal(err)
	}
	if code, _ := registryGet(t, st, "GET", "gone/python/manifests/3.11"); code != 200 {
		t.Fatalf("before: %d", code)
	}
	if err := c.DeleteWorkspace(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateWorkspace(ctx, &atelier.Workspace{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"gone/python/manifests/3.11", "gone/python/tags/list"} {
		if code, body := registryGet(t, st, "GET", path); code != 404 {
			t.Errorf("GET /v2/%s in the workspace made again: %d %s, want 404", path, code, body)
		}
	}
	images, err := c.ListImages(ctx, "gone", atelier.ImageQuery{})
	if err != nil || len(images) != 0 {
		t.Errorf("images of the workspace made again: %+v, %v", images, err)
	}
	list, err := c.ListBaseImages(ctx, "gone")
	if err != nil || len(list.Bases) != 0 || list.Default != "" {
		t.Errorf("bases of the workspace made again: %+v, %v", list, err)
	}
	if err := st.Server.Service.Builder.CheckBase(ctx, "gone", ""); err == nil {
		t.Error("the workspace made again still has the old default base")
	}
}
