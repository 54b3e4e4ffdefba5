package registry_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// writeOCILayout writes an OCI image layout holding one small image tagged tag, and returns
// the digest of its manifest and the layer's content.
func writeOCILayout(t *testing.T, dir, tag string) (string, []byte) {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	file := []byte("print('hello from a layer')\n")
	tw.WriteHeader(&tar.Header{Name: "app/score.py", Mode: 0o644, Size: int64(len(file))})
	tw.Write(file)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	layer := gz.Bytes()
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"python3", "/app/score.py"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{string(digest(tarBuf.Bytes()))}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)},
	})
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": tag},
	}}})
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index}
	for _, b := range [][]byte{layer, config, manifest} {
		files["blobs/sha256/"+digest(b).Hex()] = b
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return string(digest(manifest)), layer
}

// TestSkopeo pushes, inspects, copies between repositories, pulls and deletes an image with
// skopeo (containers/image, the library of podman and buildah), which authenticates through the
// bearer token flow.
func TestSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	reg := MustServe(t)
	var tokens, mounts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/token" {
			tokens.Add(1)
		}
		if r.Method == http.MethodPost && r.URL.Query().Get("from") == "ws/app" {
			mounts.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	home := t.TempDir()
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), skopeo, append([]string{"--insecure-policy"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+home, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	src := t.TempDir()
	manifestDigest, layer := writeOCILayout(t, src, "v1")
	creds := "ana:secret"

	must("copy", "--dest-creds", creds, "--dest-tls-verify=false", "oci:"+src+":v1", "docker://"+host+"/ws/app:v1")
	raw := must("inspect", "--raw", "--creds", creds, "--tls-verify=false", "docker://"+host+"/ws/app:v1")
	if string(digest([]byte(raw))) != manifestDigest {
		t.Fatalf("the pushed manifest changed on the way: %s", raw)
	}
	if out := must("list-tags", "--creds", creds, "--tls-verify=false", "docker://"+host+"/ws/app"); !strings.Contains(out, `"v1"`) {
		t.Fatalf("list-tags: %s", out)
	}
	// Registry to registry: the blobs are mounted from ws/app.
	must("copy", "--src-creds", creds, "--dest-creds", creds, "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+host+"/ws/app:v1", "docker://"+host+"/ws/copy:v1")
	if mounts.Load() == 0 {
		t.Error("copying between repositories mounted nothing")
	}
	dst := t.TempDir()
	must("copy", "--src-creds", creds, "--src-tls-verify=false", "docker://"+host+"/ws/copy:v1", "oci:"+dst+":v1")
	if got, err := os.ReadFile(filepath.Join(dst, "blobs", "sha256", digest(layer).Hex())); err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("the pulled layer differs: %v", err)
	}
	must("delete", "--creds", creds, "--tls-verify=false", "docker://"+host+"/ws/app:v1")
	if out, err := run("inspect", "--raw", "--creds", creds, "--tls-verify=false", "docker://"+host+"/ws/app:v1"); err == nil {
		t.Fatalf("inspect after delete succeeded: %s", out)
	}
	if out, err := run("inspect", "--raw", "--creds", "ana:wrong", "--tls-verify=false", "docker://"+host+"/ws/copy:v1"); err == nil ||
		!strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("inspect with a wrong password: %v\n%s", err, out)
	}
	if tokens.Load() == 0 {
		t.Fatal("skopeo never used the token endpoint")
	}
}
