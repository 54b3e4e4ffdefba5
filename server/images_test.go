package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/server/servertest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRegistryMovedFromDisk: a data directory of a server whose registry was on disk
// (<data>/registry/blobs and meta) keeps its images: the next server copies them into the
// artifact store and the database once, says so, and serves them; a restart after that finds
// them again without copying anything.
func TestRegistryMovedFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldBlobs, err := registry.OpenDiskBlobs(filepath.Join(dir, "registry", "blobs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	oldMeta, err := registry.OpenDiskMetadata(filepath.Join(dir, "registry", "meta"))
	if err != nil {
		t.Fatal(err)
	}
	config, layer := []byte(`{"architecture":"amd64","os":"linux"}`), bytes.Repeat([]byte("layer "), 1000)
	var refs []registry.Ref
	for _, b := range [][]byte{config, layer} {
		info, err := oldBlobs.Put(ctx, bytes.NewReader(b), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := oldMeta.LinkBlob(ctx, "default/legacy", info.Digest, info.Size, time.Now()); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, registry.Ref{Digest: info.Digest, Size: info.Size})
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		string(refs[0].Digest) + `","size":` + itoa(refs[0].Size) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		string(refs[1].Digest) + `","size":` + itoa(refs[1].Size) + `}]}`)
	man := &registry.Manifest{Digest: registry.DigestOf("sha256", body), MediaType: registry.MediaTypeImageManifest, Body: body, Blobs: refs}
	// An index listing it, which must be copied after it.
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		string(man.Digest) + `","size":` + itoa(int64(len(body))) + `}]}`)
	idx := &registry.Manifest{Digest: registry.DigestOf("sha256", index), MediaType: "application/vnd.oci.image.index.v1+json", Body: index,
		Manifests: []registry.Ref{{Digest: man.Digest, Size: int64(len(body))}}}
	if err := oldMeta.PutManifest(ctx, "default/legacy", man, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if err := oldMeta.PutManifest(ctx, "default/legacy", idx, []string{"all"}); err != nil {
		t.Fatal(err)
	}

	var log syncBuffer
	st := servertest.New(t, servertest.WithDir(dir), servertest.WithLog(slog.New(slog.NewTextHandler(&log, nil))))
	pull := func(st *servertest.Stack) {
		t.Helper()
		for path, want := range map[string][]byte{
			"manifests/1": body, "manifests/all": index, "blobs/" + string(refs[0].Digest): config, "blobs/" + string(refs[1].Digest): layer,
		} {
			req, _ := http.NewRequest("GET", st.URL+"/v2/default/legacy/"+path, nil)
			req.SetBasicAuth("admin", st.Token)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("GET %s after the move: %d %.200s", path, resp.StatusCode, got)
			}
		}
	}
	pull(st)
	if !strings.Contains(log.String(), "moved the image registry into the artifact store and the database") ||
		!strings.Contains(log.String(), "manifests=2") || !strings.Contains(log.String(), "blobs=2") {
		t.Errorf("the log does not tell of the move:\n%s", log.String())
	}
	for _, gone := range []string{"blobs", "meta"} {
		if _, err := os.Stat(filepath.Join(dir, "registry", gone)); !os.IsNotExist(err) {
			t.Errorf("registry/%s is still there after the move: %v", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "oci", "sha256")); err != nil {
		t.Errorf("no blobs in the artifact store's oci/: %v", err)
	}
	st.Close()

	var log2 syncBuffer
	st = servertest.New(t, servertest.WithDir(dir), servertest.WithLog(slog.New(slog.NewTextHandler(&log2, nil))))
	pull(st)
	if strings.Contains(log2.String(), "moved the image registry") {
		t.Errorf("the second start moved the registry again:\n%s", log2.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
