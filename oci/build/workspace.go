package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

var _ atelier.ImageBuilder = (*Workspaces)(nil)

// Workspaces builds the images of workspaces into the workspace registry's stores: image
// <name>:<version> of workspace ws is <ws>/<name>:<version> there.
type Workspaces struct {
	Blobs    registry.BlobStore
	Metadata registry.Metadata
	// CacheDir keeps built layers; TmpDir holds each build's inputs while it runs.
	CacheDir string
	TmpDir   string
	// DefaultBase is the base of images that name none: an OCI layout, OCI archive or docker
	// archive on the server's disk ("" for none). A named base is a tag of the workspace
	// registry (<repository>:<tag>, in the image's workspace).
	DefaultBase string
	// Credentials gives the credentials of another registry a base is pulled from
	// (HOST/REPO:TAG); nil pulls anonymously.
	Credentials RegistryCredentials
	PipArgs     []string
	Isolation   *Isolation
	// Host is the registry's address clients pull from (127.0.0.1:8600), put before exported
	// images' names.
	Host string
}

// CheckBase checks that base can be read before a build is queued.
func (w *Workspaces) CheckBase(ctx context.Context, workspace, base string) error {
	_, err := w.base(ctx, workspace, base)
	return err
}

func (w *Workspaces) base(ctx context.Context, workspace, base string) (v1.Image, error) {
	if base == "" {
		if w.DefaultBase == "" {
			return nil, atelier.Errorf(atelier.EINVALID, "this server has no default base image: give --base (a tag of the workspace registry) or start the server with --image-base PATH (an OCI layout or archive, e.g. from scripts/build-python-base.sh)")
		}
		return ImportBase(ctx, w.DefaultBase, DefaultPlatform())
	}
	if IsRemoteBase(base) {
		return w.remoteBase(ctx, workspace, base)
	}
	repo, tag, ok := strings.Cut(base, ":")
	if !ok {
		tag = "latest"
	}
	repo = workspace + "/" + repo
	img, err := ReadImage(ctx, w.Blobs, w.Metadata, repo, tag)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, atelier.Errorf(atelier.EINVALID, "base image %s not found in the workspace registry (%s:%s): push it there first", base, repo, tag)
	} else if err != nil {
		return nil, err
	}
	if err := checkPlatform(img, DefaultPlatform()); err != nil {
		return nil, err
	}
	return img, nil
}

// Build writes the job's sources and models to a temporary directory and builds the image
// into the registry's stores.
func (w *Workspaces) Build(ctx context.Context, job *atelier.ImageBuildJob, log io.Writer) (*atelier.ImageBuildResult, error) {
	img := job.Image
	base, err := w.base(ctx, img.Workspace, img.Base)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(w.TmpDir, "build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	src := filepath.Join(dir, "src")
	for _, e := range job.Snapshot.Entries {
		mode := os.FileMode(0o644)
		if e.Executable {
			mode = 0o755
		}
		if err := w.fetch(ctx, job, e.Digest, filepath.Join(src, filepath.FromSlash(e.Path)), mode); err != nil {
			return nil, fmt.Errorf("source %s: %w", e.Path, err)
		}
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	spec := Spec{Name: img.Name, Version: strconv.FormatInt(img.Version, 10), SourceDir: src, EntryScript: img.EntryScript,
		PipArgs: w.PipArgs, CacheDir: w.CacheDir, Log: log, Isolation: w.Isolation,
		Labels: map[string]string{"ai.atelier.workspace": img.Workspace, "ai.atelier.image": img.Location}}
	if img.Requirements != "" {
		spec.Requirements = filepath.Join(src, filepath.FromSlash(img.Requirements))
	}
	if img.Conda != "" {
		// A conda file's pip section is installed as a requirements file; its conda packages
		// may only be python (the base's), pip, setuptools and wheel.
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(img.Conda)))
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: %v", img.Conda, err)
		}
		env, err := ParseConda(img.Conda, data)
		if err != nil {
			return nil, err
		}
		v, err := basePython(base)
		if err != nil {
			return nil, err
		}
		if err := env.CheckPython(img.Conda, v); err != nil {
			return nil, err
		}
		if req := env.Requirements(); req != nil {
			spec.Requirements = filepath.Join(dir, "conda-requirements.txt")
			if err := os.WriteFile(spec.Requirements, req, 0o644); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(log, "conda file %s: python %s, %d pip requirements (installed with pip)\n", img.Conda, cmp.Or(env.Python, "of the base"), len(env.Pip))
	}
	for _, v := range job.Models {
		mdir := filepath.Join(dir, "models", v.Name, strconv.FormatInt(v.Version, 10))
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			return nil, err
		}
		for _, f := range v.Files {
			if err := w.fetch(ctx, job, f.Digest, filepath.Join(mdir, filepath.FromSlash(path.Clean(f.Path))), 0o644); err != nil {
				return nil, fmt.Errorf("model %s:%d file %s: %w", v.Name, v.Version, f.Path, err)
			}
		}
		spec.Models = append(spec.Models, Model{Name: v.Name, Version: strconv.FormatInt(v.Version, 10), Dir: mdir})
	}
	fmt.Fprintf(log, "inputs ready in %s: %d source files, %d models\n", time.Since(t0).Round(time.Millisecond), len(job.Snapshot.Entries), len(job.Models))
	repo := img.Workspace + "/" + img.Name
	res, err := Build(ctx, spec, base, Output{Registry: &RegistryOutput{Blobs: w.Blobs, Metadata: w.Metadata, Repo: repo,
		Tags: []string{strconv.FormatInt(img.Version, 10)}}})
	var ae *atelier.Error
	if errors.As(err, &ae) {
		// Name the user's files as they named them, not where the build put them.
		return nil, &atelier.Error{Code: ae.Code, Message: strings.ReplaceAll(ae.Message, src+string(filepath.Separator), ""), Cause: ae.Cause}
	} else if err != nil {
		return nil, err
	}
	out := &atelier.ImageBuildResult{Digest: res.Digest, Size: res.Size}
	for _, l := range res.Layers {
		out.Layers = append(out.Layers, atelier.ImageLayer{Name: l.Name, Digest: l.Digest, Size: l.Size, Cached: l.Cached})
	}
	fmt.Fprintf(log, "built %s:%d (%s, %d bytes)\n", repo, img.Version, res.Digest, res.Size)
	return out, nil
}

func (w *Workspaces) fetch(ctx context.Context, job *atelier.ImageBuildJob, digest, dst string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := job.Open(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Export writes a built image as a docker-archive or an OCI layout tarball.
func (w *Workspaces) Export(ctx context.Context, workspace string, ref atelier.ImageRef, format string, out io.Writer) error {
	repo, tag := workspace+"/"+ref.Name, strconv.FormatInt(ref.Version, 10)
	img, err := ReadImage(ctx, w.Blobs, w.Metadata, repo, tag)
	if err != nil {
		return err
	}
	name := repo + ":" + tag
	if w.Host != "" {
		name = w.Host + "/" + name
	}
	if format == "oci" {
		return ExportOCI(img, name, w.TmpDir, out)
	}
	return ExportDocker(img, name, out)
}

// Delete removes an image's tag and, when no other tag points at it, its manifest.
func (w *Workspaces) Delete(ctx context.Context, workspace string, ref atelier.ImageRef) error {
	repo, tag := workspace+"/"+ref.Name, strconv.FormatInt(ref.Version, 10)
	d, err := w.Metadata.Tag(ctx, repo, tag)
	if err != nil {
		return err
	}
	if err := w.Metadata.DeleteTag(ctx, repo, tag); err != nil {
		return err
	}
	tags, err := w.Metadata.Tags(ctx, repo, "", -1)
	if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return err
	}
	for _, t := range tags {
		if other, err := w.Metadata.Tag(ctx, repo, t); err == nil && other == d {
			return nil
		}
	}
	return w.Metadata.DeleteManifest(ctx, repo, d)
}
