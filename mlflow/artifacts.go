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
			return func(w http.ResponseWriter, r *http.Request, ws string) error {
				return notImplemented("deleting artifacts (run outputs are kept)")
			}
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

func (h *Handler) uploadArtifact(w http.ResponseWriter, r *http.Request, ws, p string) error {
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
	runID, file, err := runArtifactPath(p)
	if err != nil {
		return err
	}
	f, rc, err := h.svc.OpenFile(r.Context(), ws, runID, file)
	if err != nil {
		return err
	}
	defer rc.Close()
	ct := mime.TypeByExtension(path.Ext(file))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
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
	if p == "" {
		return ok(w, map[string]any{"files": []FileInfo{}})
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
