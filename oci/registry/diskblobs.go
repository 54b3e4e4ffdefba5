package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/atelier-ml/atelier"
)

// DiskBlobs is a BlobStore in a directory: <dir>/<algorithm>/<first two hex>/<hex>. Content is
// written to <dir>/tmp and renamed into place once its digest is known, so a digest never names
// partial content.
type DiskBlobs struct {
	dir string
	now func() time.Time
}

var _ BlobStore = (*DiskBlobs)(nil)

// staleTemp is the age after which a temporary file is a dead writer's.
const staleTemp = time.Hour

// OpenDiskBlobs opens (creating it) a store in dir; now stamps the content put (time.Now when
// nil). Temporary files left by a crash are removed.
func OpenDiskBlobs(dir string, now func() time.Time) (*DiskBlobs, error) {
	if now == nil {
		now = time.Now
	}
	s := &DiskBlobs{dir: dir, now: now}
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			os.Remove(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
	return s, nil
}

func (s *DiskBlobs) tmpDir() string { return filepath.Join(s.dir, "tmp") }

func (s *DiskBlobs) path(d Digest) string {
	h := d.Hex()
	return filepath.Join(s.dir, d.Algorithm(), h[:2], h)
}

// ctxReader fails reads once ctx is done, so an abandoned put stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *DiskBlobs) Put(ctx context.Context, r io.Reader, want Digest) (BlobInfo, error) {
	alg := Canonical
	if want != "" {
		if _, err := ParseDigest(string(want)); err != nil {
			return BlobInfo{}, err
		}
		alg = want.Algorithm()
	}
	f, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return BlobInfo{}, atelier.StorageFull(err)
	}
	tmp, renamed := f.Name(), false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	h := NewHash(alg)
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return BlobInfo{}, atelier.StorageFull(err)
	}
	got := SumDigest(alg, h)
	if want != "" && got != want {
		return BlobInfo{}, atelier.Errorf(atelier.EINVALID, "the content's digest is %s, not %s", got, want)
	}
	now := s.now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return BlobInfo{}, err
	}
	p := s.path(got)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return BlobInfo{}, atelier.StorageFull(err)
	}
	// Replacing existing content with the same bytes is harmless, and refreshes its time.
	if err := os.Rename(tmp, p); err != nil {
		return BlobInfo{}, err
	}
	renamed = true
	return BlobInfo{Digest: got, Size: n, ModTime: now}, nil
}

func notFound(d Digest) error {
	return atelier.Errorf(atelier.ENOTFOUND, "blob %s is not stored", d)
}

// checkDigest refuses a malformed digest, which must never become a path.
func checkDigest(d Digest) error {
	_, err := ParseDigest(string(d))
	return err
}

func (s *DiskBlobs) Open(ctx context.Context, d Digest, offset, length int64) (io.ReadCloser, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(d)
	} else if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	if length < 0 {
		return f, nil // a file, which the HTTP server can sendfile
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

func (s *DiskBlobs) Stat(ctx context.Context, d Digest) (BlobInfo, error) {
	if err := checkDigest(d); err != nil {
		return BlobInfo{}, err
	}
	fi, err := os.Stat(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return BlobInfo{}, notFound(d)
	} else if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *DiskBlobs) Delete(ctx context.Context, d Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *DiskBlobs) Walk(ctx context.Context, fn func(BlobInfo) error) error {
	for alg := range algorithms {
		root := filepath.Join(s.dir, alg)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			} else if e.IsDir() {
				return ctx.Err()
			}
			d, perr := ParseDigest(alg + ":" + e.Name())
			if perr != nil {
				return nil // not content: leave it alone
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			} else if err != nil {
				return err
			}
			return fn(BlobInfo{Digest: d, Size: info.Size(), ModTime: info.ModTime()})
		})
		if err != nil {
			return fmt.Errorf("walking %s: %w", root, err)
		}
	}
	return nil
}
