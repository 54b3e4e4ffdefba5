package atelier

import (
	"context"
	"io"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// File is an output file, a log or any other file recorded under a run, stored once by content.
type File struct {
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	Digest    string    `json:"digest"` // sha256 hex of the content; empty for a log still being appended
	CreatedAt time.Time `json:"created_at"`
	// Log is set for files appended line by line (logs/...).
	Log bool `json:"log,omitempty"`
}

// MaxPathLength bounds a file path inside a run or a snapshot.
const MaxPathLength = 1024

// ValidatePath checks a relative slash-separated path inside a run or a snapshot: no empty,
// absolute or escaping paths, no "." or ".." elements, no backslashes or NUL.
func ValidatePath(p string) error {
	if p == "" || len(p) > MaxPathLength || !utf8.ValidString(p) {
		return Errorf(EINVALID, "invalid path %q: use 1-%d bytes of UTF-8", p, MaxPathLength)
	}
	if strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || (len(p) > 1 && p[1] == ':') {
		return Errorf(EINVALID, "invalid path %q: it must be relative, with '/' separators", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return Errorf(EINVALID, "invalid path %q: empty, '.' and '..' elements are not allowed", p)
		}
	}
	if path.Clean(p) != p {
		return Errorf(EINVALID, "invalid path %q: not in clean form", p)
	}
	return nil
}

// ValidateDigest checks a sha256 digest in lowercase hex.
func ValidateDigest(d string) error {
	if len(d) != 64 {
		return Errorf(EINVALID, "invalid digest %q: want 64 lowercase hex characters of a sha256", d)
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Errorf(EINVALID, "invalid digest %q: want 64 lowercase hex characters of a sha256", d)
		}
	}
	return nil
}

// Object is a stored blob named by the sha256 of its content.
type Object struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ObjectStore is the content-addressed store of a workspace's artifacts (snapshots, outputs,
// models). Each content is stored once.
type ObjectStore interface {
	// PutObject stores r. When digest is given the content must match it, else nothing is stored
	// (EINVALID); nothing partial is ever visible under a digest.
	PutObject(ctx context.Context, r io.Reader, digest string) (Object, error)
	// OpenObject opens an object for reading; ENOTFOUND if it is absent.
	OpenObject(ctx context.Context, digest string) (io.ReadCloser, error)
	// StatObject returns the object's size; ENOTFOUND if it is absent.
	StatObject(ctx context.Context, digest string) (Object, error)
}

// LogChunk is a piece of a log read from Offset.
type LogChunk struct {
	Data []byte
	// Offset is where Data starts; Offset+len(Data) is where the next read starts.
	Offset int64
	// Done is set once the run has ended, so no more data will come.
	Done bool
}

// FileService stores and reads a run's files and logs. Files are streamed, never held whole.
type FileService interface {
	// UploadFile stores r under path. digest (optional) is checked against the content.
	UploadFile(ctx context.Context, workspace, runID, path string, r io.Reader, digest string) (*File, error)
	ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*File, error)
	OpenFile(ctx context.Context, workspace, runID, path string) (*File, io.ReadCloser, error)
	// AppendLog appends data to a log file; logs can be appended while the run is live.
	AppendLog(ctx context.Context, workspace, runID, path string, data []byte) error
	// ReadLog returns the log from offset on, at most limit bytes (all when limit <= 0).
	ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*LogChunk, error)
}
