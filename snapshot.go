package atelier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sort"
	"strconv"
	"time"
)

// SnapshotEntry is one file of a snapshot.
type SnapshotEntry struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Executable keeps the x bit of scripts.
	Executable bool `json:"executable,omitempty"`
}

// Snapshot is the source directory of a run, stored as a manifest of content-addressed files:
// the same directory submitted twice is the same snapshot, and unchanged files are never sent
// again. It downloads as a zip.
type Snapshot struct {
	ID        string          `json:"id"` // sha256 of the canonical manifest
	Workspace string          `json:"workspace"`
	Size      int64           `json:"size"`
	FileCount int             `json:"file_count"`
	CreatedAt time.Time       `json:"created_at"`
	Entries   []SnapshotEntry `json:"entries,omitempty"`
}

// Default snapshot limits, as in Azure ML; the server's configuration may raise them.
const (
	DefaultSnapshotMaxBytes = 300 << 20
	DefaultSnapshotMaxFiles = 2000
)

// NormalizeSnapshot validates entries, sorts them by path and returns the snapshot's ID and total
// size. The ID depends only on paths, digests, sizes and x bits, so it is stable across machines.
func NormalizeSnapshot(entries []SnapshotEntry) (id string, size int64, err error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	h := sha256.New()
	for i, e := range entries {
		if err := ValidatePath(e.Path); err != nil {
			return "", 0, err
		}
		if err := ValidateDigest(e.Digest); err != nil {
			return "", 0, Errorf(EINVALID, "snapshot entry %q: %s", e.Path, ErrorMessage(err))
		}
		if e.Size < 0 {
			return "", 0, Errorf(EINVALID, "snapshot entry %q: negative size", e.Path)
		}
		if i > 0 && entries[i-1].Path == e.Path {
			return "", 0, Errorf(EINVALID, "snapshot entry %q appears twice", e.Path)
		}
		size += e.Size
		x := "0"
		if e.Executable {
			x = "1"
		}
		io.WriteString(h, e.Path+"\x00"+e.Digest+"\x00"+strconv.FormatInt(e.Size, 10)+"\x00"+x+"\n")
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// SnapshotService stores snapshots.
type SnapshotService interface {
	// MissingObjects returns the digests the server does not hold yet, so a client uploads only those.
	MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error)
	// CreateSnapshot records a manifest whose objects are all stored (ENOTFOUND names a missing one).
	CreateSnapshot(ctx context.Context, workspace string, entries []SnapshotEntry) (*Snapshot, error)
	// UploadSnapshotZip stores every entry of a zip and records its manifest. Entries that escape
	// the root are refused.
	UploadSnapshotZip(ctx context.Context, workspace string, r io.Reader) (*Snapshot, error)
	FindSnapshot(ctx context.Context, workspace, id string) (*Snapshot, error)
	// WriteSnapshotZip streams the snapshot as a zip.
	WriteSnapshotZip(ctx context.Context, workspace, id string, w io.Writer) error
}
