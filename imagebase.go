package atelier

import (
	"context"
	"io"
	"strings"
	"time"
)

// ImageImported is the Source of a tag of the workspace registry that was imported as a base
// image (`atelier image base import`): listed with the images, as pushed tags are.
const ImageImported = "imported"

// BaseImage is an image imported into the workspace registry from an OCI layout, an OCI archive
// or a docker archive, to build images on: <workspace>/<name>:<tag> there.
type BaseImage struct {
	Workspace string `json:"workspace"`
	Name      string `json:"name"`
	Tag       string `json:"tag"`
	// Location is <workspace>/<name>:<tag>, the name it is pulled by.
	Location string `json:"location"`
	Digest   string `json:"digest"`
	// Size is the manifest's, the config's and the layers' (compressed) bytes.
	Size int64 `json:"size"`
	// Platform is the image's os/architecture (the server's: others are refused).
	Platform string `json:"platform"`
	// Format is what was uploaded: oci-layout, oci-archive or docker-archive.
	Format string `json:"format"`
	// Default says the workspace builds images on it when they name no base.
	Default    bool      `json:"default"`
	ImportedBy string    `json:"imported_by"`
	ImportedAt time.Time `json:"imported_at"`
}

// BaseImageList is a workspace's imported bases and its default base ("" when it has none:
// images that name no base are built on the server's).
type BaseImageList struct {
	Bases   []*BaseImage `json:"bases"`
	Default string       `json:"default"`
}

// RegistryGCReport is what a garbage collection of the workspace image registry removed.
type RegistryGCReport struct {
	UploadsExpired int   `json:"uploads_expired"`
	BlobsDeleted   int   `json:"blobs_deleted"`
	BytesDeleted   int64 `json:"bytes_deleted"`
}

// BaseImageService imports base images and sets a workspace's default base; and collects the
// registry's garbage.
type BaseImageService interface {
	// ImportBaseImage reads an OCI layout (as a tar), an OCI archive or a docker archive from r
	// and stores its image for the server's platform as <workspace>/<ref> (NAME:TAG; a bare
	// NAME is NAME:latest). Contributors import; setDefault (Owners) also makes it the
	// workspace's default base. Nothing is tagged unless all of it was stored.
	ImportBaseImage(ctx context.Context, workspace, ref string, setDefault bool, r io.Reader) (*BaseImage, error)
	// ListBaseImages lists the imported bases still tagged as imported, and the default base.
	ListBaseImages(ctx context.Context, workspace string) (*BaseImageList, error)
	// SetDefaultBaseImage makes base (a tag of the workspace registry, or HOST/REPO:TAG of
	// another registry; "" for none) the base of the workspace's images that name none. Owners.
	SetDefaultBaseImage(ctx context.Context, workspace, base string) error
	// CollectRegistryGarbage runs the registry's garbage collection now (administrators).
	CollectRegistryGarbage(ctx context.Context) (*RegistryGCReport, error)
}

// BaseImporter is an ImageBuilder that imports bases, keeps workspaces' default bases and
// collects the registry's garbage (the server's; the service authorizes).
type BaseImporter interface {
	ImportBase(ctx context.Context, workspace, name, tag string, r io.Reader) (*BaseImage, error)
	ListBases(ctx context.Context, workspace string) ([]*BaseImage, error)
	DefaultBase(ctx context.Context, workspace string) (string, error)
	SetDefaultBase(ctx context.Context, workspace, base string) error
	CollectGarbage(ctx context.Context) (*RegistryGCReport, error)
}

// ParseBaseRef splits a base image's NAME[:TAG] (the tag is "latest" when absent), checking the
// name is an image (repository) name and the tag a valid registry tag.
func ParseBaseRef(ref string) (name, tag string, err error) {
	name, tag, ok := strings.Cut(ref, ":")
	if !ok {
		tag = "latest"
	}
	if ref == "" {
		return "", "", Errorf(EINVALID, "name is required: the base's NAME:TAG in the workspace registry (python:3.11)")
	}
	if err := ValidateImageName(name); err != nil {
		return "", "", err
	}
	if !validTag(tag) {
		return "", "", Errorf(EINVALID, "invalid tag %q: use 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", tag)
	}
	return name, tag, nil
}

// validTag follows the distribution spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(t string) bool {
	if len(t) == 0 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			return false
		}
	}
	return true
}
