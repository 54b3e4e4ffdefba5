package registry_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

// stored reports whether the blob store holds content.
func stored(t *testing.T, reg *testRegistry, content []byte) bool {
	t.Helper()
	_, err := reg.Blobs.Stat(t.Context(), digest(content))
	return err == nil
}

func TestCollectGarbage(t *testing.T) { eachStores(t, testCollectGarbage) }

func testCollectGarbage(t *testing.T, stores func(*registry.Options)) {
	clk := &clock{now: registrytest.NewClock().Now()}
	reg := MustServe(t, func(o *registry.Options) {
		o.Now = clk.Now
		o.GCGrace = time.Hour
		o.UploadTTL = 3 * time.Hour
	}, stores)
	c := reg.client(t, "ana", "secret")
	ctx := t.Context()

	im := newImage("kept", nil)
	c.pushImage("ws/app", "v1", im).want(t, http.StatusCreated)
	orphan := []byte("pushed, never referenced")
	c.pushBlob("ws/app", orphan)
	// A finished upload of two chunks leaves them as garbage, and its blob unreferenced.
	one, two := []byte("chunk one, "), []byte("chunk two")
	whole := append(append([]byte{}, one...), two...)
	loc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	loc = c.do("PATCH", loc, one).want(t, http.StatusAccepted).Header.Get("Location")
	loc = c.do("PATCH", loc, two).want(t, http.StatusAccepted).Header.Get("Location")
	c.do("PUT", loc+"?digest="+string(digest(whole)), nil).want(t, http.StatusCreated)
	// A session still going, and one abandoned.
	live1, live2, abandoned := []byte("live, "), []byte("still live"), []byte("abandoned chunk")
	liveLoc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	liveLoc = c.do("PATCH", liveLoc, live1).want(t, http.StatusAccepted).Header.Get("Location")
	deadLoc := c.do("POST", "/v2/ws/app/blobs/uploads/", nil).want(t, http.StatusAccepted).Header.Get("Location")
	c.do("PATCH", deadLoc, abandoned).want(t, http.StatusAccepted)

	clk.Add(2 * time.Hour)
	liveLoc = c.do("PATCH", liveLoc, live2).want(t, http.StatusAccepted).Header.Get("Location")
	clk.Add(2 * time.Hour)
	fresh := []byte("pushed within the grace period")
	c.pushBlob("ws/app", fresh)

	rep, err := reg.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UploadsExpired != 1 || rep.BlobsDeleted != 5 {
		t.Errorf("report %+v, want 1 upload expired and 5 blobs (orphan, two chunks, their blob, the abandoned chunk) deleted", rep)
	}
	for _, b := range [][]byte{orphan, one, two, whole, abandoned} {
		if stored(t, reg, b) {
			t.Errorf("%q survived the collection", b)
		}
	}
	c.do("HEAD", "/v2/ws/app/blobs/"+string(digest(orphan)), nil).want(t, http.StatusNotFound)
	c.do("GET", deadLoc, nil).want(t, http.StatusNotFound)
	for _, b := range [][]byte{im.Config, im.Layer, fresh, live1, live2} {
		if !stored(t, reg, b) {
			t.Errorf("%q was collected", b)
		}
	}
	if got := c.do("GET", "/v2/ws/app/blobs/"+string(digest(im.Layer)), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, im.Layer) {
		t.Fatal("a referenced layer changed")
	}
	c.do("HEAD", "/v2/ws/app/blobs/"+string(digest(fresh)), nil).want(t, http.StatusOK)
	liveWhole := append(append([]byte{}, live1...), live2...)
	c.do("PUT", liveLoc+"?digest="+string(digest(liveWhole)), nil).want(t, http.StatusCreated)
	if got := c.do("GET", "/v2/ws/app/blobs/"+string(digest(liveWhole)), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, liveWhole) {
		t.Fatal("the session that went on through the collection assembled something else")
	}

	// Once the image is deleted its blobs go too.
	c.do("DELETE", "/v2/ws/app/manifests/"+string(im.Digest), nil).want(t, http.StatusAccepted)
	clk.Add(2 * time.Hour)
	if _, err := reg.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{im.Config, im.Layer} {
		if stored(t, reg, b) {
			t.Errorf("%q of a deleted image survived", b)
		}
	}
	c.do("HEAD", "/v2/ws/app/blobs/"+string(digest(im.Layer)), nil).want(t, http.StatusNotFound)
}

// try is a request for goroutines: it reports a transport failure as an error.
func (c *client) try(method, path string, body []byte, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(c.user, c.pass)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestCollectGarbageRacesPushes runs collections back to back, sparing nothing older than a
// nanosecond, while clients push images sharing a config; every image whose manifest push
// succeeded must stay whole. A push the collection overtook fails (MANIFEST_BLOB_UNKNOWN, or 503
// when the content went between being stored and linked) and is pushed again, as clients do.
func TestCollectGarbageRacesPushes(t *testing.T) { eachStores(t, testCollectGarbageRacesPushes) }

func testCollectGarbageRacesPushes(t *testing.T, stores func(*registry.Options)) {
	reg := MustServe(t, func(o *registry.Options) { o.GCGrace = time.Nanosecond }, stores)
	c := reg.client(t, "ana", "secret")
	const pushers, images = 3, 6
	var (
		done      atomic.Bool
		collected atomic.Int64
		retries   atomic.Int64
		mu        sync.Mutex
		pushed    []image
	)
	var gcWG sync.WaitGroup
	gcWG.Go(func() {
		for !done.Load() {
			rep, err := reg.CollectGarbage(t.Context())
			if err != nil {
				t.Errorf("CollectGarbage: %v", err)
				return
			}
			collected.Add(int64(rep.BlobsDeleted))
		}
	})
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := 0; i < images; {
				im := newImageWith([]byte(`{"shared":"config"}`), []byte(fmt.Sprintf("layer %d-%d", p, i)))
				ok := true
				for _, b := range [][]byte{im.Config, im.Layer, []byte(fmt.Sprintf("garbage %d-%d", p, i))} {
					st, body, err := c.try("POST", "/v2/ws/race/blobs/uploads/?digest="+string(digest(b)), b)
					if err != nil || st != http.StatusCreated && st != http.StatusServiceUnavailable {
						t.Errorf("blob push: %d %s %v", st, body, err)
						return
					}
					ok = ok && st == http.StatusCreated
				}
				if ok {
					st, body, err := c.try("PUT", "/v2/ws/race/manifests/"+string(im.Digest), im.Manifest, "Content-Type", registry.MediaTypeImageManifest)
					if err != nil || st != http.StatusCreated && !(st == http.StatusBadRequest && bytes.Contains(body, []byte(registry.ManifestBlobUnknown))) {
						t.Errorf("manifest push: %d %s %v", st, body, err)
						return
					}
					ok = st == http.StatusCreated
				}
				if !ok {
					retries.Add(1)
					continue
				}
				mu.Lock()
				pushed = append(pushed, im)
				mu.Unlock()
				i++
			}
		})
	}
	wg.Wait()
	done.Store(true)
	gcWG.Wait()
	if _, err := reg.CollectGarbage(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d images pushed, %d pushes overtaken and retried, %d blobs collected meanwhile", len(pushed), retries.Load(), collected.Load())
	if collected.Load() == 0 {
		t.Fatal("the collections deleted nothing: they did not race the pushes")
	}
	for _, im := range pushed {
		if got := c.do("GET", "/v2/ws/race/manifests/"+string(im.Digest), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, im.Manifest) {
			t.Fatalf("manifest %s changed", im.Digest)
		}
		for _, b := range [][]byte{im.Config, im.Layer} {
			if got := c.do("GET", "/v2/ws/race/blobs/"+string(digest(b)), nil).want(t, http.StatusOK).Body; !bytes.Equal(got, b) {
				t.Fatalf("blob %s of a pushed image is lost or changed", digest(b))
			}
		}
	}
}

// newImageWith makes an image of a given config and layer.
func newImageWith(config, layer []byte) image {
	im := image{Config: config, Layer: layer}
	im.Manifest = []byte(`{"schemaVersion":2,"mediaType":"` + registry.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		string(digest(config)) + `","size":` + fmt.Sprint(len(config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		string(digest(layer)) + `","size":` + fmt.Sprint(len(layer)) + `}]}`)
	im.Digest = digest(im.Manifest)
	return im
}
