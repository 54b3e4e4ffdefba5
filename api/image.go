package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// imageRoutes is the images' part of the route table. Reads are PolicyMember: a run's token
// reads no images (the service refuses it, as for compute targets and secrets).
func (s *Server) imageRoutes() []Route {
	const img = ws + "/images/{image}"
	return []Route{
		{Pattern: "GET " + ws + "/images", Policy: PolicyMember, handler: s.listImages},
		{Pattern: "POST " + ws + "/images", Policy: PolicyWrite, handler: s.createImage},
		{Pattern: "GET " + img, Policy: PolicyMember, handler: s.getImage},
		{Pattern: "DELETE " + img, Policy: PolicyWrite, handler: s.deleteImage},
		{Pattern: "GET " + img + "/log", Policy: PolicyMember, handler: s.imageLog},
		{Pattern: "GET " + img + "/export", Policy: PolicyMember, handler: s.exportImage},
		{Pattern: "GET " + ws + "/image-bases", Policy: PolicyMember, handler: s.listBaseImages},
		// Contributors import; with default=true, Owners (the service decides).
		{Pattern: "POST " + ws + "/image-bases", Policy: PolicyWrite, handler: s.importBaseImage},
		{Pattern: "PUT " + ws + "/image-bases/default", Policy: PolicyOwner, handler: s.setDefaultBaseImage},
		{Pattern: "POST /api/v1/registry/gc", Policy: PolicyAdmin, handler: s.collectRegistryGarbage},
	}
}

// ImageList is the answer to GET /images.
type ImageList struct {
	Images []*atelier.Image `json:"images"`
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	iq := atelier.ImageQuery{Name: q.Get("name"), Model: q.Get("model")}
	for _, t := range q["tag"] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return atelier.Errorf(atelier.EINVALID, "tag=%q: give KEY=VALUE", t)
		}
		if iq.Tags == nil {
			iq.Tags = map[string]string{}
		}
		iq.Tags[k] = v
	}
	var err error
	if iq.Limit, err = queryLimit(r); err != nil {
		return err
	}
	list, err := s.svc.ListImages(r.Context(), r.PathValue("workspace"), iq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ImageList{Images: list})
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request) error {
	var c atelier.ImageCreate
	if err := s.readJSON(w, r, &c); err != nil {
		return err
	}
	img, err := s.svc.CreateImage(r.Context(), r.PathValue("workspace"), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, img)
}

func imageRef(r *http.Request) (atelier.ImageRef, error) {
	return atelier.ParseImageRef(r.PathValue("image"))
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := imageRef(r)
	if err != nil {
		return err
	}
	img, err := s.svc.FindImage(r.Context(), r.PathValue("workspace"), ref)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, img)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := imageRef(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteImage(r.Context(), r.PathValue("workspace"), ref); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) imageLog(w http.ResponseWriter, r *http.Request) error {
	ref, err := imageRef(r)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset")
	if err != nil {
		return err
	}
	var off int64
	if offset != nil {
		if *offset < 0 {
			return atelier.Errorf(atelier.EINVALID, "offset=%d: give an offset from 0", *offset)
		}
		off = *offset
	}
	text, err := s.svc.ImageLog(r.Context(), r.PathValue("workspace"), ref, off)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = io.WriteString(w, text)
	return err
}

func (s *Server) exportImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := imageRef(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "docker"
	}
	if format != "docker" && format != "oci" {
		return atelier.Errorf(atelier.EINVALID, "format=%q: docker (a docker-archive, for docker/podman load) or oci (an OCI layout)", format)
	}
	ws := r.PathValue("workspace")
	img, err := s.svc.FindImage(r.Context(), ws, ref)
	if err != nil {
		return err
	}
	if img.Status != atelier.ImageSucceeded {
		return atelier.Errorf(atelier.ECONFLICT, "image %s:%d is %s: only a built image can be exported", img.Name, img.Version, img.Status)
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+img.Name+"-"+strconv.FormatInt(img.Version, 10)+`.tar"`)
	// Once the tarball has started, an error can only cut it short.
	return s.svc.ExportImage(r.Context(), ws, atelier.ImageRef{Name: img.Name, Version: img.Version}, format, w)
}

func imagePath(workspace string, ref atelier.ImageRef, parts ...string) string {
	return wsPath(workspace, append([]string{"images", url.PathEscape(ref.String())}, parts...)...)
}

func (c *Client) CreateImage(ctx context.Context, workspace string, ic atelier.ImageCreate) (*atelier.Image, error) {
	var img atelier.Image
	return &img, c.call(ctx, "POST", wsPath(workspace, "images"), nil, ic, &img)
}

func (c *Client) FindImage(ctx context.Context, workspace string, ref atelier.ImageRef) (*atelier.Image, error) {
	var img atelier.Image
	return &img, c.call(ctx, "GET", imagePath(workspace, ref), nil, nil, &img)
}

func (c *Client) ListImages(ctx context.Context, workspace string, q atelier.ImageQuery) ([]*atelier.Image, error) {
	v := url.Values{}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	if q.Model != "" {
		v.Set("model", q.Model)
	}
	for k, val := range q.Tags {
		v.Add("tag", k+"="+val)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var list ImageList
	return list.Images, c.call(ctx, "GET", wsPath(workspace, "images"), v, nil, &list)
}

func (c *Client) ImageLog(ctx context.Context, workspace string, ref atelier.ImageRef, offset int64) (string, error) {
	var b strings.Builder
	req, err := c.newRequest(ctx, "GET", imagePath(workspace, ref, "log"), url.Values{"offset": {strconv.FormatInt(offset, 10)}}, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(&b, resp.Body)
	return b.String(), err
}

func (c *Client) DeleteImage(ctx context.Context, workspace string, ref atelier.ImageRef) error {
	return c.call(ctx, "DELETE", imagePath(workspace, ref), nil, nil, nil)
}

func (c *Client) ExportImage(ctx context.Context, workspace string, ref atelier.ImageRef, format string, w io.Writer) error {
	req, err := c.newRequest(ctx, "GET", imagePath(workspace, ref, "export"), url.Values{"format": {format}}, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// importBaseImage stores the uploaded archive (the raw body: an OCI layout as a tar, an OCI
// archive or a docker archive) as the base image ?name=NAME:TAG, and with ?default=true makes it
// the workspace's default base.
func (s *Server) importBaseImage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	setDefault := false
	if v := q.Get("default"); v != "" {
		var err error
		if setDefault, err = strconv.ParseBool(v); err != nil {
			return atelier.Errorf(atelier.EINVALID, "default=%q: give true or false", v)
		}
	}
	b, err := s.svc.ImportBaseImage(r.Context(), r.PathValue("workspace"), q.Get("name"), setDefault, r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, b)
}

func (s *Server) listBaseImages(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListBaseImages(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

// DefaultBase is the body of PUT /image-bases/default.
type DefaultBase struct {
	// Base is a tag of the workspace registry (NAME:TAG) or HOST/REPO:TAG of another
	// registry; "" for none (images are then built on the server's default base).
	Base string `json:"base"`
}

func (s *Server) setDefaultBaseImage(w http.ResponseWriter, r *http.Request) error {
	var d DefaultBase
	if err := s.readJSON(w, r, &d); err != nil {
		return err
	}
	ws := r.PathValue("workspace")
	if err := s.svc.SetDefaultBaseImage(r.Context(), ws, d.Base); err != nil {
		return err
	}
	list, err := s.svc.ListBaseImages(r.Context(), ws)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) collectRegistryGarbage(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.svc.CollectRegistryGarbage(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (c *Client) ImportBaseImage(ctx context.Context, workspace, ref string, setDefault bool, r io.Reader) (*atelier.BaseImage, error) {
	q := url.Values{"name": {ref}}
	if setDefault {
		q.Set("default", "true")
	}
	req, err := c.newRequest(ctx, "POST", wsPath(workspace, "image-bases"), q, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b atelier.BaseImage
	return &b, json.NewDecoder(resp.Body).Decode(&b)
}

func (c *Client) ListBaseImages(ctx context.Context, workspace string) (*atelier.BaseImageList, error) {
	var list atelier.BaseImageList
	return &list, c.call(ctx, "GET", wsPath(workspace, "image-bases"), nil, nil, &list)
}

func (c *Client) SetDefaultBaseImage(ctx context.Context, workspace, base string) error {
	return c.call(ctx, "PUT", wsPath(workspace, "image-bases", "default"), nil, DefaultBase{Base: base}, nil)
}

func (c *Client) CollectRegistryGarbage(ctx context.Context) (*atelier.RegistryGCReport, error) {
	var rep atelier.RegistryGCReport
	return &rep, c.call(ctx, "POST", "/api/v1/registry/gc", nil, nil, &rep)
}
