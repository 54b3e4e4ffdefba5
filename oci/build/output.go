package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Output is where a built image goes: an OCI image layout directory, a registry's stores, or
// both. At least one is required.
type Output struct {
	// LayoutDir is an OCI image layout, created when absent; the image is added to its index
	// under the annotation org.opencontainers.image.ref.name = Tag, replacing an image of the
	// same tag. Blobs are written before the index, which is replaced in one rename, so a
	// failed build leaves the layout as it was; concurrent builds into one layout take turns.
	LayoutDir string
	Tag       string
	// Registry pushes the image into a repository of the workspace registry.
	Registry *RegistryOutput
}

// RegistryOutput names a repository of an oci/registry store and the tags to point at the image.
type RegistryOutput struct {
	Blobs    registry.BlobStore
	Metadata registry.Metadata
	Repo     string
	Tags     []string
	Now      func() time.Time // link times (time.Now when nil)
}

func (o Output) validate() error {
	if o.LayoutDir == "" && o.Registry == nil {
		return atelier.Errorf(atelier.EINVALID, "build: no output (a layout directory or a registry)")
	}
	if o.LayoutDir != "" && o.Tag != "" {
		if err := registry.ValidateTag(o.Tag); err != nil {
			return err
		}
	}
	if r := o.Registry; r != nil {
		if err := registry.ValidateName(r.Repo); err != nil {
			return err
		}
		for _, t := range r.Tags {
			if err := registry.ValidateTag(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o Output) write(ctx context.Context, img v1.Image, files map[v1.Hash]string) error {
	if o.LayoutDir != "" {
		if err := writeLayout(ctx, o.LayoutDir, o.Tag, img, files); err != nil {
			return fmt.Errorf("writing the layout %s: %w", o.LayoutDir, err)
		}
	}
	if o.Registry != nil {
		if err := o.Registry.push(ctx, img, files); err != nil {
			return fmt.Errorf("pushing to %s: %w", o.Registry.Repo, err)
		}
	}
	return nil
}

// ociLayers returns base as an OCI image: the same layers and config under OCI media types
// (a docker-archive base has docker ones, which do not belong in an OCI manifest).
func ociLayers(base v1.Image) (v1.Image, error) {
	mt, err := base.MediaType()
	if err != nil {
		return nil, err
	}
	if mt == types.OCIManifestSchema1 {
		return base, nil
	}
	cfg, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := base.Layers()
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		lmt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		switch lmt {
		case types.DockerLayer:
			lmt = types.OCILayer
		case types.DockerUncompressedLayer:
			lmt = types.OCIUncompressedLayer
		case types.DockerForeignLayer:
			lmt = types.OCIRestrictedLayer
		}
		adds[i] = mutate.Addendum{Layer: l, MediaType: lmt}
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), adds...)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(img, cfg.DeepCopy())
}

type blob struct {
	digest v1.Hash
	size   int64
	open   func() (io.ReadCloser, error)
	path   string // a file with the content, when there is one (linked instead of copied)
}

// blobs lists what an image is made of besides its manifest: config, then layers; files
// names the cache files holding some of them.
func blobs(img v1.Image, files map[v1.Hash]string) ([]blob, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	out := []blob{{digest: m.Config.Digest, size: m.Config.Size, open: bytesOpener(raw)}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for i, l := range layers {
		out = append(out, blob{digest: m.Layers[i].Digest, size: m.Layers[i].Size, open: l.Compressed, path: files[m.Layers[i].Digest]})
	}
	return out, nil
}

func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func writeLayout(ctx context.Context, dir, tag string, img v1.Image, files map[v1.Hash]string) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); os.IsNotExist(err) {
		if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
	}
	bs, err := blobs(img, files)
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	bs = append(bs, blob{digest: d, size: int64(len(raw)), open: bytesOpener(raw)})
	for _, b := range bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := layoutBlob(dir, b); err != nil {
			return fmt.Errorf("blob %s: %w", b.digest, err)
		}
	}
	// The index: the other images stay, one of the same tag is replaced. Builds writing to the
	// same layout at once take turns here (the blobs need no turn: each is renamed into place).
	unlock, err := lockFile(filepath.Join(dir, "index.json.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		if err := json.Unmarshal(b, &index); err != nil {
			return fmt.Errorf("index.json: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: int64(len(raw))}
	if tag != "" {
		desc.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	}
	kept := index.Manifests[:0]
	for _, m := range index.Manifests {
		if tag != "" && m.Annotations["org.opencontainers.image.ref.name"] == tag {
			continue
		}
		if tag == "" && m.Digest == d && len(m.Annotations) == 0 {
			continue
		}
		kept = append(kept, m)
	}
	index.Manifests = append(kept, desc)
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "index.json"), b)
}

// lockFile holds an exclusive lock on name (created if absent) until the returned func is called.
func lockFile(name string) (func(), error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// layoutBlob stores one blob in the layout unless it is there: a cached layer is hard-linked
// (blobs never change), anything else copied and checked against its digest.
func layoutBlob(dir string, b blob) error {
	name := filepath.Join(dir, "blobs", b.digest.Algorithm, b.digest.Hex)
	if fi, err := os.Stat(name); err == nil && fi.Size() == b.size {
		return nil
	}
	if b.path != "" {
		tmp := name + ".link.tmp"
		os.Remove(tmp)
		if err := os.Link(b.path, tmp); err == nil {
			return os.Rename(tmp, name)
		}
	}
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(filepath.Dir(name), ".blob-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := registry.NewHash(b.digest.Algorithm)
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		return err
	}
	if got := registry.SumDigest(b.digest.Algorithm, h); n != b.size || string(got) != b.digest.String() {
		return fmt.Errorf("content is %s (%d bytes), not what the manifest says", got, n)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// storeBlob stores a built layer in the registry's blob store ahead of the push, while the other
// layers are being built; unlinked, it is nothing until the push links it (a failed build
// leaves it to the garbage collector, as a failed push does). Errors are left to the push,
// which stores what is not there.
func (r *RegistryOutput) storeBlob(ctx context.Context, l *cachedLayer) {
	d := registry.Digest(l.meta.Digest.String())
	if _, err := r.Blobs.Stat(ctx, d); err == nil || atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return
	}
	f, err := os.Open(l.path)
	if err != nil {
		return
	}
	defer f.Close()
	r.Blobs.Put(ctx, f, d)
}

// push stores the blobs, links them into the repository, then puts the manifest and its tags
// in one step: a push that fails leaves no manifest or tag (its blobs are garbage collected).
func (r *RegistryOutput) push(ctx context.Context, img v1.Image, files map[v1.Hash]string) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	bs, err := blobs(img, files)
	if err != nil {
		return err
	}
	for _, b := range bs {
		d := registry.Digest(b.digest.String())
		if _, err := r.Blobs.Stat(ctx, d); err != nil {
			if atelier.ErrorCode(err) != atelier.ENOTFOUND {
				return err
			}
			rc, err := b.open()
			if err != nil {
				return err
			}
			_, err = r.Blobs.Put(ctx, rc, d)
			rc.Close()
			if err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
		}
		if err := r.Metadata.LinkBlob(ctx, r.Repo, d, b.size, now()); err != nil {
			return err
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	m, err := registry.ParseManifest(string(types.OCIManifestSchema1), raw)
	if err != nil {
		return err
	}
	m.Digest = registry.DigestOf(registry.Canonical, raw)
	return r.Metadata.PutManifest(ctx, r.Repo, m, r.Tags)
}
