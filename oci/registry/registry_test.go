package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

// response is a read HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// client speaks to a test registry as a user (basic credentials), or anonymously ("").
type client struct {
	t          testing.TB
	base       string
	user, pass string
	bearer     string
}

func (r *testRegistry) client(t testing.TB, user, pass string) *client {
	return &client{t: t, base: r.URL, user: user, pass: pass}
}

// do sends a request; hdr holds header name, value pairs.
func (c *client) do(method, path string, body []byte, hdr ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	switch {
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// want fails unless the response has status.
func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Body)
	}
	return r
}

// wantError fails unless the response is the spec's error body with status and code.
func (r response) wantError(t testing.TB, status int, code string) {
	t.Helper()
	r.want(t, status)
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("error body %q is not {\"errors\":[...]} with one error: %v", r.Body, err)
	}
	if body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s and a message", body.Errors[0], code)
	}
}

func digest(b []byte) registry.Digest { return registrytest.Digest(b) }

// pushBlob pushes content in one POST.
func (c *client) pushBlob(repo string, content []byte) registry.Digest {
	c.t.Helper()
	d := digest(content)
	c.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+string(d), content).want(c.t, http.StatusCreated)
	return d
}

// image is a pushed image: a config, a layer and the manifest naming them.
type image struct {
	Config, Layer, Manifest []byte
	Digest                  registry.Digest
}

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
}

// newImage makes an image whose content depends on seed; extra fields go into its manifest.
func newImage(seed string, extra map[string]any) image {
	im := image{Config: []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`), Layer: []byte("layer of " + seed)}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     registry.MediaTypeImageManifest,
		"config":        descriptor("application/vnd.oci.image.config.v1+json", im.Config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", im.Layer)},
	}
	for k, v := range extra {
		m[k] = v
	}
	im.Manifest, _ = json.Marshal(m)
	im.Digest = digest(im.Manifest)
	return im
}

// pushImage pushes an image's blobs and its manifest under ref.
func (c *client) pushImage(repo, ref string, im image) response {
	c.t.Helper()
	c.pushBlob(repo, im.Config)
	c.pushBlob(repo, im.Layer)
	return c.do("PUT", "/v2/"+repo+"/manifests/"+ref, im.Manifest, "Content-Type", registry.MediaTypeImageManifest)
}

func TestPushAndPull(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	im := newImage("a", nil)
	r := c.pushImage("ws/app", "v1", im).want(t, http.StatusCreated)
	if r.Header.Get("Docker-Content-Digest") != string(im.Digest) || r.Header.Get("Location") != "/v2/ws/app/manifests/"+string(im.Digest) {
		t.Fatalf("manifest push headers: %v", r.Header)
	}
	for _, ref := range []string{"v1", string(im.Digest)} {
		r := c.do("GET", "/v2/ws/app/manifests/"+ref, nil, "Accept", registry.MediaTypeImageManifest).want(t, http.StatusOK)
		if !bytes.Equal(r.Body, im.Manifest) || r.Header.Get("Content-Type") != registry.MediaTypeImageManifest ||
			r.Header.Get("Docker-Content-Digest") != string(im.Digest) {
			t.Fatalf("GET manifest %s: %s %v", ref, r.Body, r.Header)
		}
		r = c.do("HEAD", "/v2/ws/app/manifests/"+ref, nil).want(t, http.StatusOK)
		if len(r.Body) != 0 || r.Header.Get("Content-Length") != fmt.Sprint(len(im.Manifest)) {
			t.Fatalf("HEAD manifest %s: %q %v", ref, r.Body, r.Header)
		}
	}
	for _, b := range [][]byte{im.Config, im.Layer} {
		r := c.do("GET", "/v2/ws/app/blobs/"+string(digest(b)), nil).want(t, http.StatusOK)
		if !bytes.Equal(r.Body, b) || r.Header.Get("Docker-Content-Digest") != string(digest(b)) {
			t.Fatalf("GET blob: %q %v", r.Body, r.Header)
		}
		r = c.do("HEAD", "/v2/ws/app/blobs/"+string(digest(b)), nil).want(t, http.StatusOK)
		if r.Header.Get("Content-Length") != fmt.Sprint(len(b)) {
			t.Fatalf("HEAD blob Content-Length = %q, want %d", r.Header.Get("Content-Length"), len(b))
		}
	}
	r = c.do("GET", "/v2/ws/app/blobs/"+string(digest(im.Layer)), nil, "Range", "bytes=3-7").want(t, http.StatusPartialContent)
	if string(r.Body) != string(im.Layer[3:8]) || r.Header.Get("Content-Range") != fmt.Sprintf("bytes 3-7/%d", len(im.Layer)) {
		t.Fatalf("a range: %q %v", r.Body, r.Header)
	}
	c.do("GET", "/v2/ws/app/blobs/"+string(digest(im.Layer)), nil, "Range", "bytes=100-200").want(t, http.StatusRequestedRangeNotSatisfiable)
	if r := c.do("GET", "/v2/", nil).want(t, http.StatusOK); r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("ping headers: %v", r.Header)
	}
	// Another repository does not see the blobs.
	c.do("HEAD", "/v2/ws/other/blobs/"+string(digest(im.Layer)), nil).want(t, http.StatusNotFound)
	c.do("GET", "/v2/ws/other/manifests/v1", nil).wantError(t, http.StatusNotFound, registry.ManifestUnknown)
}

func TestChunkedUpload(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	content := bytes.Repeat([]byte("0123456789"), 100)
	d := digest(content)

	r := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/ws/app/blobs/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	r = c.do("PATCH", loc, content[:400], "Content-Range", "0-399", "Content-Type", "application/octet-stream").want(t, http.StatusAccepted)
	if r.Header.Get("Range") != "0-399" {
		t.Fatalf("Range after the first chunk: %q", r.Header.Get("Range"))
	}
	loc = r.Header.Get("Location")
	// A chunk out of order is refused, and the session goes on.
	r = c.do("PATCH", loc, content[500:600], "Content-Range", "500-599")
	r.wantError(t, http.StatusRequestedRangeNotSatisfiable, registry.BlobUploadInvalid)
	if r.Header.Get("Range") != "0-399" {
		t.Fatalf("Range of a refused chunk: %q", r.Header.Get("Range"))
	}
	// A Content-Range that does not match the chunk's length.
	c.do("PATCH", loc, content[400:450], "Content-Range", "400-499").wantError(t, http.StatusBadRequest, registry.SizeInvalid)
	r = c.do("GET", loc, nil).want(t, http.StatusNoContent)
	if r.Header.Get("Range") != "0-399" {
		t.Fatalf("upload status Range: %q", r.Header.Get("Range"))
	}
	// A chunk without Content-Range (a stream) appends.
	r = c.do("PATCH", loc, content[400:900]).want(t, http.StatusAccepted)
	if r.Header.Get("Range") != "0-899" {
		t.Fatalf("Range after a streamed chunk: %q", r.Header.Get("Range"))
	}
	// The last chunk comes with the closing PUT.
	r = c.do("PUT", loc+"?digest="+string(d), content[900:], "Content-Range", "900-999").want(t, http.StatusCreated)
	if r.Header.Get("Location") != "/v2/ws/app/blobs/"+string(d) || r.Header.Get("Docker-Content-Digest") != string(d) {
		t.Fatalf("closing headers: %v", r.Header)
	}
	if got := c.do("GET", "/v2/ws/app/blobs/"+string(d), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, content) {
		t.Fatalf("the assembled blob differs (%d bytes)", len(got))
	}
	c.do("GET", loc, nil).wantError(t, http.StatusNotFound, registry.BlobUploadUnknown)

	t.Run("sha512", func(t *testing.T) {
		d := registry.DigestOf("sha512", content)
		loc := c.do("POST", "/v2/ws/app/blobs/uploads/?digest-algorithm=sha512", nil).want(t, http.StatusAccepted).Header.Get("Location")
		loc = c.do("PATCH", loc, content).want(t, http.StatusAccepted).Header.Get("Location")
		c.do("PUT", loc+"?digest="+string(d), nil).want(t, http.StatusCreated)
		if got := c.do("GET", "/v2/ws/app/blobs/"+string(d), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, content) {
			t.Fatal("the sha512 blob differs")
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
		c.do("DELETE", loc, nil).want(t, http.StatusNoContent)
		c.do("PATCH", loc, content).wantError(t, http.StatusNotFound, registry.BlobUploadUnknown)
	})
	t.Run("SessionOfAnotherRepository", func(t *testing.T) {
		loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
		other := strings.Replace(loc, "/ws/app/", "/ws/other/", 1)
		c.do("PATCH", other, content).wantError(t, http.StatusNotFound, registry.BlobUploadUnknown)
	})
	t.Run("EmptyBlob", func(t *testing.T) {
		loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
		c.do("PUT", loc+"?digest="+string(digest(nil)), nil).want(t, http.StatusCreated)
		r := c.do("GET", "/v2/ws/app/blobs/"+string(digest(nil)), nil).want(t, http.StatusOK)
		if len(r.Body) != 0 || r.Header.Get("Content-Length") != "0" {
			t.Fatalf("empty blob: %q %v", r.Body, r.Header)
		}
	})
}

// visible fails if d can be pulled from repo or its content is stored.
func (reg *testRegistry) wantInvisible(t *testing.T, c *client, repo string, d registry.Digest) {
	t.Helper()
	c.do("HEAD", "/v2/"+repo+"/blobs/"+string(d), nil).want(t, http.StatusNotFound)
	if _, err := reg.Blobs.Stat(t.Context(), d); err == nil {
		t.Fatalf("content %s is stored after a refused push", d)
	}
}

func TestCorruptBlobPushes(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	content := []byte("the real content")
	claimed := digest([]byte("what the client claims"))

	c.do("POST", "/v2/ws/app/blobs/uploads/?digest="+string(claimed), content).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	reg.wantInvisible(t, c, "ws/app", claimed)

	loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	c.do("PUT", loc+"?digest="+string(claimed), content).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	reg.wantInvisible(t, c, "ws/app", claimed)
	c.do("GET", loc, nil).wantError(t, http.StatusNotFound, registry.BlobUploadUnknown) // the session ended

	loc = c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	loc = c.do("PATCH", loc, content[:5]).want(t, http.StatusAccepted).Header.Get("Location")
	loc = c.do("PATCH", loc, content[5:]).want(t, http.StatusAccepted).Header.Get("Location")
	c.do("PUT", loc+"?digest="+string(claimed), nil).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	reg.wantInvisible(t, c, "ws/app", claimed)

	c.do("POST", "/v2/ws/app/blobs/uploads/?digest=sha256:abc", content).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	c.do("POST", "/v2/ws/app/blobs/uploads/?digest=md5:"+strings.Repeat("a", 32), content).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	c.do("POST", "/v2/ws/app/blobs/uploads/?digest-algorithm=md5", nil).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
	loc = c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	c.do("PUT", loc, content).wantError(t, http.StatusBadRequest, registry.DigestInvalid) // no ?digest=

	t.Run("TruncatedLastChunk", func(t *testing.T) {
		// A closing PUT cut short leaves the session as it was, to be resumed.
		whole := []byte("first, second")
		loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
		loc = c.do("PATCH", loc, whole[:7]).want(t, http.StatusAccepted).Header.Get("Location")
		resp := rawRequest(t, reg.Host, fmt.Sprintf("PUT %s?digest=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"+
			"Content-Length: 100\r\n\r\n%s", loc, digest(whole), reg.Host, basic("ana", "secret"), whole[7:10]))
		if !strings.HasPrefix(resp, "HTTP/1.1 400 ") || !strings.Contains(resp, registry.BlobUploadInvalid) {
			t.Fatalf("a truncated closing PUT answered:\n%s", resp)
		}
		reg.wantInvisible(t, c, "ws/app", digest(whole))
		if r := c.do("GET", loc, nil).want(t, http.StatusNoContent); r.Header.Get("Range") != "0-6" {
			t.Fatalf("the session after a truncated PUT: Range %q", r.Header.Get("Range"))
		}
		c.do("PUT", loc+"?digest="+string(digest(whole)), whole[7:]).want(t, http.StatusCreated)
	})
	t.Run("Truncated", func(t *testing.T) {
		// The client announces 1000 bytes, sends 16 and closes its side.
		d := digest(bytes.Repeat([]byte("x"), 1000))
		before := walkStore(t, reg)
		resp := rawRequest(t, reg.Host, fmt.Sprintf("POST /v2/ws/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\n"+
			"Authorization: Basic %s\r\nContent-Length: 1000\r\n\r\n%s", d, reg.Host, basic("ana", "secret"), strings.Repeat("x", 16)))
		if !strings.HasPrefix(resp, "HTTP/1.1 400 ") || !strings.Contains(resp, registry.BlobUploadInvalid) {
			t.Fatalf("a truncated push answered:\n%s", resp)
		}
		reg.wantInvisible(t, c, "ws/app", d)

		// The client announces fewer bytes than the content it claims.
		d = digest(bytes.Repeat([]byte("y"), 32))
		resp = rawRequest(t, reg.Host, fmt.Sprintf("POST /v2/ws/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\n"+
			"Authorization: Basic %s\r\nContent-Length: 16\r\n\r\n%s", d, reg.Host, basic("ana", "secret"), strings.Repeat("y", 32)))
		if !strings.HasPrefix(resp, "HTTP/1.1 400 ") || !strings.Contains(resp, registry.DigestInvalid) {
			t.Fatalf("a short Content-Length answered:\n%s", resp)
		}
		reg.wantInvisible(t, c, "ws/app", d)
		if got := walkStore(t, reg); len(got) != len(before) {
			t.Fatalf("the truncated push left content: %v, before it %v", got, before)
		}
	})
}

// walkStore lists what the blob store holds.
func walkStore(t *testing.T, reg *testRegistry) []registry.Digest {
	var got []registry.Digest
	if err := reg.Blobs.Walk(t.Context(), func(b registry.BlobInfo) error {
		got = append(got, b.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestManifestValidation(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	im := newImage("v", nil)
	c.pushBlob("ws/app", im.Config)
	layerDesc := descriptor("application/vnd.oci.image.layer.v1.tar", im.Layer)
	configDesc := descriptor("application/vnd.oci.image.config.v1+json", im.Config)
	manifest := func(fields map[string]any) []byte {
		m := map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeImageManifest, "config": configDesc, "layers": []any{}}
		for k, v := range fields {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return b
	}
	wrongSize := descriptor("application/vnd.oci.image.config.v1+json", im.Config)
	wrongSize["size"] = len(im.Config) + 1
	for _, c2 := range []struct {
		name, contentType string
		body              []byte
		status            int
		code              string
	}{
		{"a missing layer", registry.MediaTypeImageManifest, manifest(map[string]any{"layers": []any{layerDesc}}), 400, registry.ManifestBlobUnknown},
		{"a missing config", registry.MediaTypeImageManifest, manifest(map[string]any{"config": descriptor("application/vnd.oci.image.config.v1+json", []byte("{}x"))}), 400, registry.ManifestBlobUnknown},
		{"an index of a missing manifest", registry.MediaTypeImageIndex,
			[]byte(`{"schemaVersion":2,"mediaType":"` + registry.MediaTypeImageIndex + `","manifests":[{"mediaType":"` + registry.MediaTypeImageManifest + `","digest":"` + string(im.Digest) + `","size":10}]}`),
			400, registry.ManifestBlobUnknown},
		{"a wrong size", registry.MediaTypeImageManifest, manifest(map[string]any{"config": wrongSize}), 400, registry.ManifestInvalid},
		{"not JSON", registry.MediaTypeImageManifest, []byte("{not json"), 400, registry.ManifestInvalid},
		{"an unknown media type", "application/vnd.example+json", manifest(map[string]any{"mediaType": nil}), 400, registry.ManifestInvalid},
		{"a Content-Type other than its mediaType", registry.MediaTypeImageIndex, manifest(nil), 400, registry.ManifestInvalid},
		{"schema version 1", registry.MediaTypeImageManifest, manifest(map[string]any{"schemaVersion": 1}), 400, registry.ManifestInvalid},
		{"no config", registry.MediaTypeImageManifest, manifest(map[string]any{"config": nil}), 400, registry.ManifestInvalid},
		{"an invalid layer digest", registry.MediaTypeImageManifest,
			manifest(map[string]any{"layers": []any{map[string]any{"mediaType": "x", "digest": "sha256:zz", "size": 1}}}), 400, registry.ManifestInvalid},
		{"data that is not the content", registry.MediaTypeImageManifest,
			manifest(map[string]any{"config": map[string]any{"mediaType": "x", "digest": digest(im.Config), "size": len(im.Config), "data": "e30="}}), 400, registry.ManifestInvalid},
	} {
		t.Run(c2.name, func(t *testing.T) {
			c.do("PUT", "/v2/ws/app/manifests/bad", c2.body, "Content-Type", c2.contentType).wantError(t, c2.status, c2.code)
			c.do("HEAD", "/v2/ws/app/manifests/bad", nil).want(t, http.StatusNotFound)
			c.do("HEAD", "/v2/ws/app/manifests/"+string(digest(c2.body)), nil).want(t, http.StatusNotFound)
		})
	}

	t.Run("DigestMismatch", func(t *testing.T) {
		body := manifest(nil)
		c.do("PUT", "/v2/ws/app/manifests/"+string(digest([]byte("other"))), body, "Content-Type", registry.MediaTypeImageManifest).
			wantError(t, http.StatusBadRequest, registry.DigestInvalid)
		c.do("PUT", "/v2/ws/app/manifests/"+string(registry.DigestOf("sha512", body)), body, "Content-Type", registry.MediaTypeImageManifest).
			want(t, http.StatusCreated)
	})
	t.Run("TooLarge", func(t *testing.T) {
		body := manifest(map[string]any{"annotations": map[string]string{"big": strings.Repeat("x", registry.DefaultMaxManifestSize)}})
		c.do("PUT", "/v2/ws/app/manifests/big", body, "Content-Type", registry.MediaTypeImageManifest).
			wantError(t, http.StatusRequestEntityTooLarge, registry.SizeInvalid)
	})
	t.Run("InvalidTag", func(t *testing.T) {
		c.do("PUT", "/v2/ws/app/manifests/-bad", manifest(nil), "Content-Type", registry.MediaTypeImageManifest).
			wantError(t, http.StatusBadRequest, registry.TagInvalid)
		c.do("PUT", "/v2/ws/app/manifests/"+string(digest(manifest(nil)))+"?tag=.bad", manifest(nil), "Content-Type", registry.MediaTypeImageManifest).
			wantError(t, http.StatusBadRequest, registry.TagInvalid)
		c.do("GET", "/v2/ws/app/manifests/"+strings.Repeat("a", 129), nil).wantError(t, http.StatusBadRequest, registry.TagInvalid)
	})
	t.Run("MediaTypeFromTheBody", func(t *testing.T) {
		// Without a Content-Type the manifest's own mediaType is used.
		r := c.do("PUT", "/v2/ws/app/manifests/nohdr", manifest(nil)).want(t, http.StatusCreated)
		got := c.do("GET", "/v2/ws/app/manifests/nohdr", nil).want(t, http.StatusOK)
		if got.Header.Get("Content-Type") != registry.MediaTypeImageManifest || got.Header.Get("Docker-Content-Digest") != r.Header.Get("Docker-Content-Digest") {
			t.Fatalf("GET after a push without Content-Type: %v", got.Header)
		}
	})
	t.Run("NonDistributableLayers", func(t *testing.T) {
		foreign := descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", []byte("elsewhere"))
		foreign["urls"] = []string{"https://example.com/layer"}
		c.do("PUT", "/v2/ws/app/manifests/foreign", manifest(map[string]any{"layers": []any{foreign}}), "Content-Type", registry.MediaTypeImageManifest).
			want(t, http.StatusCreated)
	})
	t.Run("DockerManifest", func(t *testing.T) {
		body := []byte(`{"schemaVersion":2,"mediaType":"` + registry.MediaTypeDockerManifest + `","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` +
			string(digest(im.Config)) + `","size":` + fmt.Sprint(len(im.Config)) + `},"layers":[]}`)
		c.do("PUT", "/v2/ws/app/manifests/docker", body, "Content-Type", registry.MediaTypeDockerManifest).want(t, http.StatusCreated)
		if got := c.do("GET", "/v2/ws/app/manifests/docker", nil).want(t, http.StatusOK); got.Header.Get("Content-Type") != registry.MediaTypeDockerManifest {
			t.Fatalf("Content-Type %q", got.Header.Get("Content-Type"))
		}
	})
}

func TestNames(t *testing.T) {
	for _, name := range []string{"ws/app", "ws/a/b/c", "w-s/a.b_c__d", "a0/b--c"} {
		if err := registry.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"app", "WS/app", "ws//app", "ws/app/", "ws/-app", "ws/app.", "ws/a___b", "ws/a..b", "ws/" + strings.Repeat("a", 253)} {
		if err := registry.ValidateName(name); err == nil {
			t.Errorf("ValidateName(%q) accepted it", name)
		}
	}
	for _, tag := range []string{"v1", "latest", "_x", "1.2.3-rc_1", strings.Repeat("a", 128)} {
		if err := registry.ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q): %v", tag, err)
		}
	}
	for _, tag := range []string{"", ".x", "-x", "a/b", "a:b", strings.Repeat("a", 129)} {
		if err := registry.ValidateTag(tag); err == nil {
			t.Errorf("ValidateTag(%q) accepted it", tag)
		}
	}
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	c.do("GET", "/v2/app/manifests/v1", nil).wantError(t, http.StatusBadRequest, registry.NameInvalid)
	c.do("GET", "/v2/WS/App/tags/list", nil).wantError(t, http.StatusBadRequest, registry.NameInvalid)
	c.do("POST", "/v2/ws/Bad/blobs/uploads/", nil).wantError(t, http.StatusBadRequest, registry.NameInvalid)
	c.do("GET", "/v2/ws/app/nothing", nil).want(t, http.StatusNotFound)
	c.do("POST", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusMethodNotAllowed, registry.Unsupported)
}

// bearerToken runs the token flow the way docker does: the 401's challenge names the realm, which
// hands out a token for basic credentials.
func bearerToken(t *testing.T, reg *testRegistry, path, user, pass string) string {
	t.Helper()
	r := reg.client(t, "", "").do("GET", path, nil).want(t, http.StatusUnauthorized)
	var realm, service, scope string
	for _, ch := range r.Header.Values("WWW-Authenticate") {
		if rest, ok := strings.CutPrefix(ch, "Bearer "); ok {
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				v = strings.Trim(v, `"`)
				switch k {
				case "realm":
					realm = v
				case "service":
					service = v
				case "scope":
					scope = v
				}
			}
		}
	}
	if realm == "" {
		t.Fatalf("no Bearer challenge in %v", r.Header.Values("WWW-Authenticate"))
	}
	u, err := url.Parse(realm)
	if err != nil || !u.IsAbs() {
		t.Fatalf("realm %q is not an absolute URL", realm)
	}
	u.RawQuery = url.Values{"service": {service}, "scope": {scope}}.Encode()
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" || tok.Token != tok.AccessToken || tok.ExpiresIn < 60 {
		t.Fatalf("token response %+v, %v", tok, err)
	}
	return tok.Token
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestAuthorization(t *testing.T) {
	clk := &clock{now: registrytest.NewClock().Now()}
	reg := MustServe(t, func(o *registry.Options) { o.Now = clk.Now })
	reg.Auth.grant("bob", "pw", "ws/app", registry.Pull)
	ana := reg.client(t, "ana", "secret")
	ana.pushImage("ws/app", "v1", newImage("x", nil)).want(t, http.StatusCreated)

	r := reg.client(t, "", "").do("GET", "/v2/ws/app/manifests/v1", nil)
	r.wantError(t, http.StatusUnauthorized, registry.Unauthorized)
	ch := r.Header.Values("WWW-Authenticate")
	if len(ch) != 2 || !strings.HasPrefix(ch[0], `Bearer realm="`+reg.URL+`/v2/token"`) ||
		!strings.Contains(ch[0], `scope="repository:ws/app:pull"`) || !strings.HasPrefix(ch[1], "Basic ") {
		t.Fatalf("challenges %q", ch)
	}
	if ch := reg.client(t, "", "").do("POST", "/v2/ws/app/blobs/uploads/", nil).Header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="repository:ws/app:pull,push"`) {
		t.Fatalf("push challenge %q", ch)
	}
	reg.client(t, "ana", "wrong").do("GET", "/v2/", nil).wantError(t, http.StatusUnauthorized, registry.Unauthorized)

	t.Run("Token", func(t *testing.T) {
		tok := bearerToken(t, reg, "/v2/ws/app/manifests/v1", "bob", "pw")
		bob := &client{t: t, base: reg.URL, bearer: tok}
		bob.do("GET", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusOK)
		bob.do("GET", "/v2/", nil).want(t, http.StatusOK)
		// The token names bob; what bob may do is decided at each request.
		bob.do("DELETE", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusForbidden, registry.Denied)
		bob.do("GET", "/v2/ws/secret/tags/list", nil).wantError(t, http.StatusNotFound, registry.NameUnknown)
		if tok := bearerToken(t, reg, "/v2/ws/app/manifests/v1", "bob", "wrong"); tok != "" {
			t.Fatal("a token was handed out for a wrong password")
		}
		// A token cannot buy another token.
		bob.do("GET", "/v2/token?service=atelier", nil).wantError(t, http.StatusUnauthorized, registry.Unauthorized)

		tampered := tok[:len(tok)-2] + "xx"
		(&client{t: t, base: reg.URL, bearer: tampered}).do("GET", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusUnauthorized, registry.Unauthorized)
		clk.Add(registry.DefaultTokenTTL)
		r := bob.do("GET", "/v2/ws/app/manifests/v1", nil)
		r.wantError(t, http.StatusUnauthorized, registry.Unauthorized)
		if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("an expired token's challenge: %q", r.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("OAuthPasswordGrant", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"pw"}, "service": {"atelier"}}
		resp, err := http.PostForm(reg.URL+"/v2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("password grant: %d %v", resp.StatusCode, err)
		}
		(&client{t: t, base: reg.URL, bearer: tok.AccessToken}).do("GET", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusOK)
	})
	t.Run("Basic", func(t *testing.T) {
		bob := reg.client(t, "bob", "pw")
		bob.do("GET", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusOK)
		bob.do("PUT", "/v2/ws/app/manifests/v2", newImage("y", nil).Manifest).wantError(t, http.StatusForbidden, registry.Denied)
		bob.do("POST", "/v2/ws/app/blobs/uploads/", nil).wantError(t, http.StatusForbidden, registry.Denied)
		bob.do("DELETE", "/v2/ws/app/blobs/"+string(digest([]byte("x"))), nil).wantError(t, http.StatusForbidden, registry.Denied)
		bob.do("GET", "/v2/other/app/manifests/v1", nil).wantError(t, http.StatusNotFound, registry.NameUnknown)
	})
	t.Run("Anonymous", func(t *testing.T) {
		reg.Auth.mu.Lock()
		reg.Auth.anonymous["ws/app"] = []registry.Action{registry.Pull}
		reg.Auth.mu.Unlock()
		defer func() {
			reg.Auth.mu.Lock()
			clear(reg.Auth.anonymous)
			reg.Auth.mu.Unlock()
		}()
		anon := reg.client(t, "", "")
		anon.do("GET", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusOK)
		anon.do("DELETE", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusForbidden, registry.Denied)
		resp, err := http.Get(reg.URL + "/v2/token?service=atelier&scope=repository:ws/app:pull")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("an anonymous token: %d", resp.StatusCode)
		}
	})
}

func TestMount(t *testing.T) {
	reg := MustServe(t)
	reg.Auth.grant("bob", "pw", "ws/bob", registry.Pull, registry.Push)
	ana, bob := reg.client(t, "ana", "secret"), reg.client(t, "bob", "pw")
	secret := []byte("ana's private layer")
	d := ana.pushBlob("ws/private", secret)

	// Bob may not read ws/private: his mount becomes an upload session, revealing nothing.
	r := bob.do("POST", "/v2/ws/bob/blobs/uploads/?mount="+string(d)+"&from=ws/private", nil).want(t, http.StatusAccepted)
	if !strings.Contains(r.Header.Get("Location"), "/blobs/uploads/") {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	bob.do("POST", "/v2/ws/bob/blobs/uploads/?mount="+string(d), nil).want(t, http.StatusAccepted)
	bob.do("HEAD", "/v2/ws/bob/blobs/"+string(d), nil).want(t, http.StatusNotFound)

	// Ana may.
	r = ana.do("POST", "/v2/ws/copy/blobs/uploads/?mount="+string(d)+"&from=ws/private", nil).want(t, http.StatusCreated)
	if r.Header.Get("Location") != "/v2/ws/copy/blobs/"+string(d) || r.Header.Get("Docker-Content-Digest") != string(d) {
		t.Fatalf("mount headers %v", r.Header)
	}
	if got := ana.do("GET", "/v2/ws/copy/blobs/"+string(d), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, secret) {
		t.Fatal("the mounted blob differs")
	}
	// Without from, from any repository ana may read.
	ana.do("POST", "/v2/ws/another/blobs/uploads/?mount="+string(d), nil).want(t, http.StatusCreated)
	// A blob the source does not have.
	ana.do("POST", "/v2/ws/copy/blobs/uploads/?mount="+string(digest([]byte("none")))+"&from=ws/private", nil).want(t, http.StatusAccepted)
	ana.do("POST", "/v2/ws/copy/blobs/uploads/?mount="+string(d)+"&from=Bad", nil).wantError(t, http.StatusBadRequest, registry.NameInvalid)
}

func TestTagsList(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	c.do("GET", "/v2/ws/app/tags/list", nil).wantError(t, http.StatusNotFound, registry.NameUnknown)
	im := newImage("t", nil)
	c.pushImage("ws/app", "b", im).want(t, http.StatusCreated)
	for _, tag := range []string{"a", "C", "c"} {
		c.do("PUT", "/v2/ws/app/manifests/"+tag, im.Manifest, "Content-Type", registry.MediaTypeImageManifest).want(t, http.StatusCreated)
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		r := c.do("GET", "/v2/ws/app/tags/list"+query, nil).want(t, http.StatusOK)
		var body struct {
			Name string
			Tags []string
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || body.Name != "ws/app" || body.Tags == nil {
			t.Fatalf("tags list %s: %v", r.Body, err)
		}
		return body.Tags, r.Header.Get("Link")
	}
	if tags, link := list(""); !slices.Equal(tags, []string{"C", "a", "b", "c"}) || link != "" {
		t.Fatalf("all tags = %v (Link %q)", tags, link)
	}
	tags, link := list("?n=2")
	if !slices.Equal(tags, []string{"C", "a"}) || link != `</v2/ws/app/tags/list?last=a&n=2>; rel="next"` {
		t.Fatalf("first page = %v, Link %q", tags, link)
	}
	if tags, link := list("?n=2&last=a"); !slices.Equal(tags, []string{"b", "c"}) || link != "" {
		t.Fatalf("second page = %v, Link %q", tags, link)
	}
	if tags, _ := list("?last=b"); !slices.Equal(tags, []string{"c"}) {
		t.Fatalf("after b = %v", tags)
	}
	if tags, link := list("?n=0"); len(tags) != 0 || link != "" {
		t.Fatalf("n=0 = %v, Link %q", tags, link)
	}
	c.do("GET", "/v2/ws/app/tags/list?n=-1", nil).want(t, http.StatusBadRequest)
	c.do("GET", "/v2/ws/app/tags/list?n=x", nil).want(t, http.StatusBadRequest)
}

func TestCatalog(t *testing.T) {
	reg := MustServe(t)
	reg.Auth.grant("bob", "pw", "ws/b", registry.Pull)
	ana := reg.client(t, "ana", "secret")
	for _, repo := range []string{"ws/a", "ws/b", "ws/b2", "ws/c"} {
		ana.pushBlob(repo, []byte(repo))
	}
	list := func(c *client, query string) ([]string, string) {
		t.Helper()
		r := c.do("GET", "/v2/_catalog"+query, nil).want(t, http.StatusOK)
		var body struct{ Repositories []string }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		return body.Repositories, r.Header.Get("Link")
	}
	if got, _ := list(ana, ""); !slices.Equal(got, []string{"ws/a", "ws/b", "ws/b2", "ws/c"}) {
		t.Fatalf("ana's catalog = %v", got)
	}
	if got, link := list(ana, "?n=2"); !slices.Equal(got, []string{"ws/a", "ws/b"}) || !strings.Contains(link, "last=ws%2Fb") {
		t.Fatalf("first page = %v, Link %q", got, link)
	}
	if got, _ := list(reg.client(t, "bob", "pw"), ""); !slices.Equal(got, []string{"ws/b", "ws/b2"}) {
		t.Fatalf("bob's catalog = %v, want only what he may pull", got)
	}
	reg.client(t, "", "").do("GET", "/v2/_catalog", nil).wantError(t, http.StatusUnauthorized, registry.Unauthorized)
}

func TestReferrers(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	subject := newImage("subject", nil)
	c.pushImage("ws/app", "v1", subject).want(t, http.StatusCreated)
	subjectDesc := map[string]any{"mediaType": registry.MediaTypeImageManifest, "digest": subject.Digest, "size": len(subject.Manifest)}
	sbom := newImage("sbom", map[string]any{"artifactType": "application/vnd.example.sbom", "subject": subjectDesc, "annotations": map[string]string{"a": "1"}})
	sig := newImage("sig", map[string]any{"subject": subjectDesc})
	for _, im := range []image{sbom, sig} {
		r := c.pushImage("ws/app", string(im.Digest), im).want(t, http.StatusCreated)
		if r.Header.Get("OCI-Subject") != string(subject.Digest) {
			t.Fatalf("OCI-Subject = %q", r.Header.Get("OCI-Subject"))
		}
	}
	list := func(query string) ([]registry.Descriptor, http.Header) {
		t.Helper()
		r := c.do("GET", "/v2/ws/app/referrers/"+string(subject.Digest)+query, nil).want(t, http.StatusOK)
		var idx struct {
			SchemaVersion int
			MediaType     string
			Manifests     []registry.Descriptor
		}
		if err := json.Unmarshal(r.Body, &idx); err != nil || idx.SchemaVersion != 2 || idx.MediaType != registry.MediaTypeImageIndex ||
			r.Header.Get("Content-Type") != registry.MediaTypeImageIndex {
			t.Fatalf("referrers %s %v: %v", r.Body, r.Header, err)
		}
		return idx.Manifests, r.Header
	}
	got, _ := list("")
	want := []registry.Descriptor{
		{MediaType: registry.MediaTypeImageManifest, Digest: sbom.Digest, Size: int64(len(sbom.Manifest)), ArtifactType: "application/vnd.example.sbom", Annotations: map[string]string{"a": "1"}},
		{MediaType: registry.MediaTypeImageManifest, Digest: sig.Digest, Size: int64(len(sig.Manifest)), ArtifactType: "application/vnd.oci.image.config.v1+json"},
	}
	slices.SortFunc(want, func(a, b registry.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	if !slices.EqualFunc(got, want, func(a, b registry.Descriptor) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Fatalf("referrers = %+v, want %+v", got, want)
	}
	got, h := list("?artifactType=application/vnd.example.sbom")
	if len(got) != 1 || got[0].Digest != sbom.Digest || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers = %+v, %v", got, h)
	}
	if got, _ := c.do("GET", "/v2/ws/app/referrers/"+string(digest([]byte("nothing"))), nil).want(t, http.StatusOK), 0; got.Status != 200 {
		t.Fatal()
	}
	c.do("GET", "/v2/ws/app/referrers/sha256:nope", nil).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
}

func TestDeletes(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	im := newImage("d", nil)
	c.pushImage("ws/app", "v1", im).want(t, http.StatusCreated)
	c.do("PUT", "/v2/ws/app/manifests/v2", im.Manifest, "Content-Type", registry.MediaTypeImageManifest).want(t, http.StatusCreated)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeImageIndex,
		"manifests": []any{descriptor(registry.MediaTypeImageManifest, im.Manifest)}})
	c.do("PUT", "/v2/ws/app/manifests/multi", index, "Content-Type", registry.MediaTypeImageIndex).want(t, http.StatusCreated)

	layer := "/v2/ws/app/blobs/" + string(digest(im.Layer))
	c.do("DELETE", layer, nil).wantError(t, http.StatusConflict, registry.Denied)
	c.do("DELETE", "/v2/ws/app/manifests/"+string(im.Digest), nil).wantError(t, http.StatusConflict, registry.Denied)

	c.do("DELETE", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusAccepted)
	c.do("GET", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusNotFound, registry.ManifestUnknown)
	c.do("GET", "/v2/ws/app/manifests/v2", nil).want(t, http.StatusOK)
	c.do("DELETE", "/v2/ws/app/manifests/v1", nil).wantError(t, http.StatusNotFound, registry.ManifestUnknown)

	c.do("DELETE", "/v2/ws/app/manifests/multi", nil).want(t, http.StatusAccepted)                  // the tag
	c.do("DELETE", "/v2/ws/app/manifests/"+string(digest(index)), nil).want(t, http.StatusAccepted) // the index
	c.do("DELETE", "/v2/ws/app/manifests/"+string(im.Digest), nil).want(t, http.StatusAccepted)     // the image, with v2
	c.do("GET", "/v2/ws/app/manifests/v2", nil).wantError(t, http.StatusNotFound, registry.ManifestUnknown)
	c.do("HEAD", "/v2/ws/app/manifests/"+string(im.Digest), nil).want(t, http.StatusNotFound)

	c.do("DELETE", layer, nil).want(t, http.StatusAccepted)
	c.do("HEAD", layer, nil).want(t, http.StatusNotFound)
	c.do("DELETE", layer, nil).wantError(t, http.StatusNotFound, registry.BlobUnknown)
	c.do("DELETE", "/v2/ws/app/blobs/sha256:x", nil).wantError(t, http.StatusBadRequest, registry.DigestInvalid)
}

// TestRestart checks a registry reopened over the same directories serves what was pushed, and
// goes on with an upload session begun before.
func TestRestart(t *testing.T) {
	reg := MustServe(t)
	c := reg.client(t, "ana", "secret")
	im := newImage("r", nil)
	c.pushImage("ws/app", "v1", im).want(t, http.StatusCreated)
	loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	loc = c.do("PATCH", loc, []byte("part one, ")).want(t, http.StatusAccepted).Header.Get("Location")

	blobs, err := registry.OpenDiskBlobs(reg.Dir+"/blobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := registry.OpenDiskMetadata(reg.Dir + "/meta")
	if err != nil {
		t.Fatal(err)
	}
	reg2 := MustServe(t)
	r2, err := registry.New(registry.Options{Blobs: blobs, Metadata: meta, Authorizer: reg2.Auth})
	if err != nil {
		t.Fatal(err)
	}
	c2 := (&testRegistry{URL: serve(t, r2)}).client(t, "ana", "secret")
	if got := c2.do("GET", "/v2/ws/app/manifests/v1", nil).want(t, http.StatusOK).Body; !bytes.Equal(got, im.Manifest) {
		t.Fatal("the manifest differs after a restart")
	}
	c2.do("GET", "/v2/ws/app/blobs/"+string(digest(im.Layer)), nil).want(t, http.StatusOK)
	whole := []byte("part one, part two")
	loc = c2.do("PATCH", loc, whole[10:]).want(t, http.StatusAccepted).Header.Get("Location")
	c2.do("PUT", loc+"?digest="+string(digest(whole)), nil).want(t, http.StatusCreated)
}
