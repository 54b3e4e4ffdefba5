package registry

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/atelier-ml/atelier"
)

// BucketBlobs is a BlobStore in a bucket of the artifact store (a folder, S3, Azure Blob or
// GCS, through gocloud.dev/blob): <algorithm>/<first two hex>/<hex>. It is not the artifact
// store's own sha256 object namespace: the registry also stores sha512 content, stamps what it
// puts for its garbage collection, and collects only what it walks, so it gets a folder of its
// own (the server gives it the artifact store's oci/) that nothing else writes or collects.
//
// Content of a known digest is written straight to its key through a reader that cancels the
// write before it reports a mismatch or a failed read, so the drivers abort instead of
// committing; content of an unknown digest is staged under staging/ and copied into place once
// hashed. The put time is kept as the object's metadata (put), so that it is the registry's
// clock, not the bucket's. A folder bucket is handled as DiskBlobs handles its directory (same
// layout; the put time is the file's modification time, set before the file is renamed into
// place, and whole reads are files the HTTP server can sendfile).
type BucketBlobs struct {
	bucket *blob.Bucket
	// dir is the bucket's folder when it is a local one.
	dir   string
	local bool
	now   func() time.Time
	// disk does everything for a folder: writing a temporary file, stamping it, then renaming
	// it into place (as DiskBlobs does; the layout is the same), so that garbage collection
	// never sees a put's content with an old time.
	disk *DiskBlobs
}

var _ BlobStore = (*BucketBlobs)(nil)

const putTimeKey = "put"

// NewBucketBlobs returns a store over b; dir is b's folder when b is a local (fileblob) bucket
// (opened with fileblob.MetadataDontWrite: the put time is then the file's modification time),
// else "". now stamps the content put (time.Now when nil). The caller keeps ownership of b.
func NewBucketBlobs(b *blob.Bucket, dir string, now func() time.Time) *BucketBlobs {
	if now == nil {
		now = time.Now
	}
	var fi os.FileInfo
	s := &BucketBlobs{bucket: b, dir: dir, local: b.As(&fi), now: now}
	if dir != "" {
		s.disk = &DiskBlobs{dir: dir, now: now}
		os.MkdirAll(s.disk.tmpDir(), 0o700) // else puts fail, saying so
	}
	return s
}

func bucketKey(d Digest) string {
	h := d.Hex()
	return d.Algorithm() + "/" + h[:2] + "/" + h
}

func (s *BucketBlobs) Put(ctx context.Context, r io.Reader, want Digest) (BlobInfo, error) {
	if s.disk != nil {
		return s.disk.Put(ctx, r, want)
	}
	alg := Canonical
	if want != "" {
		if _, err := ParseDigest(string(want)); err != nil {
			return BlobInfo{}, err
		}
		alg = want.Algorithm()
	}
	now := s.now()
	opts := &blob.WriterOptions{ContentType: "application/octet-stream", Metadata: map[string]string{putTimeKey: now.UTC().Format(time.RFC3339Nano)},
		BufferSize: 8 << 20, MaxConcurrency: 2}
	if want != "" {
		n, err := s.write(ctx, bucketKey(want), r, alg, want, opts)
		if err != nil {
			return BlobInfo{}, err
		}
		return BlobInfo{Digest: want, Size: n, ModTime: now}, nil
	}
	staging := "staging/" + rand.Text()
	var got Digest
	n, err := s.write(ctx, staging, r, alg, "", opts, func(d Digest) { got = d })
	if err != nil {
		return BlobInfo{}, err
	}
	defer s.bucket.Delete(context.WithoutCancel(ctx), staging)
	if err := s.bucket.Copy(ctx, bucketKey(got), staging, nil); err != nil {
		if ctx.Err() != nil {
			return BlobInfo{}, atelier.StorageFull(err)
		}
		// A bucket that refuses the copy (S3 copies at most 5 GiB at once) gets the content
		// again, checked against its digest.
		rc, rerr := s.bucket.NewReader(ctx, staging, nil)
		if rerr != nil {
			return BlobInfo{}, fmt.Errorf("copying blob %s into place: %w (and reading it back: %v)", got, err, rerr)
		}
		defer rc.Close()
		if _, err := s.write(ctx, bucketKey(got), rc, alg, got, opts); err != nil {
			return BlobInfo{}, err
		}
	}
	return BlobInfo{Digest: got, Size: n, ModTime: now}, nil
}

// write streams r to key, hashing it with alg; a digest other than want (when given), or a
// failed read, cancels the write before the driver sees the error, so nothing is committed.
// done, if given, gets the digest.
func (s *BucketBlobs) write(ctx context.Context, key string, r io.Reader, alg string, want Digest, opts *blob.WriterOptions, done ...func(Digest)) (int64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	vr := &checkingReader{r: r, h: NewHash(alg), alg: alg, want: want, cancel: cancel}
	var err error
	if s.local {
		// A folder's writer commits whatever it got on Close unless its context is canceled.
		var w *blob.Writer
		if w, err = s.bucket.NewWriter(wctx, key, opts); err == nil {
			if _, err = io.Copy(w, vr); err != nil {
				cancel()
				w.Close()
			} else {
				err = w.Close()
			}
		}
	} else {
		err = s.bucket.Upload(wctx, key, vr, opts)
	}
	switch {
	case vr.err != nil && atelier.ErrorCode(vr.err) == atelier.EINVALID:
		return 0, vr.err
	case vr.err != nil:
		return 0, fmt.Errorf("storing blob: %w", vr.err)
	case err != nil:
		return 0, atelier.StorageFull(fmt.Errorf("storing blob: %w", err))
	case !vr.eof:
		return 0, fmt.Errorf("storing blob: the storage stopped reading at %d bytes", vr.n)
	}
	for _, f := range done {
		f(SumDigest(alg, vr.h))
	}
	return vr.n, nil
}

// checkingReader hashes what it reads and fails (canceling the write first) on a failed read or
// a digest other than want at the end.
type checkingReader struct {
	r      io.Reader
	h      hash.Hash
	alg    string
	want   Digest
	n      int64
	cancel context.CancelFunc
	eof    bool
	err    error
}

func (c *checkingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.eof {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
		if got := SumDigest(c.alg, c.h); c.want != "" && got != c.want {
			c.err = atelier.Errorf(atelier.EINVALID, "the content's digest is %s, not %s", got, c.want)
		}
	} else if err != nil {
		c.err = err
	}
	if c.err != nil {
		c.cancel()
		return 0, c.err
	}
	return n, err
}

func (s *BucketBlobs) Open(ctx context.Context, d Digest, offset, length int64) (io.ReadCloser, error) {
	if s.disk != nil {
		return s.disk.Open(ctx, d, offset, length)
	}
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	r, err := s.bucket.NewRangeReader(ctx, bucketKey(d), offset, length, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, notFound(d)
		}
		// S3 refuses a range that starts at the end (416) where the others read nothing.
		if info, serr := s.Stat(ctx, d); serr == nil && offset >= info.Size {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("opening blob %s: %w", d, err)
	}
	return r, nil
}

func (s *BucketBlobs) Stat(ctx context.Context, d Digest) (BlobInfo, error) {
	if s.disk != nil {
		return s.disk.Stat(ctx, d)
	}
	if err := checkDigest(d); err != nil {
		return BlobInfo{}, err
	}
	attrs, err := s.bucket.Attributes(ctx, bucketKey(d))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return BlobInfo{}, notFound(d)
	} else if err != nil {
		return BlobInfo{}, fmt.Errorf("stat of blob %s: %w", d, err)
	}
	mod := attrs.ModTime
	if t, err := time.Parse(time.RFC3339Nano, attrs.Metadata[putTimeKey]); err == nil {
		mod = t
	}
	return BlobInfo{Digest: d, Size: attrs.Size, ModTime: mod}, nil
}

func (s *BucketBlobs) Delete(ctx context.Context, d Digest) error {
	if s.disk != nil {
		return s.disk.Delete(ctx, d)
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := s.bucket.Delete(ctx, bucketKey(d)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("deleting blob %s: %w", d, err)
	}
	return nil
}

func (s *BucketBlobs) Walk(ctx context.Context, fn func(BlobInfo) error) error {
	if s.disk != nil {
		return s.disk.Walk(ctx, fn)
	}
	for alg := range algorithms {
		it := s.bucket.List(&blob.ListOptions{Prefix: alg + "/"})
		for {
			obj, err := it.Next(ctx)
			if err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("listing blobs: %w", err)
			}
			d, perr := ParseDigest(alg + ":" + obj.Key[strings.LastIndexByte(obj.Key, '/')+1:])
			if obj.IsDir || perr != nil || obj.Key != bucketKey(d) {
				continue // not content: leave it alone
			}
			// The put time is in the object's metadata, which listing does not return.
			info, err := s.Stat(ctx, d)
			if atelier.ErrorCode(err) == atelier.ENOTFOUND {
				continue // deleted meanwhile
			} else if err != nil {
				return err
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// CleanStaging deletes the staged content of puts a crash cut short, last modified before t
// (a put in progress removes its own), and returns how many it deleted.
func (s *BucketBlobs) CleanStaging(ctx context.Context, t time.Time) (int, error) {
	if s.disk != nil {
		entries, err := os.ReadDir(s.disk.tmpDir())
		n := 0
		for _, e := range entries {
			if info, ierr := e.Info(); ierr == nil && info.ModTime().Before(t) && os.Remove(s.disk.tmpDir()+string(os.PathSeparator)+e.Name()) == nil {
				n++
			}
		}
		return n, err
	}
	it := s.bucket.List(&blob.ListOptions{Prefix: "staging/"})
	n := 0
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		if obj.IsDir || !obj.ModTime.Before(t) {
			continue
		}
		if err := s.bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return n, err
		}
		n++
	}
}

// Close closes the bucket.
func (s *BucketBlobs) Close() error { return s.bucket.Close() }
