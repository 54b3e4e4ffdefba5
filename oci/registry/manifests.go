package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Manifest media types the registry accepts.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// isIndex tells the media types listing manifests from those listing a config and layers.
var isIndex = map[string]bool{
	MediaTypeImageManifest:  false,
	MediaTypeDockerManifest: false,
	MediaTypeImageIndex:     true,
	MediaTypeDockerList:     true,
}

// nonDistributable layers are fetched by clients from their URLs, so a manifest may name them
// without pushing them.
var nonDistributable = map[string]bool{
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
}

// descriptorJSON is a descriptor as manifests write it.
type descriptorJSON struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      *int64   `json:"size"`
	URLs      []string `json:"urls"`
	Data      *string  `json:"data"`
}

// manifestJSON holds the fields of the manifest kinds the registry reads.
type manifestJSON struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptorJSON   `json:"config"`
	Layers        []descriptorJSON  `json:"layers"`
	Manifests     []descriptorJSON  `json:"manifests"`
	Subject       *descriptorJSON   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// ParseManifest checks a pushed manifest and returns what the registry records of it. The
// media type is the Content-Type the client sent, or the manifest's own mediaType. Errors are
// EINVALID and name what is wrong.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	var mj manifestJSON
	if err := json.Unmarshal(body, &mj); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "the manifest is not a JSON object: %v", err)
	}
	mt := contentType
	if base, _, err := mime.ParseMediaType(contentType); err == nil {
		mt = base
	}
	switch {
	case mt == "" || mt == "application/octet-stream" || mt == "application/json":
		mt = mj.MediaType
	case mj.MediaType != "" && mj.MediaType != mt:
		return nil, atelier.Errorf(atelier.EINVALID, "the manifest's mediaType %q differs from its Content-Type %q", mj.MediaType, mt)
	}
	index, known := isIndex[mt]
	if !known {
		if mt == "" {
			return nil, atelier.Errorf(atelier.EINVALID, "the manifest has no media type: set its Content-Type (or mediaType field)")
		}
		return nil, atelier.Errorf(atelier.EINVALID, "unsupported manifest media type %q: push an OCI image manifest or index, or a Docker v2 manifest or list", mt)
	}
	if mj.SchemaVersion == nil || *mj.SchemaVersion != 2 {
		return nil, atelier.Errorf(atelier.EINVALID, "the manifest's schemaVersion must be 2")
	}
	m := &Manifest{MediaType: mt, Body: body, ArtifactType: mj.ArtifactType, Annotations: mj.Annotations}
	if index {
		if mj.Config != nil || mj.Layers != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "an index (%s) has manifests, not a config or layers", mt)
		}
		if mj.Manifests == nil {
			return nil, atelier.Errorf(atelier.EINVALID, "an index (%s) needs a manifests list", mt)
		}
		for i, dj := range mj.Manifests {
			ref, err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), dj)
			if err != nil {
				return nil, err
			}
			m.Manifests = append(m.Manifests, ref)
		}
	} else {
		if mj.Manifests != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "an image manifest (%s) has a config and layers, not manifests", mt)
		}
		if mj.Config == nil {
			return nil, atelier.Errorf(atelier.EINVALID, "an image manifest (%s) needs a config", mt)
		}
		ref, err := checkDescriptor("config", *mj.Config)
		if err != nil {
			return nil, err
		}
		m.Blobs = append(m.Blobs, ref)
		for i, dj := range mj.Layers {
			ref, err := checkDescriptor(fmt.Sprintf("layers[%d]", i), dj)
			if err != nil {
				return nil, err
			}
			if nonDistributable[dj.MediaType] && len(dj.URLs) > 0 {
				continue
			}
			m.Blobs = append(m.Blobs, ref)
		}
		if m.ArtifactType == "" {
			// What the referrers API lists for an image manifest without an artifactType.
			m.ArtifactType = mj.Config.MediaType
		}
	}
	if mj.Subject != nil {
		ref, err := checkDescriptor("subject", *mj.Subject)
		if err != nil {
			return nil, err
		}
		m.Subject = ref.Digest
	}
	return m, nil
}

// checkDescriptor checks a descriptor's digest, size and embedded data.
func checkDescriptor(field string, dj descriptorJSON) (Ref, error) {
	d, err := ParseDigest(dj.Digest)
	if err != nil {
		return Ref{}, atelier.Errorf(atelier.EINVALID, "the manifest's %s: %s", field, atelier.ErrorMessage(err))
	}
	if dj.Size == nil || *dj.Size < 0 {
		return Ref{}, atelier.Errorf(atelier.EINVALID, "the manifest's %s needs a size of 0 or more bytes", field)
	}
	if dj.MediaType == "" {
		return Ref{}, atelier.Errorf(atelier.EINVALID, "the manifest's %s needs a mediaType", field)
	}
	if dj.Data != nil {
		data, err := base64.StdEncoding.DecodeString(*dj.Data)
		if err != nil || int64(len(data)) != *dj.Size || DigestOf(d.Algorithm(), data) != d {
			return Ref{}, atelier.Errorf(atelier.EINVALID, "the manifest's %s has data that is not the %d bytes of %s", field, *dj.Size, d)
		}
	}
	return Ref{Digest: d, Size: *dj.Size}, nil
}

// resolve returns the digest a manifest reference (tag or digest) names in repo.
func (reg *Registry) resolve(r *http.Request, repo, ref string) (Digest, error) {
	if strings.Contains(ref, ":") {
		return parseDigestRef(ref)
	}
	if err := ValidateTag(ref); err != nil {
		return "", errorf(TagInvalid, "%s", atelier.ErrorMessage(err))
	}
	d, err := reg.meta.Tag(r.Context(), repo, ref)
	if err != nil {
		return "", asRegistryError(err, ManifestUnknown)
	}
	return d, nil
}

func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if _, err := reg.authorize(w, r, rt.name, Pull); err != nil {
		return err
	}
	d, err := reg.resolve(r, rt.name, rt.ref)
	if err != nil {
		return err
	}
	m, err := reg.meta.Manifest(r.Context(), rt.name, d)
	if err != nil {
		return asRegistryError(err, ManifestUnknown)
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", fmt.Sprint(len(m.Body)))
	h.Set("Docker-Content-Digest", string(m.Digest))
	h.Set("ETag", `"`+string(m.Digest)+`"`)
	if r.Method == http.MethodGet {
		w.Write(m.Body)
	}
	return nil
}

// putManifest stores a manifest under a tag, or under its digest with the tags of ?tag=
// parameters. Everything it names must be in the repository already, but its subject.
func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if _, err := reg.authorize(w, r, rt.name, Push); err != nil {
		return err
	}
	var want Digest
	var tags []string
	if strings.Contains(rt.ref, ":") {
		d, err := parseDigestRef(rt.ref)
		if err != nil {
			return err
		}
		want = d
	} else {
		tags = []string{rt.ref}
	}
	params := r.URL.Query()["tag"]
	if len(params) > 0 && want == "" {
		return errorf(TagInvalid, "?tag= goes with a push by digest, not by tag")
	}
	tags = append(tags, params...)
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return errorf(TagInvalid, "%s", atelier.ErrorMessage(err))
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, reg.maxManifestSize+1))
	if err != nil {
		return errorf(ManifestInvalid, "reading the manifest: %v", err)
	}
	if int64(len(body)) > reg.maxManifestSize {
		return errorf(SizeInvalid, "the manifest is larger than %d bytes", reg.maxManifestSize).withStatus(http.StatusRequestEntityTooLarge)
	}
	m, err := ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return errorf(ManifestInvalid, "%s", atelier.ErrorMessage(err))
	}
	alg := Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	m.Digest = DigestOf(alg, body)
	if want != "" && m.Digest != want {
		return errorf(DigestInvalid, "the manifest's digest is %s, not %s", m.Digest, want)
	}
	if err := reg.meta.PutManifest(r.Context(), rt.name, m, tags); err != nil {
		if atelier.ErrorCode(err) == atelier.EINVALID {
			return errorf(ManifestInvalid, "%s", atelier.ErrorMessage(err))
		}
		return asRegistryError(err, ManifestBlobUnknown)
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+string(m.Digest))
	h.Set("Docker-Content-Digest", string(m.Digest))
	if m.Subject != "" {
		h.Set("OCI-Subject", string(m.Subject))
	}
	if len(params) > 0 {
		h.Set("OCI-Tag", strings.Join(params, ", "))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest deletes a manifest (by digest, with its tags) or a tag.
func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if _, err := reg.authorize(w, r, rt.name, Delete); err != nil {
		return err
	}
	ctx := r.Context()
	if strings.Contains(rt.ref, ":") {
		d, err := parseDigestRef(rt.ref)
		if err != nil {
			return err
		}
		if err := reg.meta.DeleteManifest(ctx, rt.name, d); err != nil {
			return asRegistryError(err, ManifestUnknown)
		}
	} else {
		if err := ValidateTag(rt.ref); err != nil {
			return errorf(TagInvalid, "%s", atelier.ErrorMessage(err))
		}
		if err := reg.meta.DeleteTag(ctx, rt.name, rt.ref); err != nil {
			return asRegistryError(err, ManifestUnknown)
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// page reads the n and last parameters of a listing; n is -1 when absent.
func page(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			return 0, "", errorf(Unsupported, "invalid n=%q: want a count of 0 or more", s).withStatus(http.StatusBadRequest)
		}
	}
	return n, q.Get("last"), nil
}

// writePage answers a listing of at most n names (one more was asked for, to learn whether a
// next page exists) under key, with a Link to the next page.
func writePage(w http.ResponseWriter, r *http.Request, v map[string]any, key string, names []string, n int) error {
	if names == nil {
		names = []string{}
	}
	if n >= 0 && len(names) > n {
		names = names[:n]
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {names[n-1]}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
	}
	v[key] = names
	return writeJSON(w, "application/json", v)
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	_, err := w.Write(buf.Bytes())
	return err
}

func (reg *Registry) getTags(w http.ResponseWriter, r *http.Request, rt route) error {
	if _, err := reg.authorize(w, r, rt.name, Pull); err != nil {
		return err
	}
	n, last, err := page(r)
	if err != nil {
		return err
	}
	if last != "" {
		if err := ValidateTag(last); err != nil {
			return errorf(TagInvalid, "invalid last=: %s", atelier.ErrorMessage(err))
		}
	}
	var tags []string
	if n != 0 {
		limit := -1
		if n > 0 {
			limit = n + 1
		}
		if tags, err = reg.meta.Tags(r.Context(), rt.name, last, limit); err != nil {
			return asRegistryError(err, NameUnknown)
		}
	} else if _, err := reg.meta.Tags(r.Context(), rt.name, "", 0); err != nil {
		return asRegistryError(err, NameUnknown)
	}
	return writePage(w, r, map[string]any{"name": rt.name}, "tags", tags, n)
}

// DefaultCatalogPage bounds a catalog answer without n.
const DefaultCatalogPage = 1000

// getCatalog lists the repositories the caller may pull: the Authorizer is asked about each
// repository of the page, so it should answer from memory.
func (reg *Registry) getCatalog(w http.ResponseWriter, r *http.Request) error {
	if _, err := reg.authorize(w, r, "", Pull); err != nil {
		return err
	}
	n, last, err := page(r)
	if err != nil {
		return err
	}
	if n < 0 {
		n = DefaultCatalogPage
	}
	var repos []string
	for after := last; n > 0 && len(repos) <= n; {
		batch, err := reg.meta.Repositories(r.Context(), after, n+1)
		if err != nil {
			return err
		}
		for _, repo := range batch {
			_, err := reg.auth.Authorize(r, repo, Pull)
			switch atelier.ErrorCode(err) {
			case "":
				repos = append(repos, repo)
			case atelier.EUNAUTHORIZED, atelier.EFORBIDDEN, atelier.ENOTFOUND:
			default:
				return err
			}
		}
		if len(batch) < n+1 {
			break
		}
		after = batch[len(batch)-1]
	}
	return writePage(w, r, map[string]any{}, "repositories", repos, n)
}

func (reg *Registry) getReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestRef(rt.ref)
	if err != nil {
		return err
	}
	if _, err := reg.authorize(w, r, rt.name, Pull); err != nil {
		return err
	}
	refs, err := reg.meta.Referrers(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		refs = slices.DeleteFunc(refs, func(d Descriptor) bool { return d.ArtifactType != at })
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if refs == nil {
		refs = []Descriptor{}
	}
	return writeJSON(w, MediaTypeImageIndex, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeImageIndex,
		"manifests":     refs,
	})
}
