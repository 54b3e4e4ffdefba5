package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/atelier-ml/atelier"
)

// parseDigestRef checks the digest of a blob, manifest or referrers path.
func parseDigestRef(s string) (Digest, error) {
	d, err := ParseDigest(s)
	if err != nil {
		return "", errorf(DigestInvalid, "%s", atelier.ErrorMessage(err))
	}
	return d, nil
}

// getBlob serves GET and HEAD of a blob the repository links. Range requests are served (a
// single range, or several as multipart) by http.ServeContent over a reader that opens the
// content where it is asked to read.
func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestRef(rt.ref)
	if err != nil {
		return err
	}
	if _, err := reg.authorize(w, r, rt.name, Pull); err != nil {
		return err
	}
	size, err := reg.meta.BlobLink(r.Context(), rt.name, d)
	if err != nil {
		return asRegistryError(err, BlobUnknown)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+string(d)+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000") // content named by its digest never changes
	if r.Method == http.MethodHead {
		h.Set("Content-Length", fmt.Sprint(size))
		return nil
	}
	if r.Header.Get("Range") != "" {
		br := &blobReader{ctx: r.Context(), store: reg.blobs, d: d, size: size}
		defer br.Close()
		http.ServeContent(w, r, "", time.Time{}, br)
		return nil
	}
	rc, err := reg.blobs.Open(r.Context(), d, 0, -1)
	if err != nil {
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			reg.log.Error("a linked blob has no content", "repository", rt.name, "digest", d)
		}
		return asRegistryError(err, BlobUnknown)
	}
	defer rc.Close()
	h.Set("Content-Length", fmt.Sprint(size))
	// io.Copy hands a file to the connection's ReadFrom, which can sendfile it.
	if n, err := io.Copy(w, rc); err != nil || n != size {
		// The status is sent: all that is left is to cut the response short.
		reg.log.Warn("blob download ended early", "digest", d, "sent", n, "size", size, "error", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// blobReader is an io.ReadSeeker over stored content that opens it at the position of the
// first read after a seek, so http.ServeContent can serve ranges from any BlobStore.
type blobReader struct {
	ctx   context.Context
	store BlobStore
	d     Digest
	size  int64
	pos   int64
	rc    io.ReadCloser
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if b.rc == nil {
		rc, err := b.store.Open(b.ctx, b.d, b.pos, -1)
		if err != nil {
			return 0, err
		}
		b.rc = rc
	}
	n, err := b.rc.Read(p)
	b.pos += int64(n)
	return n, err
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	pos := offset
	switch whence {
	case io.SeekCurrent:
		pos += b.pos
	case io.SeekEnd:
		pos += b.size
	}
	if pos < 0 {
		return 0, errors.New("seek before the start of the blob")
	}
	if pos != b.pos {
		b.Close()
	}
	b.pos = pos
	return pos, nil
}

func (b *blobReader) Close() error {
	if b.rc == nil {
		return nil
	}
	err := b.rc.Close()
	b.rc = nil
	return err
}

// deleteBlob removes the repository's link to a blob; its content goes with the next garbage
// collection if nothing else holds it.
func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestRef(rt.ref)
	if err != nil {
		return err
	}
	if _, err := reg.authorize(w, r, rt.name, Delete); err != nil {
		return err
	}
	if err := reg.meta.UnlinkBlob(r.Context(), rt.name, d); err != nil {
		return asRegistryError(err, BlobUnknown)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
