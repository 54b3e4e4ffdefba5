// Package registry is atelier's OCI distribution registry: the /v2/ API of the distribution
// spec v1.1 (pull, push, content discovery with referrers, content management) over two small
// storage interfaces, a content-addressed BlobStore and a Metadata store, with authorization
// decided by an injected Authorizer. It passes the OCI conformance suite (see conformance.sh).
package registry

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// Defaults of Options.
const (
	DefaultMaxManifestSize = 4 << 20 // the spec asks registries to accept at least 4 MiB
	DefaultTokenTTL        = 5 * time.Minute
	DefaultGCGrace         = time.Hour
	DefaultUploadTTL       = 24 * time.Hour
	DefaultService         = "atelier"
)

// Options configure a Registry. Blobs, Metadata and Authorizer are required.
type Options struct {
	Blobs      BlobStore
	Metadata   Metadata
	Authorizer Authorizer
	Logger     *slog.Logger
	Now        func() time.Time
	NewID      func() string // upload session IDs; random UUIDs by default

	// TokenKey signs the bearer tokens of /v2/token; replicas must share it. A random key is
	// made when it is empty, so tokens do not outlive the process.
	TokenKey []byte
	TokenTTL time.Duration
	// TokenRealm is the absolute URL of the token endpoint clients are sent to; by default it is
	// derived from each request's host (set it behind a proxy that rewrites the host or scheme).
	TokenRealm string
	// Service names the registry in challenges (the service of docker's token protocol).
	Service string

	MaxManifestSize int64
	// GCGrace spares content and links younger than it from garbage collection: a client may
	// push a blob and reference it from a manifest a while later.
	GCGrace time.Duration
	// UploadTTL ends upload sessions idle for longer.
	UploadTTL time.Duration
}

// Registry is an http.Handler serving the distribution API under /v2/.
type Registry struct {
	blobs           BlobStore
	meta            Metadata
	auth            Authorizer
	log             *slog.Logger
	now             func() time.Time
	newID           func() string
	tokenKey        []byte
	tokenTTL        time.Duration
	tokenRealm      string
	service         string
	maxManifestSize int64
	gcGrace         time.Duration
	uploadTTL       time.Duration

	// gcMu orders garbage collection against pushes in this process: a collection deletes
	// content under the write lock, and a push checks its content is there and links it under a
	// read lock, so a link never outlives its content.
	gcMu sync.RWMutex
	// gcRun lets one collection run at a time.
	gcRun sync.Mutex
}

// New returns a Registry.
func New(o Options) (*Registry, error) {
	if o.Blobs == nil || o.Metadata == nil || o.Authorizer == nil {
		return nil, errors.New("registry: Blobs, Metadata and Authorizer are required")
	}
	reg := &Registry{
		blobs: o.Blobs, meta: o.Metadata, auth: o.Authorizer, log: o.Logger, now: o.Now, newID: o.NewID,
		tokenKey: o.TokenKey, tokenTTL: o.TokenTTL, tokenRealm: o.TokenRealm, service: o.Service,
		maxManifestSize: o.MaxManifestSize, gcGrace: o.GCGrace, uploadTTL: o.UploadTTL,
	}
	if reg.log == nil {
		reg.log = slog.New(slog.DiscardHandler)
	}
	if reg.now == nil {
		reg.now = time.Now
	}
	if reg.newID == nil {
		reg.newID = newUUID
	}
	if len(reg.tokenKey) == 0 {
		reg.tokenKey = make([]byte, 32)
		rand.Read(reg.tokenKey)
	}
	if reg.tokenTTL <= 0 {
		reg.tokenTTL = DefaultTokenTTL
	}
	if reg.service == "" {
		reg.service = DefaultService
	}
	if reg.maxManifestSize <= 0 {
		reg.maxManifestSize = DefaultMaxManifestSize
	}
	if reg.gcGrace < 0 {
		return nil, errors.New("registry: GCGrace must not be negative")
	} else if o.GCGrace == 0 {
		reg.gcGrace = DefaultGCGrace
	}
	if reg.uploadTTL <= 0 {
		reg.uploadTTL = DefaultUploadTTL
	}
	return reg, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Route kinds.
const (
	routePing = iota + 1
	routeCatalog
	routeToken
	routeManifest
	routeBlob
	routeUpload
	routeTags
	routeReferrers
)

// route is a parsed request path: /v2/<name>/<kind>/<ref>.
type route struct {
	kind int
	name string
	ref  string // tag or digest, digest, upload ID
}

// parseRoute splits a /v2/ path. Names contain slashes, so the kind is found from the end.
func parseRoute(path string) (route, bool) {
	switch path {
	case "/v2/", "/v2":
		return route{kind: routePing}, true
	case "/v2/_catalog":
		return route{kind: routeCatalog}, true
	case "/v2/token":
		return route{kind: routeToken}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	name := func(k int) string { return strings.Join(segs[:n-k], "/") }
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return route{kind: routeUpload, name: name(3), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return route{kind: routeUpload, name: name(2)}, true
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return route{kind: routeTags, name: name(2)}, true
	case n >= 3 && segs[n-2] == "manifests":
		return route{kind: routeManifest, name: name(2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "blobs":
		return route{kind: routeBlob, name: name(2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "referrers":
		return route{kind: routeReferrers, name: name(2), ref: segs[n-1]}, true
	}
	return route{}, false
}

// ServeHTTP serves the distribution API.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := reg.serve(w, r); err != nil {
		reg.writeError(w, r, err)
	}
}

func (reg *Registry) serve(w http.ResponseWriter, r *http.Request) error {
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		return errorf(NameUnknown, "no such registry endpoint: %s", r.URL.Path).withStatus(http.StatusNotFound)
	}
	if rt.kind == routeToken {
		// A token is had for credentials only, never for another token: that would let a
		// stolen token renew itself forever.
		return reg.serveToken(w, r)
	}
	r, err := reg.authenticateToken(r)
	if err != nil {
		reg.challenge(w, r, "", Pull, "invalid_token")
		return errorf(Unauthorized, "%s", atelier.ErrorMessage(err))
	}
	if rt.name != "" {
		if err := ValidateName(rt.name); err != nil {
			return errorf(NameInvalid, "%s", atelier.ErrorMessage(err))
		}
	}
	switch rt.kind {
	case routePing:
		if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		if _, err := reg.authorize(w, r, "", Pull); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return nil
	case routeCatalog:
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		return reg.getCatalog(w, r)
	case routeManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return reg.getManifest(w, r, rt)
		case http.MethodPut:
			return reg.putManifest(w, r, rt)
		case http.MethodDelete:
			return reg.deleteManifest(w, r, rt)
		}
		return allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
	case routeBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return reg.getBlob(w, r, rt)
		case http.MethodDelete:
			return reg.deleteBlob(w, r, rt)
		}
		return allow(w, r, http.MethodGet, http.MethodHead, http.MethodDelete)
	case routeUpload:
		if rt.ref == "" {
			if err := allow(w, r, http.MethodPost); err != nil {
				return err
			}
			return reg.startUpload(w, r, rt)
		}
		switch r.Method {
		case http.MethodGet:
			return reg.uploadStatus(w, r, rt)
		case http.MethodPatch:
			return reg.patchUpload(w, r, rt)
		case http.MethodPut:
			return reg.putUpload(w, r, rt)
		case http.MethodDelete:
			return reg.cancelUpload(w, r, rt)
		}
		return allow(w, r, http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)
	case routeTags:
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		return reg.getTags(w, r, rt)
	case routeReferrers:
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		return reg.getReferrers(w, r, rt)
	}
	return fmt.Errorf("unhandled route kind %d", rt.kind)
}

// allow refuses a method not in methods with 405 and the Allow header.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	return errorf(Unsupported, "method %s is not allowed here", r.Method)
}
