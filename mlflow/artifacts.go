package mlflow

import (
	"io"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// A run's artifact URI is mlflow-artifacts:/<experiment_id>/<run_id>/artifacts; the client sends
// artifact X of the run to the proxy as <experiment_id>/<run_id>/artifacts/X, and atelier keeps it
// as the run's output file outputs/X, so MLflow artifacts and atelier outputs are the same files.
const outputsDir = "outputs"

func notImplemented(what string) error {
	return &apiError{Status: http.StatusNotImplemented, Code: "NOT_IMPLEMENTED", Msg: what + " is not supported by atelier"}
}

// artifactRoute picks the handler of an mlflow-artifacts endpoint.
func (h *Handler) artifactRoute(method, endpoint string) handlerFunc {
	switch {
	case endpoint == "artifacts" && method == http.MethodGet:
		return h.listArtifacts
	case strings.HasPrefix(endpoint, "artifacts/"):
		p := strings.TrimPrefix(endpoint, "artifacts/")
		switch method {
		case http.MethodPut:
			return func(w http.ResponseWriter, r *http.Request, ws string) error { return h.uploadArtifact(w, r, ws, p) }
		case http.MethodGet, http.MethodHead:
			return func(w http.ResponseWriter, r *http.Request, ws string) error { return h.downloadArtifact(w, r, ws, p) }
		case http.MethodDelete:
			return func(w http.ResponseWriter, r *http.Request, ws string) error { return h.deleteArtifact(w, r, ws, p) }
		}
	case strings.HasPrefix(endpoint, "mpu/"):
		// The client falls back to single PUTs when multipart upload is not available.
		return func(w http.ResponseWriter, r *http.Request, ws string) error {
			return notImplemented("multipart upload")
		}
	}
	return nil
}

// runArtifactPath splits <experiment_id>/<run_id>/artifacts[/X] into the run and the run file
// path outputs[/X].
func runArtifactPath(p string) (runID, file string, err error) {
	p = strings.Trim(p, "/")
	parts := strings.SplitN(p, "/", 4)
	if len(parts) < 3 || parts[2] != "artifacts" {
		return "", "", invalidParam("invalid artifact path %q: run artifacts live under <experiment_id>/<run_id>/artifacts", p)
	}
	if _, err := strconv.ParseInt(parts[0], 10, 64); err != nil {
		return "", "", invalidParam("invalid artifact path %q: it starts with an experiment id", p)
	}
	file = outputsDir
	if len(parts) == 4 && parts[3] != "" {
		file += "/" + parts[3]
	}
	if err := atelier.ValidatePath(file); err != nil {
		return "", "", err
	}
	return parts[1], file, nil
}

// modelArtifactPath splits a logged model's <experiment_id>/models/<model_id>/artifacts[/X]
// into the model and its file X ("" for the root); ok is false for other paths.
func modelArtifactPath(p string) (modelID, file string, ok bool, err error) {
	p = strings.Trim(p, "/")
	parts := strings.SplitN(p, "/", 5)
	if len(parts) < 3 || parts[1] != "models" || !strings.HasPrefix(parts[2], atelier.LoggedModelIDPrefix) {
		return "", "", false, nil
	}
	if len(parts) < 4 || parts[3] != "artifacts" {
		return "", "", true, invalidParam("invalid artifact path %q: logged model artifacts live under <experiment_id>/models/<model_id>/artifacts", p)
	}
	if len(parts) == 5 && parts[4] != "" {
		file = parts[4]
		if err := atelier.ValidatePath(file); err != nil {
			return "", "", true, err
		}
	}
	return parts[2], file, true, nil
}

// The files of a registered model version are served (read only) at
// registered-models/<name>/versions/<version>/files[/X]: the download URI of every version, so
// what MLflow loads is what the registry holds, whichever API registered it.
const registryArtifacts = "registered-models"

// versionArtifactPath splits registered-models/<name>/versions/<version>/files[/X]; ok is false
// for other paths.
func versionArtifactPath(p string) (ref atelier.ModelRef, file string, ok bool, err error) {
	p = strings.Trim(p, "/")
	rest, found := strings.CutPrefix(p, registryArtifacts+"/")
	if !found {
		return ref, "", false, nil
	}
	parts := strings.SplitN(rest, "/", 5)
	if len(parts) < 4 || parts[1] != "versions" || parts[3] != "files" {
		return ref, "", true, invalidParam("invalid artifact path %q: model version files live under %s/<name>/versions/<version>/files", p, registryArtifacts)
	}
	v, perr := strconv.ParseInt(parts[2], 10, 64)
	if perr != nil || v < 1 {
		return ref, "", true, invalidParam("invalid model version %q", parts[2])
	}
	ref = atelier.ModelRef{Name: parts[0], Version: v}
	if err := ref.Validate(); err != nil {
		return ref, "", true, err
	}
	if len(parts) == 5 && parts[4] != "" {
		file = parts[4]
		if err := atelier.ValidatePath(file); err != nil {
			return ref, "", true, err
		}
	}
	return ref, file, true, nil
}

// versionDownloadURI is the artifact URI of a version's files: the folder holding its MLmodel
// (the shallowest one) when it has one, else the root.
func versionDownloadURI(v *atelier.ModelVersion) string {
	uri := "mlflow-artifacts:/" + registryArtifacts + "/" + v.Name + "/versions/" + strconv.FormatInt(v.Version, 10) + "/files"
	best := ""
	for _, f := range v.Files {
		if path.Base(f.Path) == "MLmodel" && (best == "" || strings.Count(f.Path, "/") < strings.Count(best, "/")) {
			best = f.Path
		}
	}
	if dir := path.Dir(best); best != "" && dir != "." {
		uri += "/" + dir
	}
	return uri
}

// listVersionDir lists the entries right under dir ("" for the root) of a version's files.
func listVersionDir(v *atelier.ModelVersion, dir string) []FileInfo {
	dirs := map[string]bool{}
	out := []FileInfo{}
	for _, f := range v.Files {
		rel := f.Path
		if dir != "" {
			var found bool
			if rel, found = strings.CutPrefix(f.Path, dir+"/"); !found {
				continue
			}
		}
		if first, _, nested := strings.Cut(rel, "/"); nested {
			if !dirs[first] {
				dirs[first] = true
				out = append(out, FileInfo{Path: first, IsDir: true})
			}
			continue
		}
		size := f.Size
		out = append(out, FileInfo{Path: rel, FileSize: &size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (h *Handler) uploadArtifact(w http.ResponseWriter, r *http.Request, ws, p string) error {
	if key, free, err := freeArtifactPath(p); err != nil {
		return err
	} else if free {
		return h.uploadFree(w, r, ws, p, key)
	}
	if _, _, isVersion, err := versionArtifactPath(p); isVersion || err != nil {
		if err != nil {
			return err
		}
		return invalidParam("model version files are immutable: log files to a run or a logged model")
	}
	if id, file, isModel, err := modelArtifactPath(p); err != nil {
		return err
	} else if isModel {
		if file == "" {
			return invalidParam("invalid artifact path %q: name a file", p)
		}
		_, err := h.svc.UploadLoggedModelFile(r.Context(), ws, id, file, r.Body)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND && strings.HasPrefix(atelier.ErrorMessage(err), "logged model") {
			return atelier.Errorf(atelier.ENOTFOUND, "Logged model with ID '%s' not found.", id)
		} else if err != nil {
			return err
		}
		return ok(w, nil)
	}
	runID, file, err := runArtifactPath(p)
	if err != nil {
		return err
	}
	if file == outputsDir {
		return invalidParam("invalid artifact path %q: name a file", p)
	}
	if _, err := h.svc.UploadFile(r.Context(), ws, runID, file, r.Body, ""); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) downloadArtifact(w http.ResponseWriter, r *http.Request, ws, p string) error {
	var size int64
	var rc io.ReadCloser
	key, free, ferr := freeArtifactPath(p)
	if ferr != nil {
		return ferr
	}
	ref, file, isVersion, err := versionArtifactPath(p)
	modelID, modelFile, isModel, merr := modelArtifactPath(p)
	runID := ""
	switch {
	case free:
		if key == freePrefix {
			return invalidParam("invalid artifact path %q: name a file", p)
		}
		ds, store, err := h.freeStore(r, ws)
		if err != nil {
			return err
		}
		f, body, err := store.OpenDatastoreFile(r.Context(), ws, ds, key)
		if err != nil {
			return err
		}
		file, size, rc = p, f.Size, body
	case err != nil:
		return err
	case merr != nil:
		return merr
	case isModel:
		f, body, err := h.svc.OpenLoggedModelFile(r.Context(), ws, modelID, modelFile)
		if err != nil {
			return err
		}
		file, size, rc = modelFile, f.Size, body
	case isVersion:
		f, body, err := h.svc.OpenModelFile(r.Context(), ws, ref, file)
		if err != nil {
			return err
		}
		size, rc = f.Size, body
	default:
		if runID, file, err = runArtifactPath(p); err != nil {
			return err
		}
		f, body, err := h.svc.OpenFile(r.Context(), ws, runID, file)
		if err != nil {
			return err
		}
		size, rc = f.Size, body
	}
	defer rc.Close()
	ct := artifactContentType(file)
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", "attachment; filename=\""+strings.ReplaceAll(path.Base(file), `"`, "")+"\"")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = io.Copy(w, rc)
	if err != nil {
		h.log.Warn("mlflow artifact download cut short", "run", runID, "path", file, "err", err)
	}
	return nil
}

// listDir lists the entries right under dir (a run file path): files with their sizes and
// directories, by base name.
func (h *Handler) listDir(r *http.Request, ws, runID, dir string) ([]FileInfo, error) {
	files, err := h.svc.ListFiles(r.Context(), ws, runID, dir)
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	out := []FileInfo{}
	for _, f := range files {
		rel, ok := strings.CutPrefix(f.Path, dir+"/")
		if !ok || f.Log {
			continue
		}
		if first, _, nested := strings.Cut(rel, "/"); nested {
			if !dirs[first] {
				dirs[first] = true
				out = append(out, FileInfo{Path: first, IsDir: true})
			}
			continue
		}
		size := f.Size
		out = append(out, FileInfo{Path: rel, FileSize: &size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// listArtifacts is the proxy's listing: entries by base name under ?path=.
func (h *Handler) listArtifacts(w http.ResponseWriter, r *http.Request, ws string) error {
	p := r.URL.Query().Get("path")
	if key, free, err := freeArtifactPath(p); err != nil {
		return err
	} else if free {
		files, err := h.listFree(r, ws, key)
		if err != nil {
			return err
		}
		return ok(w, map[string]any{"files": files})
	}
	if ref, dir, isVersion, err := versionArtifactPath(p); err != nil {
		return err
	} else if isVersion {
		v, err := h.svc.FindModelVersion(r.Context(), ws, ref)
		if err != nil {
			return err
		}
		return ok(w, map[string]any{"files": listVersionDir(v, dir)})
	}
	if id, dir, isModel, err := modelArtifactPath(p); err != nil {
		return err
	} else if isModel {
		list, err := h.svc.ListLoggedModelFiles(r.Context(), ws, id, dir)
		if err != nil {
			return err
		}
		files := dirEntries(list, dir)
		for i := range files {
			files[i].Path = path.Base(files[i].Path)
		}
		return ok(w, map[string]any{"files": files})
	}
	runID, dir, err := runArtifactPath(p)
	if err != nil {
		return err
	}
	files, err := h.listDir(r, ws, runID, dir)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"files": files})
}

// listRunArtifacts is the tracking API's listing: paths relative to the run's artifact root.
func (h *Handler) listRunArtifacts(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Path jstring `json:"path"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	run, err := s.findRun(id, false)
	if err != nil {
		return err
	}
	sub := strings.Trim(string(req.Path), "/")
	dir := outputsDir
	if sub != "" {
		dir += "/" + sub
		if err := atelier.ValidatePath(dir); err != nil {
			return err
		}
	}
	files, err := h.listDir(r, ws, id, dir)
	if err != nil {
		return err
	}
	for i := range files {
		if sub != "" {
			files[i].Path = sub + "/" + files[i].Path
		}
	}
	return ok(w, map[string]any{"root_uri": s.toRunInfo(run).ArtifactURI, "files": files})
}

// Any other path under the artifact root (what MLflow's artifact repositories and helpers write
// anywhere under mlflow-artifacts:/, as `mlflow server --serve-artifacts` accepts) is a file of
// the workspace's default datastore under freePrefix: stored durably where the workspace keeps
// its data, and reachable through atelier's datastore API and CLI as well.
const freePrefix = "mlflow-artifacts"

// freeArtifactPath reports whether p lies outside the runs, logged models and model versions,
// with its datastore path (freePrefix itself for the root).
func freeArtifactPath(p string) (key string, free bool, err error) {
	rel := strings.TrimSuffix(strings.TrimLeft(p, "/"), "/")
	first, _, _ := strings.Cut(rel, "/")
	if first == registryArtifacts {
		return "", false, nil // a model version's files (versionArtifactPath)
	}
	if parts := strings.SplitN(rel, "/", 4); len(parts) >= 3 {
		if parts[1] == "models" && strings.HasPrefix(parts[2], atelier.LoggedModelIDPrefix) {
			return "", false, nil // a logged model's files (modelArtifactPath)
		}
		if _, perr := strconv.ParseInt(parts[0], 10, 64); perr == nil && parts[2] == "artifacts" {
			return "", false, nil // a run's files (runArtifactPath)
		}
	}
	if strings.HasPrefix(p, "/") {
		return "", true, invalidParam("invalid artifact path %q: it must be relative to the artifact root", p)
	}
	if rel == "" {
		return freePrefix, true, nil
	}
	if atelier.ValidatePath(rel) != nil || len(freePrefix)+1+len(rel) > atelier.MaxPathLength {
		return "", true, invalidParam("invalid artifact path %q: use a relative path of at most %d bytes with '/' separators, "+
			"without empty, '.' or '..' elements", p, atelier.MaxPathLength-len(freePrefix)-1)
	}
	return freePrefix + "/" + rel, true, nil
}

// freeStore is the datastore holding the files outside runs and models: the workspace's default
// one. Its methods authorize the caller as atelier's datastore routes do: a Reader reads and
// lists, a Contributor writes and deletes.
func (h *Handler) freeStore(r *http.Request, ws string) (string, atelier.DatastoreService, error) {
	store, found := h.svc.(atelier.DatastoreService)
	if !found {
		return "", nil, notImplemented("artifacts outside runs and logged models (this server has no datastores)")
	}
	list, err := store.ListDatastores(r.Context(), ws)
	if err != nil {
		return "", nil, err
	}
	for _, d := range list {
		if d.IsDefault {
			return d.Name, store, nil
		}
	}
	return atelier.DefaultDatastore, store, nil
}

// artifactContentType is the content type of a file by its extension ("" when unknown).
func artifactContentType(name string) string {
	return mime.TypeByExtension(path.Ext(name))
}

func (h *Handler) uploadFree(w http.ResponseWriter, r *http.Request, ws, p, key string) error {
	if key == freePrefix || strings.HasSuffix(p, "/") {
		return invalidParam("invalid artifact path %q: name a file", p)
	}
	ds, store, err := h.freeStore(r, ws)
	if err != nil {
		return err
	}
	// Stored with the type downloads are served with; the client's own guess (MLflow sends
	// text/plain for JSON, YAML and the like) when the extension says nothing.
	ct := artifactContentType(key)
	if ct == "" {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && len(mt) <= 256 {
			ct = mt
		}
	}
	if _, err := store.WriteDatastoreFile(r.Context(), ws, ds, key, r.Body, "", ct); err != nil {
		return err
	}
	return ok(w, nil)
}

// listFree lists the entries right under key, by base name, as MLflow's proxy does.
func (h *Handler) listFree(r *http.Request, ws, key string) ([]FileInfo, error) {
	ds, store, err := h.freeStore(r, ws)
	if err != nil {
		return nil, err
	}
	out := []FileInfo{}
	q := atelier.DatastoreFileQuery{Prefix: key + "/", Limit: atelier.MaxPageSize}
	for {
		page, err := store.ListDatastoreFiles(r.Context(), ws, ds, q)
		if err != nil {
			return nil, err
		}
		for _, f := range page.Files {
			name := path.Base(strings.TrimSuffix(f.Path, "/"))
			if f.Dir {
				out = append(out, FileInfo{Path: name, IsDir: true})
				continue
			}
			size := f.Size
			out = append(out, FileInfo{Path: name, FileSize: &size})
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// deleteArtifact deletes a file or a folder outside runs and models, as MLflow's proxy does
// (deleting nothing is not an error there either). Run, logged model and version files are kept.
func (h *Handler) deleteArtifact(w http.ResponseWriter, r *http.Request, ws, p string) error {
	key, free, err := freeArtifactPath(p)
	if err != nil {
		return err
	}
	if !free {
		return notImplemented("deleting run, logged model and model version artifacts (they are kept)")
	}
	if key == freePrefix {
		return invalidParam("invalid artifact path %q: name a file or a folder", p)
	}
	ds, store, err := h.freeStore(r, ws)
	if err != nil {
		return err
	}
	_, err = store.DeleteDatastoreFiles(r.Context(), ws, ds, key, true)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		// Nothing there, or no datastore to look in: a listing tells which.
		_, err = store.ListDatastoreFiles(r.Context(), ws, ds, atelier.DatastoreFileQuery{Prefix: path.Dir(key) + "/", Limit: 1})
	}
	if err != nil {
		return err
	}
	return ok(w, nil)
}
