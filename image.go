package atelier

import (
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
)

// An image is one or more registered models, a scoring script (score.py with init() and run())
// and its dependencies, built as a real OCI image into the workspace's image registry, where it
// is <workspace>/<name>:<version>. Versions are numbered per name, as models are. A build is
// durable work: queued, claimed by a server with a lease, and built again by another server if
// its builder died.
type Image struct {
	Workspace   string            `json:"workspace"`
	Name        string            `json:"name"`
	Version     int64             `json:"version"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags"`
	Status      ImageStatus       `json:"status"`
	Error       string            `json:"error,omitempty"`
	// Source is ImageBuilt for an image atelier built (a versioned record), ImagePushed for a
	// tag another tool (podman, skopeo, docker) pushed into the workspace registry as
	// <workspace>/<name>:<tag>: it has no build record, Version 0, its registry Tag, no models.
	Source string `json:"source"`
	Tag    string `json:"tag,omitempty"`

	// What it is built from.
	Models      []ImageModel `json:"models"`
	EntryScript string       `json:"entry_script"`
	// SnapshotID is the uploaded source directory (a snapshot, as a submitted run's).
	SnapshotID string `json:"snapshot_id"`
	// Requirements and Conda name a dependencies file inside the source directory.
	Requirements string `json:"requirements,omitempty"`
	Conda        string `json:"conda,omitempty"`
	// Base is the base image ("" for the workspace's default Python base).
	Base string `json:"base,omitempty"`

	// What the build made.
	Digest string       `json:"digest,omitempty"`
	Size   int64        `json:"size,omitempty"`
	Layers []ImageLayer `json:"layers,omitempty"`
	// Location is the image's name in the registry: <workspace>/<name>:<version> (clients put
	// the server's address before it).
	Location string `json:"location"`

	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// ImageModel is a model version an image holds, resolved when the image is created.
type ImageModel struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

func (m ImageModel) String() string { return fmt.Sprintf("%s:%d", m.Name, m.Version) }

// ImageLayer says how one layer the build added was obtained.
type ImageLayer struct {
	Name   string `json:"name"` // deps, runtime, models, source
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Cached bool   `json:"cached"`
}

// ImageStatus is where an image's build is.
type ImageStatus string

const (
	ImageQueued    ImageStatus = "Queued"
	ImageBuilding  ImageStatus = "Building"
	ImageSucceeded ImageStatus = "Succeeded"
	ImageFailed    ImageStatus = "Failed"
)

// Ended reports whether the build is over.
func (s ImageStatus) Ended() bool { return s == ImageSucceeded || s == ImageFailed }

// ImageRef names an image: name:version, or name (its latest version).
type ImageRef struct {
	Name    string
	Version int64 // 0: the latest
}

func (r ImageRef) String() string {
	if r.Version == 0 {
		return r.Name
	}
	return fmt.Sprintf("%s:%d", r.Name, r.Version)
}

// ParseImageRef parses "name" or "name:3".
func ParseImageRef(s string) (ImageRef, error) {
	name, v, ok := strings.Cut(s, ":")
	ref := ImageRef{Name: name}
	if err := ValidateImageName(name); err != nil {
		return ref, err
	}
	if ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return ref, Errorf(EINVALID, "invalid image reference %q: the version after ':' is a number from 1", s)
		}
		ref.Version = n
	}
	return ref, nil
}

// ValidateImageName checks an image name: it is a repository name of the registry
// (<workspace>/<name>), so lowercase letters, digits and single separators (., _, -).
func ValidateImageName(name string) error {
	if name == "" || len(name) > 128 {
		return Errorf(EINVALID, "invalid image name %q: use 1-128 characters", name)
	}
	prev := byte('-')
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		sep := c == '.' || c == '_' || c == '-'
		if !alnum && !sep || sep && (i == 0 || i == len(name)-1 || prev == '.' || prev == '_' || prev == '-') {
			return Errorf(EINVALID, "invalid image name %q: use lowercase letters and digits, separated by single '.', '_' or '-' (an image name is a registry repository name)", name)
		}
		prev = c
	}
	return nil
}

// ImageCreate asks for an image to be built.
type ImageCreate struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Models are model references: name, name:version, name@alias.
	Models       []string `json:"models"`
	EntryScript  string   `json:"entry_script"`
	SnapshotID   string   `json:"snapshot_id"`
	Requirements string   `json:"requirements,omitempty"`
	Conda        string   `json:"conda,omitempty"`
	Base         string   `json:"base,omitempty"`
}

// Validate checks what can be checked without the store; the snapshot's files are checked by
// CheckFiles.
func (c *ImageCreate) Validate() error {
	if err := ValidateImageName(c.Name); err != nil {
		return err
	}
	if len(c.Models) > 100 {
		return Errorf(EINVALID, "an image holds at most 100 models, not %d", len(c.Models))
	}
	for _, m := range c.Models {
		if _, err := ParseModelRef(m); err != nil {
			return err
		}
	}
	if c.EntryScript == "" {
		return Errorf(EINVALID, "entry_script is required: the scoring script (score.py, with init() and run())")
	}
	if c.SnapshotID == "" {
		return Errorf(EINVALID, "snapshot_id is required: upload the source directory (with the entry script) first")
	}
	if c.Requirements != "" && c.Conda != "" {
		return Errorf(EINVALID, "give requirements or conda, not both")
	}
	for field, p := range map[string]string{"entry_script": c.EntryScript, "requirements": c.Requirements, "conda": c.Conda} {
		if p == "" {
			continue
		}
		if clean := path.Clean(p); clean != p || path.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") {
			return Errorf(EINVALID, "%s %q must be a relative path inside the source directory", field, p)
		}
	}
	if len(c.Description) > MaxTagValue {
		return Errorf(EINVALID, "the description is longer than %d bytes", MaxTagValue)
	}
	return ValidateKeyValues("tag", c.Tags, MaxTagValue)
}

// CheckFiles checks that the snapshot holds the files the image names.
func (c *ImageCreate) CheckFiles(s *Snapshot) error {
	has := map[string]bool{}
	for _, e := range s.Entries {
		has[e.Path] = true
	}
	for field, p := range map[string]string{"entry script": c.EntryScript, "requirements file": c.Requirements, "conda file": c.Conda} {
		if p != "" && !has[p] {
			return Errorf(EINVALID, "the %s %s is not in the source directory", field, p)
		}
	}
	return nil
}

// ImageQuery selects images in a list, newest first.
type ImageQuery struct {
	Name  string            // only this name's versions
	Model string            // only images holding a version of this model
	Tags  map[string]string // only images with these tags
	Limit int
}

// ImageBuildResult is what a build made.
type ImageBuildResult struct {
	Digest string
	Size   int64
	Layers []ImageLayer
}

// ImageStore keeps images. Versions are numbered by the store, atomically, per name.
type ImageStore interface {
	// CreateImage assigns the next version of img.Name and stores img (Queued), recording that
	// it uses its models (ModelReference kind "image"): such a version cannot be deleted.
	CreateImage(ctx context.Context, workspace string, img *Image) error
	FindImage(ctx context.Context, workspace string, ref ImageRef) (*Image, error)
	ListImages(ctx context.Context, workspace string, q ImageQuery) ([]*Image, error)
	// ClaimImages moves up to limit queued images (any workspace, oldest first) to Building
	// and leases them to owner (lease kind "build") in one transaction.
	ClaimImages(ctx context.Context, owner string, limit int, expires time.Time) ([]*Image, error)
	// RequeueImage puts a Building image back in the queue (its builder died).
	RequeueImage(ctx context.Context, workspace string, ref ImageRef) error
	// EndImageBuild records how a build ended (Succeeded with res, or Failed with msg) and
	// appends to the image's build log.
	EndImageBuild(ctx context.Context, workspace string, ref ImageRef, res *ImageBuildResult, msg string) (*Image, error)
	// AppendImageLog adds to an image's build log; ImageLog reads it from offset.
	AppendImageLog(ctx context.Context, workspace string, ref ImageRef, text string) error
	ImageLog(ctx context.Context, workspace string, ref ImageRef, offset int64) (string, error)
	// DeleteImage removes an image and its model references.
	DeleteImage(ctx context.Context, workspace string, ref ImageRef) error
}

// ImageService builds and keeps a workspace's images.
type ImageService interface {
	CreateImage(ctx context.Context, workspace string, c ImageCreate) (*Image, error)
	FindImage(ctx context.Context, workspace string, ref ImageRef) (*Image, error)
	ListImages(ctx context.Context, workspace string, q ImageQuery) ([]*Image, error)
	ImageLog(ctx context.Context, workspace string, ref ImageRef, offset int64) (string, error)
	DeleteImage(ctx context.Context, workspace string, ref ImageRef) error
	// ExportImage writes the image as a docker-archive tarball (format "docker", what
	// `docker load` and `podman load` read) or an OCI image layout tarball ("oci").
	ExportImage(ctx context.Context, workspace string, ref ImageRef, format string, w io.Writer) error
}

// ImageBuildJob is what a builder gets: the image, its source files and model files (opened
// from the object store by digest).
type ImageBuildJob struct {
	Image    *Image
	Snapshot *Snapshot
	Models   []*ModelVersion
	Open     func(ctx context.Context, digest string) (io.ReadCloser, error)
}

// ImageBuilder builds images into the workspace registry (oci/build behind it).
type ImageBuilder interface {
	// CheckBase checks that base ("" for the default) can be built on, before a build is queued.
	CheckBase(ctx context.Context, workspace, base string) error
	// Build builds the job's image and stores it as <workspace>/<name>:<version>, writing its
	// progress to log. Errors about the inputs (a pip install that fails, an entry script
	// without run()) are EINVALID with what went wrong.
	Build(ctx context.Context, job *ImageBuildJob, log io.Writer) (*ImageBuildResult, error)
	// Export writes a built image as a tarball ("docker" or "oci").
	Export(ctx context.Context, workspace string, ref ImageRef, format string, w io.Writer) error
	// Delete removes a built image's tag and manifest from the registry.
	Delete(ctx context.Context, workspace string, ref ImageRef) error
	// Unpack writes a built image's filesystem to dir (which must not exist; it is written
	// whole or not at all) and says how the image runs: what replicas of a web service run.
	Unpack(ctx context.Context, workspace string, ref ImageRef, dir string) (*ImageRuntime, error)
	// RemoveUnpacked removes a directory Unpack wrote, and what only it used.
	RemoveUnpacked(dir string) error
}

// Where an image comes from (Image.Source).
const (
	ImageBuilt  = "built"
	ImagePushed = "pushed"
)

// PushedImageLister is an ImageBuilder that also lists the images other tools pushed into a
// workspace's registry (those of repository <workspace>/<name> when name is given).
type PushedImageLister interface {
	ListPushed(ctx context.Context, workspace, name string) ([]*Image, error)
}

// LeaseKindBuild is the kind of the leases of image builds.
const LeaseKindBuild = "build"

// ImageRuntime is how a built image runs, read from its configuration.
type ImageRuntime struct {
	Digest     string
	Entrypoint []string
	Env        []string
	WorkingDir string
}
