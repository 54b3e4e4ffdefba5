// Package blob stores the workspaces' artifacts by content over gocloud.dev/blob, so the same
// code serves a local directory, memory, and S3, Azure Blob and GCS buckets (opened by package
// datastore and handed to New).
package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
	dir string
	// local is set for a folder bucket (see upload).
	local bool
	bufs  sync.Pool
}

// New returns a Store over b, any bucket: staged objects are moved by a server-side copy. The
// caller keeps ownership of b unless it calls Close.
func New(b *blob.Bucket) *Store {
	return &Store{bucket: b, local: isLocal(b), bufs: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
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
// Content that does not match a given digest is stored nowhere (EINVALID); a full disk is
// ENOSPACE.
func (s *Store) PutObject(ctx context.Context, r io.Reader, digest string) (atelier.Object, error) {
	obj, err := s.put(ctx, r, digest)
	return obj, atelier.StorageFull(err)
}

func (s *Store) put(ctx context.Context, r io.Reader, digest string) (atelier.Object, error) {
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

// Upload part size and parallelism for cloud buckets: a put holds about (uploadConcurrency+1)
// parts in memory whatever the object's size, and 8 MiB parts allow objects of 80 GB on S3
// (at most 10,000 parts).
const (
	uploadPartSize    = 8 << 20
	uploadConcurrency = 2
)

// write streams r to k while hashing it. It goes through the drivers' one-shot Upload, fed by a
// reader that cancels the write's context before it reports any failure (of r, or a digest
// other than want at the end): every gocloud driver then aborts instead of committing, so
// nothing is stored under k. (Writer.Close after a canceled Write can also crash the Azure
// driver, which Upload avoids.)
func (s *Store) write(ctx context.Context, k string, r io.Reader, want string) (digest string, size int64, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	buf := s.bufs.Get().(*[bufferSize]byte)
	defer s.bufs.Put(buf)
	vr := &verifyingReader{r: r, buf: buf[:], h: sha256.New(), want: want, cancel: cancel}
	err = upload(wctx, cancel, s.bucket, k, vr, &blob.WriterOptions{ContentType: "application/octet-stream",
		BufferSize: uploadPartSize, MaxConcurrency: uploadConcurrency}, s.local)
	switch {
	case atelier.ErrorCode(vr.err) == atelier.EINVALID:
		return "", 0, vr.err
	case vr.err != nil:
		return "", 0, fmt.Errorf("write object %s: %w", k, vr.err)
	case err != nil:
		return "", 0, fmt.Errorf("write object %s: %w", k, err)
	case !vr.eof:
		// A driver that stopped reading early without an error would otherwise store a prefix.
		return "", 0, fmt.Errorf("write object %s: the storage stopped reading at %d bytes", k, vr.n)
	}
	return hex.EncodeToString(vr.h.Sum(nil)), vr.n, nil
}

// verifyingReader hashes what it reads, through buf so that a source without WriteTo is read
// in large blocks. When the source fails, or ends with a digest other than want, it cancels the
// write before returning the error.
type verifyingReader struct {
	r      io.Reader
	buf    []byte
	pos    int
	end    int
	h      hash.Hash
	n      int64
	want   string
	cancel context.CancelFunc
	eof    bool
	err    error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.pos == v.end {
		if v.eof {
			return 0, io.EOF
		}
		n, err := io.ReadFull(v.r, v.buf)
		v.h.Write(v.buf[:n])
		v.n += int64(n)
		v.pos, v.end = 0, n
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			v.eof = true
			if v.want != "" {
				if sum := hex.EncodeToString(v.h.Sum(nil)); sum != v.want {
					v.err = atelier.Errorf(atelier.EINVALID, "content does not match digest %s (got %s)", v.want, sum)
				}
			}
		case err != nil:
			v.err = err
		}
		if v.err != nil {
			v.cancel() // before the driver sees the error, so it aborts rather than commits
			return 0, v.err
		}
		if n == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, v.buf[v.pos:v.end])
	v.pos += n
	return n, nil
}

// promote copies the staged object to its final key, unless an identical one is already there.
// (A local directory store never gets here: putFile renames.)
func (s *Store) promote(ctx context.Context, staging, final string) error {
	if ok, err := s.bucket.Exists(ctx, final); err != nil {
		return fmt.Errorf("stat object %s: %w", final, err)
	} else if ok {
		return nil
	}
	// A bucket copies server-side: the content does not come back through this process.
	cerr := s.bucket.Copy(ctx, final, staging, nil)
	if cerr == nil || ctx.Err() != nil {
		if cerr != nil {
			return fmt.Errorf("copy object %s: %w", final, cerr)
		}
		return nil
	}
	// Some copies are refused where a write is not (S3 copies at most 5 GiB in one request, and
	// some S3-compatible servers have no copy at all): stream the staged content to its key,
	// checked against the digest again, so a failure still leaves nothing under it.
	r, err := s.bucket.NewReader(ctx, staging, nil)
	if err != nil {
		return fmt.Errorf("copy object %s: %w (and reading it back: %v)", final, cerr, err)
	}
	defer r.Close()
	if _, _, err := s.write(ctx, final, r, path.Base(final)); err != nil {
		return fmt.Errorf("copy object %s: %w (and writing it again: %v)", final, cerr, err)
	}
	return nil
}

// CleanStaging deletes the staging objects last modified before t: those of puts cut short by
// a crash (a put in progress removes its own). It returns how many it deleted.
func (s *Store) CleanStaging(ctx context.Context, t time.Time) (int, error) {
	it := s.bucket.List(&blob.ListOptions{Prefix: "staging/"})
	n := 0
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("list staging objects: %w", err)
		}
		if obj.IsDir || !obj.ModTime.Before(t) {
			continue
		}
		if err := s.bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return n, fmt.Errorf("delete staging object %s: %w", obj.Key, err)
		}
		n++
	}
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
		// S3 refuses a range that starts at the end (416) where the others read nothing.
		if offset > 0 && gcerrors.Code(err) != gcerrors.NotFound {
			if obj, serr := s.StatObject(ctx, digest); serr == nil && offset >= obj.Size {
				return io.NopCloser(strings.NewReader("")), nil
			}
		}
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

// upload writes r to key. A local folder's writer commits on Close whatever it got, even after
// a failed write (gocloud's fileblob renames its temporary file into place unless the context
// is canceled), so there a failure, such as a full disk, cancels before Close. Other drivers go
// through the one-shot Upload, which commits nothing after a failure (and Azure's writer
// cannot be closed safely after a failed Write).
func upload(ctx context.Context, cancel context.CancelFunc, b *blob.Bucket, key string, r io.Reader, opts *blob.WriterOptions, local bool) error {
	if !local {
		return b.Upload(ctx, key, r, opts)
	}
	w, err := b.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		w.Close()
		return err
	}
	return w.Close()
}

// isLocal reports whether b is a folder (fileblob, the one driver whose As takes an
// *os.FileInfo).
func isLocal(b *blob.Bucket) bool {
	var fi os.FileInfo
	return b.As(&fi)
}
