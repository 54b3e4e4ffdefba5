package datastore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/atelier-ml/atelier"
)

var _ atelier.DatastoreBucket = (*Bucket)(nil)

// bufferSize bounds the memory of one transfer.
const bufferSize = 1 << 20

var bufs = sync.Pool{New: func() any { return new([bufferSize]byte) }}

// hashBesideSize is the size from which a local file written to cloud storage is hashed while
// it uploads rather than before: 64 MiB take 40 ms to hash here, and above that one more
// request for the object's tag costs less than the wait. A variable for tests.
var hashBesideSize int64 = 64 << 20

// fileWriteSize is the most written into a file with one write, however large the reads.
// Linux takes the page cache for a write in folios as large as the write: up to 32 KiB they
// come from per-CPU lists of just-freed pages, larger ones from the allocator's free blocks.
// On a VM that gives free memory back to its host (free page reporting, as on Firecracker),
// those blocks were given back and each page costs a fault on the host when first written:
// downloads of small files in 1 MiB writes took twice the time and CPU of the S3 SDK's
// io.Copy (32 KiB). Network writes stay large: 32 KiB writes to a loopback socket doubled the
// CPU of a TCP download.
const fileWriteSize = 32 << 10

// fileWriter writes into a file in pieces of at most fileWriteSize.
type fileWriter struct{ w io.Writer }

func (w fileWriter) Write(p []byte) (n int, err error) {
	for len(p) > 0 {
		m, err := w.w.Write(p[:min(len(p), fileWriteSize)])
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// Bucket serves a datastore: a gocloud bucket, or a server folder (a files datastore).
type Bucket struct {
	name string
	// b is the bucket, nil for a folder.
	b *blob.Bucket
	// folder is set for a files datastore, which is not read through b (see folder.go).
	folder *folder
	// serverCreds is set when the credentials are the server's own (its artifact location),
	// which users cannot update.
	serverCreds bool
	// digests caches the sha256 of a folder's files, shared by the buckets an Opener opens.
	digests *DigestCache
}

// NewBucket wraps b; name is the datastore's name, used in error messages.
func NewBucket(name string, b *blob.Bucket) *Bucket {
	return &Bucket{name: name, b: b}
}

// Close closes the bucket.
func (b *Bucket) Close() error {
	if b.folder != nil {
		return b.folder.root.Close()
	}
	return b.b.Close()
}

// Probe checks that the server's own bucket b (called name in errors) answers and accepts the
// server's credentials, by listing one key: at start, so that a misconfigured server says so
// at once instead of failing its first run. b stays open.
func Probe(ctx context.Context, name string, b *blob.Bucket) error {
	if _, _, err := b.ListPage(ctx, blob.FirstPageToken, 1, nil); err != nil {
		return (&Bucket{name: name, serverCreds: true}).mapError("list", "", err)
	}
	return nil
}

// Write streams r to path, hashing it (a files datastore: only to check a given digest). It goes through the drivers' one-shot Upload, fed by a
// reader that cancels the write's context before it reports any failure (of the client's
// stream, or a sha256 mismatch at the end): every gocloud driver then aborts instead of
// committing, so nothing appears under path.
func (b *Bucket) Write(ctx context.Context, path string, r io.Reader, want, contentType string) (*atelier.DatastoreFile, error) {
	if err := validPath(path); err != nil {
		return nil, err
	}
	if want != "" {
		if err := atelier.ValidateDigest(want); err != nil {
			return nil, err
		}
	}
	if contentType == "" {
		// Set, so the driver opens at once (sniffing would buffer the first 512 bytes).
		contentType = "application/octet-stream"
	}
	var h hash.Hash
	var beside *localFile // hashed while it uploads
	if f, ok := r.(*os.File); ok {
		// A local file (passed by a client on the server's machine): hashed first where the
		// digest is needed (cloud storage keeps it with the object; a given one is checked
		// now), then copied, and checked unchanged before the write commits.
		lf, err := newLocalFile(ctx, f, b.name, path)
		if err != nil {
			return nil, err
		}
		switch {
		case b.folder != nil && want == "":
		case b.folder == nil && want == "" && lf.id.size >= hashBesideSize:
			// Hashing first would add its time to the upload's: the digest is computed
			// beside, and kept by the server (see atelier.DatastoreDigest).
			beside = lf
		default:
			sum, err := lf.sha256(ctx)
			if err != nil {
				return nil, err
			}
			if want != "" && sum != want {
				return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the content does not match sha256 %s (got %s); nothing was stored", b.name, path, want, sum)
			}
			want = sum
		}
		r = lf
	} else if want != "" || b.folder == nil {
		h = sha256.New()
	}
	if b.folder != nil {
		return b.writeFolder(ctx, path, r, want, h)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if beside != nil {
		beside.hashBeside(wctx)
	}
	if want != "" {
		wctx = withContentSHA256(wctx, want)
	}
	vr := &verifyingReader{r: r, h: h, want: want, cancel: cancel, b: b, path: path}
	opts := &blob.WriterOptions{ContentType: contentType}
	if want != "" {
		// Known before the first byte, so it goes with the object (S3 takes metadata only when
		// an upload starts); an upload whose content differs is aborted, metadata included.
		opts.Metadata = map[string]string{sha256Key: want}
	}
	// The one-shot Upload commits nothing after a failure (and Azure's writer cannot be
	// closed safely after a failed Write).
	err := b.b.Upload(wctx, path, vr, opts)
	if vr.err != nil {
		return nil, b.sourceError(path, vr.err) // the source's failure, not the storage's
	}
	if err != nil {
		return nil, b.mapError("write", path, err)
	}
	// What was written, without asking the storage again (a request per file): the time is
	// the server's, and the MD5 shows in listings.
	f := &atelier.DatastoreFile{Path: path, Size: vr.n, ModifiedAt: time.Now().UTC(), SHA256: want}
	switch {
	case h != nil:
		f.SHA256 = hex.EncodeToString(h.Sum(nil))
	case beside != nil:
		// The object's tag, which the digest the server keeps is valid for. Without it the
		// file is stored all the same; only a later upload will not know it unchanged.
		f.SHA256 = beside.sum
		if a, err := b.b.Attributes(ctx, path); err == nil && a.Size == f.Size {
			f.ETag, f.ModifiedAt = a.ETag, a.ModTime.UTC()
		}
	}
	return f, nil
}

// verifyingReader hashes what it reads (unless h is nil: a local file, hashed before). On the
// source's failure, or at EOF when the content does not match want, it cancels the write
// before returning the error.
type verifyingReader struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	want   string
	cancel context.CancelFunc
	err    error
	// b and path name the write in errors.
	b    *Bucket
	path string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	v.n += int64(n)
	switch {
	case err == io.EOF && v.want != "" && v.h != nil:
		if sum := hex.EncodeToString(v.h.Sum(nil)); sum != v.want {
			v.err = atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the content does not match sha256 %s (got %s); nothing was stored",
				v.b.name, v.path, v.want, sum)
		}
	case err != nil && err != io.EOF:
		v.err = err
	}
	if v.err != nil {
		v.cancel()
		return 0, v.err
	}
	return n, err
}

// sourceError is what a write reports when its source failed: the source's own error where
// it says what happened (a local file that changed, a digest that differs, the request's end),
// else the client's broken stream, which is the client's to retry.
func (b *Bucket) sourceError(path string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || atelier.ErrorCode(err) != atelier.EINTERNAL {
		return err
	}
	return atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the upload broke off (%v); nothing was stored", b.name, path, err)
}

// Open opens a file for reading.
func (b *Bucket) Open(ctx context.Context, path string) (*atelier.DatastoreFile, io.ReadCloser, error) {
	if err := validPath(path); err != nil {
		return nil, nil, err
	}
	if b.folder != nil {
		return b.openFolder(path)
	}
	r, err := b.b.NewReader(ctx, path, nil)
	if err != nil {
		return nil, nil, b.mapError("read", path, err)
	}
	return &atelier.DatastoreFile{Path: path, Size: r.Size(), ModifiedAt: r.ModTime().UTC()}, &reader{r: r, b: b, path: path}, nil
}

// reader maps the errors of a read in progress.
type reader struct {
	r    *blob.Reader
	b    *Bucket
	path string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.mapError("read", r.path, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

// WriteTo copies in reads of bufferSize (the destination's ReadFrom would use 32 KiB), into a
// file in writes of fileWriteSize.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	buf := bufs.Get().(*[bufferSize]byte)
	defer bufs.Put(buf)
	if f, ok := w.(*os.File); ok {
		w = fileWriter{f}
	}
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf[:])
}

// Stat returns a file's attributes.
func (b *Bucket) Stat(ctx context.Context, path string) (*atelier.DatastoreFile, error) {
	if err := validPath(path); err != nil {
		return nil, err
	}
	if b.folder != nil {
		return b.statFolder(path)
	}
	a, err := b.b.Attributes(ctx, path)
	if err != nil {
		return nil, b.mapError("stat", path, err)
	}
	return fileOf(path, a), nil
}

// List returns one page of the files under q.Prefix.
func (b *Bucket) List(ctx context.Context, q atelier.DatastoreFileQuery) (*atelier.DatastoreFilePage, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if p := strings.TrimSuffix(q.Prefix, "/"); p != "" {
		if err := validPath(p); err != nil {
			return nil, err
		}
	}
	limit := q.Limit
	if limit == 0 {
		limit = atelier.DefaultDatastoreFileLimit
	}
	var token []byte // the last path of the previous page
	if q.PageToken != "" {
		t, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		if err != nil || len(t) == 0 {
			return nil, atelier.Errorf(atelier.EINVALID, "invalid page token")
		}
		token = t
	}
	if b.folder != nil {
		files, next, err := b.listFolder(ctx, q.Prefix, q.Recursive, string(token), limit)
		if err != nil {
			return nil, err
		}
		page := &atelier.DatastoreFilePage{Files: files}
		if next != "" {
			page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(next))
		}
		return page, nil
	}
	opts := &blob.ListOptions{Prefix: q.Prefix}
	if !q.Recursive {
		opts.Delimiter = "/"
	}
	if token == nil {
		token = blob.FirstPageToken
	}
	objs, next, err := b.b.ListPage(ctx, token, limit, opts)
	if err != nil {
		return nil, b.mapError("list", q.Prefix, err)
	}
	page := &atelier.DatastoreFilePage{Files: make([]*atelier.DatastoreFile, 0, len(objs))}
	for _, o := range objs {
		page.Files = append(page.Files, &atelier.DatastoreFile{Path: o.Key, Size: o.Size, MD5: hex.EncodeToString(o.MD5),
			ModifiedAt: o.ModTime.UTC(), Dir: o.IsDir})
	}
	if len(next) > 0 {
		page.NextPageToken = base64.RawURLEncoding.EncodeToString(next)
	}
	return page, nil
}

// Delete removes a file.
func (b *Bucket) Delete(ctx context.Context, path string) error {
	if err := validPath(path); err != nil {
		return err
	}
	if b.folder != nil {
		return b.deleteFolder(path)
	}
	if err := b.b.Delete(ctx, path); err != nil {
		return b.mapError("delete", path, err)
	}
	return nil
}

// mapError turns a backend error into an atelier error that names the datastore and the path
// and says what to fix. Only what no user can fix stays internal (and is logged by the API).
func (b *Bucket) mapError(op, path string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	what := fmt.Sprintf("datastore %q", b.name)
	if path != "" {
		what += ": " + path
	}
	code, status := backendCode(err)
	detail := ""
	if code != "" || status != 0 {
		detail = fmt.Sprintf(" (%s)", strings.TrimSpace(strings.Join(nonEmpty(code, statusText(status)), ", ")))
	}
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || code == "QuotaExceeded" || code == "InsufficientStorage":
		whose := "the datastore's"
		if b.serverCreds || b.folder != nil {
			whose = "the server's" // a folder on its disks, the built-in datastores, the artifact location
		}
		return atelier.Errorf(atelier.ENOSPACE, "%s: %s storage is full%s: nothing was stored", what, whose, detail)
	case bucketMissing(err, code):
		return atelier.Errorf(atelier.ENOTFOUND, "datastore %q: the bucket or container does not exist%s", b.name, detail)
	case authFailure(err, code, status):
		if b.serverCreds {
			return atelier.Errorf(atelier.EFORBIDDEN, "datastore %q: the storage refused the server's credentials%s: its administrator must fix them in the server's environment", b.name, detail)
		}
		return atelier.Errorf(atelier.EFORBIDDEN, "datastore %q: the storage refused the datastore's credentials%s: update them with 'atelier datastore update'", b.name, detail)
	case gcerrors.Code(err) == gcerrors.NotFound || status == 404:
		if op == "write" {
			return atelier.Errorf(atelier.ENOTFOUND, "datastore %q: the bucket or container does not exist%s", b.name, detail)
		}
		if op == "list" {
			return atelier.Errorf(atelier.ENOTFOUND, "datastore %q: not found%s", b.name, detail)
		}
		return atelier.Errorf(atelier.ENOTFOUND, "%s: no such file", what)
	case unreachable(err):
		return atelier.Errorf(atelier.EUNAVAILABLE, "datastore %q: the storage cannot be reached: %v", b.name, netCause(err))
	case status >= 500 || gcerrors.Code(err) == gcerrors.ResourceExhausted:
		return atelier.Errorf(atelier.EUNAVAILABLE, "datastore %q: the storage failed to %s %s%s; try again later", b.name, op, path, detail)
	case status >= 400:
		return atelier.Errorf(atelier.EINVALID, "datastore %q: the storage refused to %s %s%s: check the datastore's configuration (endpoint, region, bucket)", b.name, op, path, detail)
	}
	// Internal: logged, not returned. A URL in the message may carry a SAS or a presigned
	// signature, so query strings are cut from the text.
	return fmt.Errorf("%s: %s: %s", what, op, redact(err.Error()))
}

var urlQuery = regexp.MustCompile(`(https?://[^\s?"]*)\?[^\s"]*`)

// redact removes the query strings of URLs in an error message.
func redact(s string) string { return urlQuery.ReplaceAllString(s, "$1?REDACTED") }

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func statusText(status int) string {
	if status == 0 {
		return ""
	}
	return fmt.Sprintf("HTTP %d", status)
}

// backendCode digs the storage's error code and HTTP status out of the SDKs' error types.
func backendCode(err error) (code string, status int) {
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		status = hs.HTTPStatusCode()
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		code, status = az.ErrorCode, az.StatusCode
	}
	var g *googleapi.Error
	if errors.As(err, &g) {
		status = g.Code
		if len(g.Errors) > 0 {
			code = g.Errors[0].Reason
		}
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code = re.ErrorCode
		if re.Response != nil {
			status = re.Response.StatusCode
		}
	}
	return code, status
}

func bucketMissing(err error, code string) bool {
	return code == "NoSuchBucket" || code == "ContainerNotFound" || errors.Is(err, storage.ErrBucketNotExist)
}

// unknownKey are the codes of S3-compatible servers for an access key they do not know, some
// of which answer 404.
var unknownKey = map[string]bool{"InvalidAccessKeyId": true, "XAdminUserNotFound": true}

func authFailure(err error, code string, status int) bool {
	if unknownKey[code] {
		return true
	}
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidToken", "ExpiredToken",
		"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch", "invalid_grant", "invalid_client":
		return true
	}
	var re *oauth2.RetrieveError
	return status == 401 || status == 403 || gcerrors.Code(err) == gcerrors.PermissionDenied || errors.As(err, &re)
}

func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var ue *url.Error
	return errors.As(err, &op) || errors.As(err, &dns) || (errors.As(err, &ue) && (ue.Timeout() || errors.Is(ue.Err, io.EOF)))
}

// netCause keeps the network part of an error: no request URL (which may carry a SAS).
func netCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns
	}
	return errors.New("connection failed")
}

// maxComponent is the most bytes a name in a datastore path may hold: the limit of the file
// systems a files datastore lives on, kept by every kind, so that a path that one datastore
// takes fits any other (and a server folder answers a clear error, not the system's).
const maxComponent = 255

// validPath checks a datastore path.
func validPath(p string) error {
	if err := atelier.ValidatePath(p); err != nil {
		return err
	}
	for el := range strings.SplitSeq(p, "/") {
		if len(el) > maxComponent {
			return atelier.Errorf(atelier.EINVALID, "invalid path %q: the name %q is %d bytes long; the limit is %d bytes per path component",
				shorten(p), shorten(el), len(el), maxComponent)
		}
	}
	return nil
}

// shorten cuts a long name for a message.
func shorten(s string) string {
	const keep = 40
	if len(s) <= keep {
		return s
	}
	s = s[:keep]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
