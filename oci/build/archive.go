package build

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ociArchive is an OCI image layout packed in a tar (`podman save --format oci-archive`), read in
// place: the tar is scanned once for where each file's bytes lie, and a blob is read from there,
// so a large base is neither unpacked nor held in memory.
type ociArchive struct {
	path  string
	files map[string]section
}

type section struct{ off, size int64 }

// openTarball scans the tar at name; its files are listed by clean path ("index.json").
func openTarball(name string) (*ociArchive, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a := &ociArchive{path: name, files: map[string]section{}}
	// A tar.Reader over the file itself reads headers block by block and seeks over contents,
	// so after Next the file's offset is where the entry's bytes begin.
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		a.files[path.Clean(strings.TrimPrefix(h.Name, "./"))] = section{off, h.Size}
	}
}

func (a *ociArchive) open(name string) (io.ReadCloser, error) {
	s, ok := a.files[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the archive", name)
	}
	f, err := os.Open(a.path)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, s.off, s.size), f}, nil
}

func (a *ociArchive) read(name string) ([]byte, error) {
	rc, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func blobName(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// pick finds the image for want among the index's manifests (and the indexes it lists).
func (a *ociArchive) pick(ctx context.Context, indexName string, want v1.Platform, seen *[]string) (v1.Image, error) {
	b, err := a.read(indexName)
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", indexName, err)
	}
	for _, d := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case d.MediaType.IsIndex():
			if img, err := a.pick(ctx, blobName(d.Digest), want, seen); img != nil || err != nil {
				return img, err
			}
		case d.MediaType.IsImage():
			raw, err := a.read(blobName(d.Digest))
			if err != nil {
				return nil, err
			}
			img, err := partial.CompressedToImage(&archiveImage{a: a, raw: raw, mt: d.MediaType})
			if err != nil {
				return nil, err
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			if matches(cfg.Platform(), want) {
				return img, nil
			}
			*seen = append(*seen, platformString(cfg.Platform()))
		}
	}
	return nil, nil
}

// archiveImage is one image of an ociArchive.
type archiveImage struct {
	a   *ociArchive
	raw []byte
	mt  types.MediaType
	m   *v1.Manifest
}

func (i *archiveImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *archiveImage) MediaType() (types.MediaType, error) { return i.mt, nil }

func (i *archiveImage) manifest() (*v1.Manifest, error) {
	if i.m == nil {
		m, err := v1.ParseManifest(strings.NewReader(string(i.raw)))
		if err != nil {
			return nil, err
		}
		i.m = m
	}
	return i.m, nil
}

func (i *archiveImage) RawConfigFile() ([]byte, error) {
	m, err := i.manifest()
	if err != nil {
		return nil, err
	}
	return i.a.read(blobName(m.Config.Digest))
}

func (i *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := i.manifest()
	if err != nil {
		return nil, err
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Digest == h {
			return &archiveLayer{a: i.a, d: d}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in the manifest", h)
}

type archiveLayer struct {
	a *ociArchive
	d v1.Descriptor
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error)  { return l.a.open(blobName(l.d.Digest)) }
