package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// errContentGone says content was collected between being put and being linked.
var errContentGone = atelier.Errorf(atelier.EUNAVAILABLE, "the blob was garbage-collected while it was pushed: push it again")

// link lets repo read stored content. Under the read side of gcMu it checks the content is
// still there, so a collection (which deletes under the write side) cannot leave the link
// pointing at nothing.
func (reg *Registry) link(ctx context.Context, repo string, d Digest, size int64) error {
	reg.gcMu.RLock()
	defer reg.gcMu.RUnlock()
	if _, err := reg.blobs.Stat(ctx, d); err != nil {
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return errContentGone
		}
		return err
	}
	return reg.meta.LinkBlob(ctx, repo, d, size, reg.now())
}

// trackReader remembers the error reading a request body, which is the client's doing (a
// connection cut short), unlike the errors of storing it.
type trackReader struct {
	r   io.Reader
	err error
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// put stores a request body (want "" for a chunk) and names the failure in the spec's terms.
func (reg *Registry) put(ctx context.Context, body io.Reader, want Digest) (BlobInfo, error) {
	tr := &trackReader{r: body}
	info, err := reg.blobs.Put(ctx, tr, want)
	switch {
	case err == nil:
		return info, nil
	case tr.err != nil:
		return BlobInfo{}, errorf(BlobUploadInvalid, "the upload ended before all its content arrived (%v): nothing was stored", tr.err)
	case atelier.ErrorCode(err) == atelier.EINVALID:
		return BlobInfo{}, errorf(DigestInvalid, "%s: nothing was stored", atelier.ErrorMessage(err))
	}
	return BlobInfo{}, asRegistryError(err, BlobUnknown)
}

// putBlob stores a whole blob and links it into repo.
func (reg *Registry) putBlob(ctx context.Context, repo string, body io.Reader, want Digest) error {
	info, err := reg.put(ctx, body, want)
	if err != nil {
		return err
	}
	return reg.link(ctx, repo, info.Digest, info.Size)
}

// blobCreated answers a finished push or mount.
func blobCreated(w http.ResponseWriter, repo string, d Digest) error {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+string(d))
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// startUpload serves POST /v2/<name>/blobs/uploads/: a mount from another repository, a whole
// blob in one request (?digest=), or the start of an upload session.
func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	if _, err := reg.authorize(w, r, rt.name, Push); err != nil {
		return err
	}
	ctx := r.Context()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigestRef(m)
		if err != nil {
			return err
		}
		from := q.Get("from")
		if from != "" {
			if err := ValidateName(from); err != nil {
				return errorf(NameInvalid, "%s", atelier.ErrorMessage(err))
			}
		}
		mounted, err := reg.mount(r, rt.name, d, from)
		if err != nil {
			return err
		} else if mounted {
			return blobCreated(w, rt.name, d)
		}
		// The spec's answer to a mount it cannot do: a session to upload the blob instead.
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigestRef(ds)
		if err != nil {
			return err
		}
		if err := reg.putBlob(ctx, rt.name, r.Body, d); err != nil {
			return err
		}
		return blobCreated(w, rt.name, d)
	}
	if alg := q.Get("digest-algorithm"); alg != "" && !ValidAlgorithm(alg) {
		return errorf(DigestInvalid, "unsupported digest-algorithm %q: use sha256 or sha512", alg)
	}
	if r.ContentLength > 0 {
		return errorf(BlobUploadInvalid, "a POST with content needs ?digest=<digest of the content>")
	}
	now := reg.now()
	u := &Upload{ID: reg.newID(), Repo: rt.name, Started: now, Updated: now}
	if err := reg.meta.CreateUpload(ctx, u); err != nil {
		return err
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// mount links d into repo from a repository the caller may pull that links it: from, or when
// from is empty, any. It reports false when there is none.
func (reg *Registry) mount(r *http.Request, repo string, d Digest, from string) (bool, error) {
	ctx := r.Context()
	sources := []string{from}
	if from == "" {
		var err error
		if sources, err = reg.meta.BlobRepositories(ctx, d); err != nil {
			return false, err
		}
	}
	for _, src := range sources {
		if src != repo {
			if _, err := reg.auth.Authorize(r, src, Pull); err != nil {
				switch atelier.ErrorCode(err) {
				case atelier.EUNAUTHORIZED, atelier.EFORBIDDEN, atelier.ENOTFOUND:
					continue
				}
				return false, err
			}
		}
		size, err := reg.meta.BlobLink(ctx, src, d)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			continue
		} else if err != nil {
			return false, err
		}
		if err := reg.link(ctx, repo, d, size); err == errContentGone {
			continue
		} else if err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// setUploadHeaders tells a client where its session is and how much of it arrived.
func setUploadHeaders(w http.ResponseWriter, u *Upload) {
	h := w.Header()
	h.Set("Location", "/v2/"+u.Repo+"/blobs/uploads/"+u.ID)
	// distribution answers 0-0 for an empty session too, and clients expect it.
	h.Set("Range", fmt.Sprintf("0-%d", max(u.Size-1, 0)))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Content-Length", "0")
}

// session authorizes a push and returns the upload session of the route.
func (reg *Registry) session(w http.ResponseWriter, r *http.Request, rt route) (*Upload, error) {
	if _, err := reg.authorize(w, r, rt.name, Push); err != nil {
		return nil, err
	}
	u, err := reg.meta.Upload(r.Context(), rt.ref)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND || err == nil && u.Repo != rt.name {
		return nil, errorf(BlobUploadUnknown, "no upload session %q in repository %s", rt.ref, rt.name)
	} else if err != nil {
		return nil, err
	}
	return u, nil
}

func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := reg.session(w, r, rt)
	if err != nil {
		return err
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := reg.session(w, r, rt)
	if err != nil {
		return err
	}
	if err := reg.meta.DeleteUpload(r.Context(), u.ID); err != nil {
		return asRegistryError(err, BlobUploadUnknown)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// chunkRange is a request's Content-Range: "<start>-<end>", inclusive (distribution's clients
// may prefix it with "bytes ").
type chunkRange struct {
	set        bool
	start, end int64
}

// parseChunk reads the Content-Range of a chunk and checks it against the session and the
// request's Content-Length. A chunk that does not start where the session ends is a 416.
func parseChunk(w http.ResponseWriter, r *http.Request, u *Upload) (chunkRange, error) {
	v := r.Header.Get("Content-Range")
	if v == "" {
		return chunkRange{}, nil
	}
	s := strings.TrimPrefix(strings.TrimPrefix(v, "bytes "), "bytes=")
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return chunkRange{}, errorf(BlobUploadInvalid, "invalid Content-Range %q: want <start>-<end>", v)
	}
	if start != u.Size {
		setUploadHeaders(w, u)
		return chunkRange{}, errorf(BlobUploadInvalid, "the chunk starts at %d but the upload has %d bytes: chunks must come in order", start, u.Size).
			withStatus(http.StatusRequestedRangeNotSatisfiable)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return chunkRange{}, errorf(SizeInvalid, "Content-Range %q announces %d bytes but Content-Length is %d", v, end-start+1, r.ContentLength)
	}
	return chunkRange{set: true, start: start, end: end}, nil
}

// appendChunk stores a request body as the session's next chunk.
func (reg *Registry) appendChunk(w http.ResponseWriter, r *http.Request, u *Upload, cr chunkRange) (*Upload, error) {
	chunk, err := reg.put(r.Context(), r.Body, "")
	if err != nil {
		return nil, err
	}
	if cr.set && chunk.Size != cr.end-cr.start+1 {
		return nil, errorf(SizeInvalid, "the chunk has %d bytes but its Content-Range announces %d", chunk.Size, cr.end-cr.start+1)
	}
	if chunk.Size == 0 {
		return u, nil
	}
	nu, err := reg.meta.AppendUpload(r.Context(), u.ID, u.Size, Ref{Digest: chunk.Digest, Size: chunk.Size}, reg.now())
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		// Another request added a chunk meanwhile.
		if cur, err := reg.meta.Upload(r.Context(), u.ID); err == nil {
			setUploadHeaders(w, cur)
		}
		return nil, errorf(BlobUploadInvalid, "the upload moved on while this chunk arrived: chunks must come in order").
			withStatus(http.StatusRequestedRangeNotSatisfiable)
	} else if err != nil {
		return nil, asRegistryError(err, BlobUploadUnknown)
	}
	return nu, nil
}

func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := reg.session(w, r, rt)
	if err != nil {
		return err
	}
	cr, err := parseChunk(w, r, u)
	if err != nil {
		return err
	}
	if u, err = reg.appendChunk(w, r, u, cr); err != nil {
		return err
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// putUpload closes a session: its last chunk may come with the request, and the whole must have
// the digest the client names. A digest that does not match ends the session with nothing
// stored under its name; a last chunk cut short leaves the session as it was, to be resumed.
func (reg *Registry) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return errorf(DigestInvalid, "closing an upload needs ?digest=<digest of the whole blob>")
	}
	d, err := parseDigestRef(ds)
	if err != nil {
		return err
	}
	u, err := reg.session(w, r, rt)
	if err != nil {
		return err
	}
	cr, err := parseChunk(w, r, u)
	if err != nil {
		return err
	}
	ctx := r.Context()
	hasBody := r.ContentLength != 0 && r.Body != http.NoBody
	switch {
	case hasBody && len(u.Chunks) == 0:
		// The whole blob in this request (POST then PUT): store it straight under its digest.
		err = reg.putBlob(ctx, rt.name, r.Body, d)
	case hasBody:
		if u, err = reg.appendChunk(w, r, u, cr); err != nil {
			return err
		}
		fallthrough
	default:
		err = reg.assemble(ctx, u, d)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == DigestInvalid {
			if derr := reg.meta.DeleteUpload(ctx, u.ID); derr != nil && atelier.ErrorCode(derr) != atelier.ENOTFOUND {
				reg.log.Error("ending a failed upload session", "upload", u.ID, "error", derr)
			}
		}
		return err
	}
	if err := reg.meta.DeleteUpload(ctx, u.ID); err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return err
	}
	return blobCreated(w, rt.name, d)
}

// assemble stores the session's chunks as one blob of digest d and links it. A session of one
// chunk with that digest already is the blob (the usual docker push: one streamed PATCH).
func (reg *Registry) assemble(ctx context.Context, u *Upload, d Digest) error {
	if len(u.Chunks) == 1 && u.Chunks[0].Digest == d {
		return reg.link(ctx, u.Repo, d, u.Chunks[0].Size)
	}
	cr := &chunksReader{ctx: ctx, store: reg.blobs, chunks: u.Chunks}
	defer cr.Close()
	info, err := reg.blobs.Put(ctx, cr, d)
	switch {
	case err == nil:
		return reg.link(ctx, u.Repo, info.Digest, info.Size)
	case cr.err != nil:
		return fmt.Errorf("reading the chunks of upload %s: %w", u.ID, cr.err)
	case atelier.ErrorCode(err) == atelier.EINVALID:
		return errorf(DigestInvalid, "%s: nothing was stored", atelier.ErrorMessage(err))
	}
	return asRegistryError(err, BlobUnknown)
}

// chunksReader reads a session's chunks one after the other.
type chunksReader struct {
	ctx    context.Context
	store  BlobStore
	chunks []Ref
	rc     io.ReadCloser
	err    error
}

func (c *chunksReader) Read(p []byte) (int, error) {
	for {
		if c.rc == nil {
			if len(c.chunks) == 0 {
				return 0, io.EOF
			}
			rc, err := c.store.Open(c.ctx, c.chunks[0].Digest, 0, -1)
			if err != nil {
				c.err = err
				return 0, err
			}
			c.rc, c.chunks = rc, c.chunks[1:]
		}
		n, err := c.rc.Read(p)
		if err == io.EOF {
			c.rc.Close()
			c.rc = nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		if err != nil {
			c.err = err
		}
		return n, err
	}
}

func (c *chunksReader) Close() error {
	if c.rc != nil {
		return c.rc.Close()
	}
	return nil
}
