package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

// ReadImage returns the image a tag of a repository of the registry's stores points at; its
// blobs are read from the stores as they are needed.
func ReadImage(ctx context.Context, blobs registry.BlobStore, meta registry.Metadata, repo, tag string) (v1.Image, error) {
	d, err := meta.Tag(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	m, err := meta.Manifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	if m.MediaType != string(types.OCIManifestSchema1) && m.MediaType != string(types.DockerManifestSchema2) {
		return nil, atelier.Errorf(atelier.EINVALID, "%s:%s is a %s, not an image manifest", repo, tag, m.MediaType)
	}
	return partial.CompressedToImage(&storedImage{ctx: ctx, blobs: blobs, m: m})
}

// storedImage is an image of the registry's stores, as go-containerregistry reads images.
type storedImage struct {
	ctx   context.Context
	blobs registry.BlobStore
	m     *registry.Manifest
}

func (i *storedImage) RawManifest() ([]byte, error) { return i.m.Body, nil }
func (i *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(i.m.MediaType), nil
}

func (i *storedImage) RawConfigFile() ([]byte, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(i.m.Body))
	if err != nil {
		return nil, err
	}
	rc, err := i.blobs.Open(i.ctx, registry.Digest(mf.Config.Digest.String()), 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(i.m.Body))
	if err != nil {
		return nil, err
	}
	for _, l := range mf.Layers {
		if l.Digest == h {
			return &storedLayer{img: i, desc: l}, nil
		}
	}
	if mf.Config.Digest == h {
		return &storedLayer{img: i, desc: mf.Config}, nil
	}
	return nil, atelier.Errorf(atelier.ENOTFOUND, "blob %s is not part of the image", h)
}

type storedLayer struct {
	img  *storedImage
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	return l.img.blobs.Open(l.img.ctx, registry.Digest(l.desc.Digest.String()), 0, -1)
}

// ExportDocker writes img as a docker-archive tarball (what `docker load` and `podman load`
// read), tagged ref (e.g. 127.0.0.1:8600/default/diabetes-svc:1).
func ExportDocker(img v1.Image, ref string, w io.Writer) error {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "invalid image reference %q: %v", ref, err)
	}
	return tarball.Write(tag, img, w)
}

// ExportOCI writes img as a tarball of an OCI image layout, its index naming it ref
// (org.opencontainers.image.ref.name), with tmp holding the layout while it is written.
func ExportOCI(img v1.Image, ref, tmp string, w io.Writer) error {
	dir, err := os.MkdirTemp(tmp, "export-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return err
	}
	return TarDir(w, dir)
}

// TarDir writes the files and folders under dir as a tar stream with fixed times and owners
// (an OCI layout as an oci-archive, as `podman load` reads it).
func TarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), time.Unix(0, 0), 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
