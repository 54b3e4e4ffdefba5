package api

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/atelier-ml/atelier"
)

// modelRoutes is the model registry's part of the route table. {version} is a version number,
// "latest" or an alias, so every version endpoint also takes name@alias.
func (s *Server) modelRoutes() []Route {
	return []Route{
		{Pattern: "GET " + ws + "/models", Policy: PolicyRead, handler: s.listModels},
		{Pattern: "POST " + ws + "/models", Policy: PolicyRun, handler: s.registerModel},
		{Pattern: "POST " + ws + "/models/uploads", Policy: PolicyWrite, handler: s.uploadModelFiles},
		{Pattern: "POST " + ws + "/models/search", Policy: PolicyRead, handler: s.searchModelVersions},
		{Pattern: "GET " + ws + "/models/{model}", Policy: PolicyRead, handler: s.getModel},
		{Pattern: "DELETE " + ws + "/models/{model}", Policy: PolicyWrite, handler: s.deleteModel},
		{Pattern: "GET " + ws + "/models/{model}/references", Policy: PolicyRead, handler: s.listModelReferences},
		{Pattern: "GET " + ws + "/models/{model}/versions", Policy: PolicyRead, handler: s.listModelVersions},
		{Pattern: "GET " + ws + "/models/{model}/versions/{version}", Policy: PolicyRead, handler: s.getModelVersion},
		{Pattern: "PATCH " + ws + "/models/{model}/versions/{version}", Policy: PolicyWrite, handler: s.updateModelVersion},
		{Pattern: "DELETE " + ws + "/models/{model}/versions/{version}", Policy: PolicyWrite, handler: s.deleteModelVersion},
		{Pattern: "GET " + ws + "/models/{model}/versions/{version}/references", Policy: PolicyRead, handler: s.listModelReferences},
		{Pattern: "GET " + ws + "/models/{model}/versions/{version}/zip", Policy: PolicyRead, handler: s.downloadModelZip},
		{Pattern: "GET " + ws + "/models/{model}/versions/{version}/files/{path...}", Policy: PolicyRead, handler: s.downloadModelFile},
		{Pattern: "PUT " + ws + "/models/{model}/aliases/{alias}", Policy: PolicyWrite, handler: s.setModelAlias},
		{Pattern: "DELETE " + ws + "/models/{model}/aliases/{alias}", Policy: PolicyWrite, handler: s.deleteModelAlias},
		{Pattern: "GET " + ws + "/runs/{run}/models", Policy: PolicyRunRead, handler: s.listRunModels},
	}
}

// modelSvc is the registry; the Services interface includes it.
func (s *Server) modelSvc() atelier.ModelService { return s.svc }

func modelRef(r *http.Request) (atelier.ModelRef, error) {
	if r.PathValue("version") == "" {
		ref := atelier.ModelRef{Name: r.PathValue("model")}
		return ref, ref.Validate()
	}
	return atelier.ParseModelSelector(r.PathValue("model"), r.PathValue("version"))
}

// modelQuery reads the query parameters of a version list.
func modelQuery(r *http.Request) (atelier.ModelQuery, error) {
	q := r.URL.Query()
	mq := atelier.ModelQuery{NameContains: q.Get("name_contains"), Tags: q["tag"], Properties: q["property"],
		OrderBy: q.Get("order_by"), PageToken: q.Get("page_token")}
	var err error
	mq.Limit, err = queryLimit(r)
	return mq, err
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	mq, err := modelQuery(r)
	if err != nil {
		return err
	}
	page, err := s.modelSvc().ListModels(r.Context(), r.PathValue("workspace"), mq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) registerModel(w http.ResponseWriter, r *http.Request) error {
	var req atelier.ModelRegister
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v, err := s.modelSvc().RegisterModel(r.Context(), r.PathValue("workspace"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

// ModelUploadResponse is the answer to POST /models/uploads: the manifest to register.
type ModelUploadResponse struct {
	Files []atelier.ModelFile `json:"files"`
}

func (s *Server) uploadModelFiles(w http.ResponseWriter, r *http.Request) error {
	files, err := s.modelSvc().UploadModelFiles(r.Context(), r.PathValue("workspace"), &tarFileStream{r: r})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ModelUploadResponse{Files: files})
}

// tarFileStream reads the model files of a tar request body. Its errors are the sender's: a
// body that is not a tar stream, or one cut short, is invalid input, never a server error.
type tarFileStream struct {
	r  *http.Request
	tr *tar.Reader
}

func (t *tarFileStream) Next() (*atelier.ModelFile, error) {
	if t.tr == nil {
		// Checked on the first read rather than up front, so a caller who may not upload hears that first.
		if ct, _, _ := mime.ParseMediaType(t.r.Header.Get("Content-Type")); ct != "" && ct != "application/x-tar" && ct != "application/octet-stream" {
			return nil, atelier.Errorf(atelier.EINVALID, "a model upload is a tar stream (Content-Type application/x-tar), not %s", ct)
		}
		t.tr = tar.NewReader(t.r.Body)
	}
	for {
		h, err := t.tr.Next()
		if err == io.EOF {
			return nil, io.EOF
		} else if err != nil {
			return nil, uploadError(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			return &atelier.ModelFile{Path: strings.TrimPrefix(h.Name, "./"), Size: h.Size}, nil
		case tar.TypeDir:
		default:
			return nil, atelier.Errorf(atelier.EINVALID, "tar entry %q is not a regular file: a model upload holds files only", h.Name)
		}
	}
}

func (t *tarFileStream) Read(p []byte) (int, error) {
	n, err := t.tr.Read(p)
	if err != nil && err != io.EOF {
		err = uploadError(err)
	}
	return n, err
}

func uploadError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return atelier.Errorf(atelier.EINVALID, "the model upload ended in the middle of a file")
	case errors.Is(err, tar.ErrHeader):
		return atelier.Errorf(atelier.EINVALID, "the model upload is not a valid tar stream")
	}
	return atelier.Errorf(atelier.EINVALID, "reading the model upload: %v", err)
}

func (s *Server) searchModelVersions(w http.ResponseWriter, r *http.Request) error {
	var mq atelier.ModelQuery
	if err := s.readJSON(w, r, &mq); err != nil {
		return err
	}
	return s.versionPage(w, r, mq)
}

func (s *Server) versionPage(w http.ResponseWriter, r *http.Request, mq atelier.ModelQuery) error {
	page, err := s.modelSvc().ListModelVersions(r.Context(), r.PathValue("workspace"), mq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	m, err := s.modelSvc().FindModel(r.Context(), r.PathValue("workspace"), r.PathValue("model"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) listModelVersions(w http.ResponseWriter, r *http.Request) error {
	mq, err := modelQuery(r)
	if err != nil {
		return err
	}
	if mq.Name = r.PathValue("model"); mq.NameContains != "" {
		return atelier.Errorf(atelier.EINVALID, "name_contains does not apply to the versions of one model")
	}
	// An unknown model is a 404, not an empty list.
	if _, err := s.modelSvc().FindModel(r.Context(), r.PathValue("workspace"), mq.Name); err != nil {
		return err
	}
	return s.versionPage(w, r, mq)
}

func (s *Server) listRunModels(w http.ResponseWriter, r *http.Request) error {
	mq, err := modelQuery(r)
	if err != nil {
		return err
	}
	if _, err := s.svc.FindRun(r.Context(), r.PathValue("workspace"), r.PathValue("run")); err != nil {
		return err
	}
	mq.RunID = r.PathValue("run")
	return s.versionPage(w, r, mq)
}

func (s *Server) getModelVersion(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	v, err := s.modelSvc().FindModelVersion(r.Context(), r.PathValue("workspace"), ref)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) updateModelVersion(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	var upd atelier.ModelVersionUpdate
	if err := s.readJSON(w, r, &upd); err != nil {
		return err
	}
	v, err := s.modelSvc().UpdateModelVersion(r.Context(), r.PathValue("workspace"), ref, upd)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// ModelInUseResponse is the 409 of deleting a model version that an image or a service uses:
// the error with the references that block it.
type ModelInUseResponse struct {
	Code       string                   `json:"code"`
	Message    string                   `json:"message"`
	References []atelier.ModelReference `json:"references"`
}

// deleted answers a delete, listing the blocking references in a 409.
func (s *Server) deleted(w http.ResponseWriter, err error) error {
	var inUse *atelier.ModelInUseError
	if errors.As(err, &inUse) {
		return writeJSON(w, http.StatusConflict, ModelInUseResponse{Code: atelier.ErrorCode(err), Message: atelier.ErrorMessage(err), References: inUse.References})
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteModelVersion(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	return s.deleted(w, s.modelSvc().DeleteModelVersion(r.Context(), r.PathValue("workspace"), ref))
}

func (s *Server) deleteModel(w http.ResponseWriter, r *http.Request) error {
	return s.deleted(w, s.modelSvc().DeleteModel(r.Context(), r.PathValue("workspace"), r.PathValue("model")))
}

func (s *Server) listModelReferences(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	list, err := s.modelSvc().ListModelReferences(r.Context(), r.PathValue("workspace"), ref)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"references": list})
}

func (s *Server) downloadModelZip(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	// Resolve first, so a missing version is a clean 404 before the body starts and an alias
	// moved meanwhile does not mix two versions.
	v, err := s.modelSvc().FindModelVersion(r.Context(), r.PathValue("workspace"), ref)
	if err != nil {
		return err
	}
	if v.IsReference() {
		return v.NotStored() // a 400 before the body starts
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.zip"`, v.Name, v.Version))
	if err := s.modelSvc().WriteModelZip(r.Context(), r.PathValue("workspace"), v.Ref(), w); err != nil {
		s.log.Error("streaming a model zip", "model", v.Ref().String(), "err", err)
	}
	return nil
}

func (s *Server) downloadModelFile(w http.ResponseWriter, r *http.Request) error {
	ref, err := modelRef(r)
	if err != nil {
		return err
	}
	f, rc, err := s.modelSvc().OpenModelFile(r.Context(), r.PathValue("workspace"), ref, r.PathValue("path"))
	if err != nil {
		return err
	}
	defer rc.Close()
	return streamFile(w, &atelier.File{Path: f.Path, Size: f.Size, Digest: f.Digest}, rc)
}

// ModelAliasSet is the body of PUT /models/{model}/aliases/{alias}.
type ModelAliasSet struct {
	Version int64 `json:"version"`
}

func (s *Server) setModelAlias(w http.ResponseWriter, r *http.Request) error {
	var req ModelAliasSet
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v, err := s.modelSvc().SetModelAlias(r.Context(), r.PathValue("workspace"), r.PathValue("model"), r.PathValue("alias"), req.Version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteModelAlias(w http.ResponseWriter, r *http.Request) error {
	if err := s.modelSvc().DeleteModelAlias(r.Context(), r.PathValue("workspace"), r.PathValue("model"), r.PathValue("alias")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
