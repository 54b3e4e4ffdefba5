// Package blob stores a workspace's artifacts by content over gocloud.dev/blob, so the same code
// serves a local directory, memory, and later S3, Azure Blob and GCS buckets.
package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ObjectStore = (*Store)(nil)

// bufferSize bounds the memory of one put: content is streamed through a buffer this big.
// 1 MiB amortizes syscalls and hashing calls; much larger buys nothing measurable.
const bufferSize = 1 << 20

// Store is a content-addressed object store: an object lives under sha256/<2 hex>/<64 hex>.
// Uploads without a known digest are first written under staging/ and moved once hashed.
type Store struct {
	bucket *blob.Bucket
	// dir is the bucket's root directory when it is a local fileblob bucket opened by Open;
	// it lets a staged object be renamed instead of copied.
	dir  string
	bufs sync.Pool
}

// New returns a Store over b. The caller keeps ownership of b unless it calls Close.
func New(b *blob.Bucket) *Store {
	return &Store{bucket: b, bufs: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

// Open opens a Store from a URL: file:///abs/dir (created if missing) or mem://.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "invalid object store URL %q", rawURL)
	}
	if len(u.Query()) > 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "invalid object store URL %q: no query parameters are supported", rawURL)
	}
	switch u.Scheme {
	case "mem":
		return New(memblob.OpenBucket(&memblob.Options{NoMD5: true})), nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
			return nil, atelier.Errorf(atelier.EINVALID, "invalid object store URL %q: want file:///absolute/dir", rawURL)
		}
		dir := filepath.Clean(filepath.FromSlash(u.Path))
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{
			CreateDir: true,
			// Objects are named by content, so content type and other attributes are worthless:
			// write no .attrs sidecar files.
			Metadata: fileblob.MetadataDontWrite,
			// Temporary files go next to their final path (then renamed on Close), so the rename
			// never crosses file systems as it would from os.TempDir.
			NoTempDir: true,
		})
		if err != nil {
			return nil, fmt.Errorf("open object store %s: %w", dir, err)
		}
		s := New(b)
		s.dir = dir
		return s, nil
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "unsupported object store URL %q: use file:// or mem://", rawURL)
	}
}

// Close closes the underlying bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// key returns the bucket key of digest; the two-hex fan-out keeps directories small on file systems.
func key(digest string) string { return "sha256/" + digest[:2] + "/" + digest }

// PutObject stores the content of r. When digest is given and the object already exists, it
// returns at once without reading r: the caller still owns r and must drain or close it.
// Content that does not match a given digest is stored nowhere (EINVALID).
func (s *Store) PutObject(ctx context.Context, r io.Reader, digest string) (atelier.Object, error) {
	if digest != "" {
		if err := atelier.ValidateDigest(digest); err != nil {
			return atelier.Object{}, err
		}
		if obj, err := s.StatObject(ctx, digest); err == nil {
			return obj, nil
		} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return atelier.Object{}, err
		}
	}
	if s.dir != "" {
		return s.putFile(ctx, r, digest)
	}
	if digest != "" {
		// Write straight to the final key: a mismatch cancels the writer, so nothing appears.
		sum, size, err := s.write(ctx, key(digest), r, digest)
		if err != nil {
			return atelier.Object{}, err
		}
		return atelier.Object{Digest: sum, Size: size}, nil
	}

	staging := "staging/" + rand.Text()
	sum, size, err := s.write(ctx, staging, r, "")
	if err != nil {
		return atelier.Object{}, err
	}
	// Clean up even when ctx is canceled, so no staging object is left behind. The error is
	// ignored: after a rename the staging object is already gone.
	defer s.bucket.Delete(context.WithoutCancel(ctx), staging)
	if err := s.promote(ctx, staging, key(sum)); err != nil {
		return atelier.Object{}, err
	}
	return atelier.Object{Digest: sum, Size: size}, nil
}

// write streams r to k while hashing it. When want is set and the hash differs, the write is
// canceled, which makes gocloud abort it: nothing is stored under k.
func (s *Store) write(ctx context.Context, k string, r io.Reader, want string) (digest string, size int64, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, k, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return "", 0, fmt.Errorf("write object %s: %w", k, err)
	}
	h := sha256.New()
	buf := s.bufs.Get().(*[bufferSize]byte)
	defer s.bufs.Put(buf)
	// MultiWriter has no ReadFrom, so the copy goes through buf: memory stays bounded.
	size, err = io.CopyBuffer(io.MultiWriter(h, w), r, buf[:])
	if err == nil {
		digest = hex.EncodeToString(h.Sum(nil))
		if want != "" && digest != want {
			err = atelier.Errorf(atelier.EINVALID, "content does not match digest %s (got %s)", want, digest)
		}
	}
	if err != nil {
		cancel() // before Close, so the write is aborted rather than committed
		_ = w.Close()
		if atelier.ErrorCode(err) == atelier.EINVALID {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("write object %s: %w", k, err)
	}
	if err := w.Close(); err != nil {
		return "", 0, fmt.Errorf("write object %s: %w", k, err)
	}
	return digest, size, nil
}

// promote copies the staged object to its final key, unless an identical one is already there.
// (A local directory store never gets here: putFile renames.)
func (s *Store) promote(ctx context.Context, staging, final string) error {
	if ok, err := s.bucket.Exists(ctx, final); err != nil {
		return fmt.Errorf("stat object %s: %w", final, err)
	} else if ok {
		return nil
	}
	if err := s.bucket.Copy(ctx, final, staging, nil); err != nil {
		return fmt.Errorf("copy object %s: %w", final, err)
	}
	return nil
}

// OpenObject opens an object for reading; ENOTFOUND if it is absent.
func (s *Store) OpenObject(ctx context.Context, digest string) (io.ReadCloser, error) {
	return s.OpenRange(ctx, digest, 0, -1)
}

// OpenRange opens length bytes of an object from offset; a negative length reads to the end.
func (s *Store) OpenRange(ctx context.Context, digest string, offset, length int64) (io.ReadCloser, error) {
	if err := atelier.ValidateDigest(digest); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "invalid range offset %d: must not be negative", offset)
	}
	if s.dir != "" && offset == 0 && length < 0 {
		// A local object opens as a plain file, so copies to files and sockets can use
		// copy_file_range and sendfile.
		f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(key(digest))))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, atelier.Errorf(atelier.ENOTFOUND, "object %s not found", digest)
		} else if err == nil {
			return f, nil
		}
	}
	r, err := s.bucket.NewRangeReader(ctx, key(digest), offset, length, nil)
	if err != nil {
		return nil, mapError("open", digest, err)
	}
	return r, nil
}

// StatObject returns the object's size; ENOTFOUND if it is absent.
func (s *Store) StatObject(ctx context.Context, digest string) (atelier.Object, error) {
	if err := atelier.ValidateDigest(digest); err != nil {
		return atelier.Object{}, err
	}
	attrs, err := s.bucket.Attributes(ctx, key(digest))
	if err != nil {
		return atelier.Object{}, mapError("stat", digest, err)
	}
	return atelier.Object{Digest: digest, Size: attrs.Size}, nil
}

// Exists reports whether the object is stored.
func (s *Store) Exists(ctx context.Context, digest string) (bool, error) {
	if err := atelier.ValidateDigest(digest); err != nil {
		return false, err
	}
	ok, err := s.bucket.Exists(ctx, key(digest))
	if err != nil {
		return false, mapError("stat", digest, err)
	}
	return ok, nil
}

// DeleteObject removes an object; ENOTFOUND if it is absent. The caller (garbage collection)
// must know that nothing refers to it any more.
func (s *Store) DeleteObject(ctx context.Context, digest string) error {
	if err := atelier.ValidateDigest(digest); err != nil {
		return err
	}
	if err := s.bucket.Delete(ctx, key(digest)); err != nil {
		return mapError("delete", digest, err)
	}
	return nil
}

// mapError turns a missing object into ENOTFOUND; any other error stays internal (wrapped, not an
// *atelier.Error) so its details, such as paths, are logged rather than shown to users.
func mapError(op, digest string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return atelier.Errorf(atelier.ENOTFOUND, "object %s not found", digest)
	}
	return fmt.Errorf("%s object %s: %w", op, key(digest), err)
}
