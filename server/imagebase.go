package server

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/build"
	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/sqlite"
)

var (
	_ atelier.BaseImporter      = (*workspaceImages)(nil)
	_ atelier.PushedImageLister = (*workspaceImages)(nil)
)

// workspaceImages is the service's image builder: oci/build's, with the import of base images
// into the workspace registry, the workspaces' default bases (kept in the database) and the
// registry's garbage collection.
type workspaceImages struct {
	*build.Workspaces
	db  *sqlite.DB
	reg *registry.Registry
	log *slog.Logger
	tmp string
	now func() time.Time
	// owner names this server on the lease of the registry's garbage collection.
	owner string
}

// ImportBase stores the image for the server's platform of an uploaded OCI layout (as a tar),
// OCI archive or docker archive as <workspace>/<name>:<tag>. The upload is written to a
// temporary file and read by oci/build's reader (the one --image-base uses); every blob is put
// (checked against its digest) and linked before the manifest and its tag are put in one step,
// so a damaged or truncated archive leaves nothing under the name.
func (w *workspaceImages) ImportBase(ctx context.Context, workspace, name, tag string, r io.Reader) (*atelier.BaseImage, error) {
	f, err := os.CreateTemp(w.tmp, "import-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("receiving the base image: %w", err)
	}
	if n == 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "the upload is empty: send an OCI layout (as a tar), an OCI archive or a docker archive")
	}
	platform := build.DefaultPlatform()
	img, err := build.ImportBase(ctx, f.Name(), platform)
	if err != nil {
		if cut := truncatedTar(f.Name()); cut != nil {
			return nil, cut
		}
		return nil, uploadError(err, f.Name(), platform)
	}
	rep, err := w.push(ctx, workspace+"/"+name, tag, img)
	if err != nil {
		return nil, err
	}
	b := &atelier.BaseImage{Workspace: workspace, Name: name, Tag: tag, Location: workspace + "/" + name + ":" + tag,
		Digest: rep.digest, Size: rep.size, Platform: rep.platform, Format: rep.format,
		ImportedBy: atelier.PrincipalName(ctx), ImportedAt: w.now()}
	if err := w.db.RecordImport(ctx, b); err != nil {
		return nil, err
	}
	return b, nil
}

// uploadError names the upload, not the temporary file, and says which platform this server
// builds for when the image is for another.
func uploadError(err error, tmp string, want v1.Platform) error {
	var ae *atelier.Error
	if !errors.As(err, &ae) {
		return err
	}
	msg := strings.ReplaceAll(ae.Message, "base image "+tmp, "the uploaded base image")
	msg = strings.ReplaceAll(msg, tmp, "the upload")
	msg = strings.ReplaceAll(msg, "not a tar archive: unexpected EOF", "not a whole tar archive (it ends early: truncated, or not a tar at all)")
	if errors.Is(err, build.ErrWrongPlatform) {
		msg += fmt.Sprintf(" (this server builds %s/%s images: import the image for that platform)", want.OS, want.Architecture)
	}
	return &atelier.Error{Code: ae.Code, Message: msg, Cause: ae.Cause}
}

type pushReport struct {
	digest, platform, format string
	size                     int64
}

// push stores img's blobs and links them in repo, then puts its manifest and tag. Every blob is
// put, even one the store holds: that refreshes its time, so a garbage collection running
// meanwhile spares it (see registry.CollectGarbage).
func (w *workspaceImages) push(ctx context.Context, repo, tag string, img v1.Image) (*pushReport, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, damaged("its manifest", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, damaged("its manifest", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, damaged("its configuration", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, damaged("its configuration", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, damaged("its configuration", err)
	}
	rep := &pushReport{platform: cfg.OS + "/" + cfg.Architecture, format: "oci", size: int64(len(raw)) + int64(len(rawCfg))}
	if cfg.Variant != "" {
		rep.platform += "/" + cfg.Variant
	}
	if mt == types.DockerManifestSchema2 {
		rep.format = "docker"
	}
	put := func(what string, d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
		rc, err := open()
		if err != nil {
			return damaged(what, err)
		}
		defer rc.Close()
		info, err := w.Blobs.Put(ctx, rc, registry.Digest(d.String()))
		if atelier.ErrorCode(err) == atelier.EINVALID || errors.Is(err, io.ErrUnexpectedEOF) {
			return damaged(what, err)
		} else if err != nil {
			return fmt.Errorf("storing %s: %w", what, err)
		}
		if size >= 0 && info.Size != size {
			return atelier.Errorf(atelier.EINVALID, "the archive is damaged or truncated: %s has %d bytes, its manifest says %d", what, info.Size, size)
		}
		return w.Metadata.LinkBlob(ctx, repo, info.Digest, info.Size, w.now())
	}
	if err := put("its configuration", cfgName, int64(len(rawCfg)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rawCfg)), nil
	}); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, damaged("its layers", err)
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, damaged(fmt.Sprintf("layer %d", i+1), err)
		}
		size, err := l.Size()
		if err != nil {
			return nil, damaged(fmt.Sprintf("layer %d", i+1), err)
		}
		if err := put(fmt.Sprintf("layer %d (%s)", i+1, d), d, size, l.Compressed); err != nil {
			return nil, err
		}
		rep.size += size
	}
	m, err := registry.ParseManifest(string(mt), raw)
	if err != nil {
		return nil, damaged("its manifest", err)
	}
	m.Digest = registry.DigestOf(registry.Canonical, raw)
	if err := w.Metadata.PutManifest(ctx, repo, m, []string{tag}); err != nil {
		return nil, err
	}
	rep.digest = string(m.Digest)
	return rep, nil
}

func damaged(what string, err error) error {
	return atelier.Errorf(atelier.EINVALID, "the archive is damaged or truncated: %s cannot be read: %s", what, atelier.ErrorMessage(err))
}

// ListBases lists the workspace's imported bases.
func (w *workspaceImages) ListBases(ctx context.Context, workspace string) ([]*atelier.BaseImage, error) {
	return w.db.ListImports(ctx, workspace)
}

// DefaultBase is the workspace's default base, "" when it has none.
func (w *workspaceImages) DefaultBase(ctx context.Context, workspace string) (string, error) {
	return w.db.DefaultBase(ctx, workspace)
}

// SetDefaultBase checks base can be built on (unless it is "") and makes it the workspace's
// default.
func (w *workspaceImages) SetDefaultBase(ctx context.Context, workspace, base string) error {
	if base != "" {
		if err := w.Workspaces.CheckBase(ctx, workspace, base); err != nil {
			return err
		}
	}
	return w.db.SetDefaultBase(ctx, workspace, base, atelier.PrincipalName(ctx))
}

// CollectGarbage runs the registry's garbage collection.
func (w *workspaceImages) CollectGarbage(ctx context.Context) (*atelier.RegistryGCReport, error) {
	rep, err := w.reg.CollectGarbage(ctx)
	if err != nil {
		return nil, err
	}
	return &atelier.RegistryGCReport{UploadsExpired: rep.UploadsExpired, BlobsDeleted: rep.BlobsDeleted, BytesDeleted: rep.BytesDeleted}, nil
}

// ListPushed lists the registry's tags as oci/build does, those imported as bases with source
// "imported".
func (w *workspaceImages) ListPushed(ctx context.Context, workspace, name string) ([]*atelier.Image, error) {
	list, err := w.Workspaces.ListPushed(ctx, workspace, name)
	if err != nil || len(list) == 0 {
		return list, err
	}
	bases, err := w.db.ListImports(ctx, workspace)
	if err != nil {
		return nil, err
	}
	imported := map[string]string{}
	for _, b := range bases {
		imported[b.Location] = b.Digest
	}
	for _, img := range list {
		if d, ok := imported[img.Location]; ok && d == img.Digest {
			img.Source = atelier.ImageImported
		}
	}
	return list, nil
}

// CheckBase checks base can be built on; "" is the workspace's default base, else the
// server's (as the service resolves it when an image is created).
func (w *workspaceImages) CheckBase(ctx context.Context, workspace, base string) error {
	if base == "" {
		def, err := w.db.DefaultBase(ctx, workspace)
		if err != nil {
			return err
		}
		base = def
	}
	return w.Workspaces.CheckBase(ctx, workspace, base)
}

// truncatedTar tells whether the tar at name is cut short, naming where it ends: the reader of
// archives seeks over contents, and Go's tar reader takes a tar ending between entries (without
// the two zero blocks that end an archive) for a whole one.
func truncatedTar(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	tr := tar.NewReader(struct{ io.Reader }{f}) // not a Seeker: every byte is read
	last := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			last = h.Name
			_, err = io.Copy(io.Discard, tr)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			if last == "" {
				return nil // not a tar, or cut inside its first entry: the reader's error says so
			}
			return atelier.Errorf(atelier.EINVALID, "the uploaded archive is truncated: it ends inside or after %s", last)
		} else if err != nil {
			return nil // not a tar: the reader's error says so
		}
	}
	if last == "" {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	end := make([]byte, 1024)
	if fi.Size()%512 != 0 || fi.Size() < 1024 {
		return atelier.Errorf(atelier.EINVALID, "the uploaded archive is truncated: it ends after %s, inside a block", last)
	}
	if _, err := f.ReadAt(end, fi.Size()-1024); err != nil || !bytes.Equal(end, make([]byte, 1024)) {
		return atelier.Errorf(atelier.EINVALID, "the uploaded archive is truncated: it ends after %s, without the end of a tar archive", last)
	}
	return nil
}
