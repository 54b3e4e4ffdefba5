package registry

import (
	"context"
	"io"
	"time"
)

// BlobInfo describes stored content.
type BlobInfo struct {
	Digest Digest
	Size   int64
	// ModTime is when the content was last put; garbage collection spares recent content.
	ModTime time.Time
}

// BlobStore is the content-addressed store the registry keeps blobs (and upload chunks) in. It
// knows nothing of repositories: the Metadata says which repository may read what.
type BlobStore interface {
	// Put stores what r yields under its digest, computed with want's algorithm (sha256 when want
	// is ""). When want is given and the content differs, nothing is stored and the error is
	// EINVALID. Nothing partial is ever visible; putting content that exists refreshes its ModTime.
	Put(ctx context.Context, r io.Reader, want Digest) (BlobInfo, error)
	// Open reads length bytes (all when length < 0) of the content from offset; ENOTFOUND if absent.
	Open(ctx context.Context, d Digest, offset, length int64) (io.ReadCloser, error)
	// Stat describes the content; ENOTFOUND if absent.
	Stat(ctx context.Context, d Digest) (BlobInfo, error)
	// Delete removes the content; deleting absent content is not an error.
	Delete(ctx context.Context, d Digest) error
	// Walk calls fn for every stored content, in no particular order, until fn fails.
	Walk(ctx context.Context, fn func(BlobInfo) error) error
}

// Ref is a descriptor's content address and size, as a manifest declares it.
type Ref struct {
	Digest Digest
	Size   int64
}

// Manifest is a manifest stored in a repository, with what the registry learned by parsing it.
type Manifest struct {
	Digest    Digest
	MediaType string
	// Body is the manifest exactly as it was pushed.
	Body []byte
	// Blobs are the config and layers, which must be linked in the repository (non-distributable
	// layers, which clients fetch elsewhere, are not listed).
	Blobs []Ref
	// Manifests are an index's manifests, which must be in the repository.
	Manifests []Ref
	// Subject is the manifest this one refers to; it may be absent from the repository.
	Subject Digest
	// ArtifactType and Annotations are what the referrers API lists.
	ArtifactType string
	Annotations  map[string]string
}

// Descriptor describes a manifest in the referrers API.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Upload is a blob upload session. Each chunk a client sends is stored as content of its own
// (so uploads need no storage beyond the BlobStore); the session lists them in order.
type Upload struct {
	ID      string
	Repo    string
	Chunks  []Ref
	Size    int64 // the sum of the chunks' sizes: the offset of the next chunk
	Started time.Time
	Updated time.Time
}

// Metadata records the registry's repositories: their manifests and tags, which blobs each may
// read (its links), and the upload sessions. Every method is atomic; PutManifest, UnlinkBlob,
// DeleteManifest and ReleaseBlob check and change in one step, which is what keeps garbage
// collection safe against concurrent pushes. Errors carry atelier codes.
type Metadata interface {
	ManifestStore
	LinkStore
	UploadStore
	// ReleaseBlob readies d for deletion: when no manifest of any repository references it, no
	// upload session holds it and no repository linked it at or after linkedBefore, it removes
	// every link to d and reports true; otherwise it changes nothing.
	ReleaseBlob(ctx context.Context, d Digest, linkedBefore time.Time) (bool, error)
}

// ManifestStore keeps manifests and tags.
type ManifestStore interface {
	// PutManifest stores m in repo (again, if it is there) and points tags at it. It refuses,
	// changing nothing, a manifest naming a blob repo does not link or a manifest repo does not
	// hold (ENOTFOUND), or naming one with another size than stored (EINVALID).
	PutManifest(ctx context.Context, repo string, m *Manifest, tags []string) error
	// Manifest returns a manifest of repo, with its body; ENOTFOUND if absent.
	Manifest(ctx context.Context, repo string, d Digest) (*Manifest, error)
	// Tag returns what tag points at; ENOTFOUND if repo has no such tag.
	Tag(ctx context.Context, repo, tag string) (Digest, error)
	// DeleteManifest removes a manifest and the tags pointing at it; ENOTFOUND if absent,
	// ECONFLICT if an index of repo lists it.
	DeleteManifest(ctx context.Context, repo string, d Digest) error
	// DeleteTag removes a tag, not the manifest; ENOTFOUND if absent.
	DeleteTag(ctx context.Context, repo, tag string) error
	// Tags lists repo's tags in byte order, those after the tag after (from the first when ""),
	// at most limit (all when limit < 0); ENOTFOUND if the repository does not exist.
	Tags(ctx context.Context, repo, after string, limit int) ([]string, error)
	// Referrers lists the manifests of repo whose subject is d.
	Referrers(ctx context.Context, repo string, d Digest) ([]Descriptor, error)
	// Repositories lists the repositories holding a manifest or a link, in byte order, those
	// after after, at most limit (all when limit < 0).
	Repositories(ctx context.Context, after string, limit int) ([]string, error)
}

// LinkStore records which repository may read which blob.
type LinkStore interface {
	// LinkBlob lets repo read d (of size bytes), as of at; linking again refreshes at.
	LinkBlob(ctx context.Context, repo string, d Digest, size int64, at time.Time) error
	// BlobLink returns the size of d when repo links it; ENOTFOUND otherwise.
	BlobLink(ctx context.Context, repo string, d Digest) (int64, error)
	// UnlinkBlob removes repo's link to d; ENOTFOUND if there is none, ECONFLICT while a
	// manifest of repo references d.
	UnlinkBlob(ctx context.Context, repo string, d Digest) error
	// BlobRepositories lists the repositories linking d, in byte order.
	BlobRepositories(ctx context.Context, d Digest) ([]string, error)
}

// UploadStore keeps upload sessions.
type UploadStore interface {
	// CreateUpload records a new session; ECONFLICT if its ID is taken.
	CreateUpload(ctx context.Context, u *Upload) error
	// Upload returns a session; ENOTFOUND if absent.
	Upload(ctx context.Context, id string) (*Upload, error)
	// AppendUpload adds a chunk at offset and returns the session; ECONFLICT, changing nothing,
	// when offset is not the session's size (chunks arrive in order); ENOTFOUND if absent.
	AppendUpload(ctx context.Context, id string, offset int64, chunk Ref, at time.Time) (*Upload, error)
	// DeleteUpload ends a session; ENOTFOUND if absent.
	DeleteUpload(ctx context.Context, id string) error
	// ExpireUploads ends the sessions not updated since before and returns how many it ended.
	ExpireUploads(ctx context.Context, before time.Time) (int, error)
}

// TaggedManifest is a tag of a repository and what it points at.
type TaggedManifest struct {
	Repo, Tag string
	Digest    Digest
	MediaType string
	// Size is the manifest's and the blobs' it names (an index's: its own only).
	Size int64
	// TaggedAt is when the tag was last pointed (zero when the store does not know).
	TaggedAt time.Time
}

// TagLister is a Metadata that also lists tags across repositories in one read (the images
// pushed by other tools are listed that way).
type TagLister interface {
	// ListTagged lists the tags of the repositories whose names start with prefix, by
	// repository and tag.
	ListTagged(ctx context.Context, prefix string) ([]TaggedManifest, error)
}
