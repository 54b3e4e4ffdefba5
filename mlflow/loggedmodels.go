package mlflow

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/atelier-ml/atelier"
)

// MLflow 3's logged models are atelier's (loggedmodel.go in the domain): this file translates
// their messages. A model's id is atelier's ("m-..."); its files are uploaded through the
// artifacts proxy at mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts and kept as
// the model's own files; the runs that produced or used it are linked to it.

const propModelType = "mlflow.modelType" // read by the version registration of older data

// LoggedModel is MLflow's LoggedModel message.
type LoggedModel struct {
	Info LoggedModelInfo `json:"info"`
	Data LoggedModelData `json:"data"`
}

// LoggedModelInfo is MLflow's LoggedModelInfo message.
type LoggedModelInfo struct {
	ModelID                string   `json:"model_id"`
	ExperimentID           string   `json:"experiment_id"`
	Name                   string   `json:"name"`
	CreationTimestampMS    int64    `json:"creation_timestamp_ms"`
	LastUpdatedTimestampMS int64    `json:"last_updated_timestamp_ms"`
	ArtifactURI            string   `json:"artifact_uri"`
	Status                 string   `json:"status"`
	ModelType              string   `json:"model_type,omitempty"`
	SourceRunID            string   `json:"source_run_id,omitempty"`
	StatusMessage          string   `json:"status_message,omitempty"`
	Tags                   []KeyVal `json:"tags"`
}

// LoggedModelData holds a logged model's params (its metrics are its source run's).
type LoggedModelData struct {
	Params  []KeyVal `json:"params"`
	Metrics []Metric `json:"metrics"`
}

// Logged model statuses.
const (
	lmPending = "LOGGED_MODEL_PENDING"
	lmReady   = "LOGGED_MODEL_READY"
	lmFailed  = "LOGGED_MODEL_UPLOAD_FAILED"
)

var lmStatuses = map[atelier.LoggedModelStatus]string{atelier.LoggedModelPending: lmPending,
	atelier.LoggedModelReady: lmReady, atelier.LoggedModelFailed: lmFailed}

// loggedModelStatus reads MLflow's status name (or number).
func loggedModelStatus(s string) (atelier.LoggedModelStatus, error) {
	switch strings.ToUpper(s) {
	case lmReady, "READY", "2":
		return atelier.LoggedModelReady, nil
	case lmFailed, "UPLOAD_FAILED", "FAILED", "3":
		return atelier.LoggedModelFailed, nil
	case lmPending, "PENDING", "1":
		return atelier.LoggedModelPending, nil
	}
	return "", invalidParam("invalid logged model status %q: use LOGGED_MODEL_PENDING, LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED", s)
}

// loggedModelArtifactURI is where a logged model's files are, for the artifacts proxy.
func loggedModelArtifactURI(expID, id string) string {
	return "mlflow-artifacts:/" + expID + "/models/" + id + "/artifacts"
}

func (s *scope) toLoggedModel(m *atelier.LoggedModel) *LoggedModel {
	expID := s.experimentIDOf(m.Experiment)
	metrics := make([]Metric, 0, len(m.Metrics))
	for _, x := range m.Metrics {
		metrics = append(metrics, Metric{Key: x.Name, Value: atelier.Float(x.Value), Timestamp: ms(x.Timestamp), Step: x.Step,
			RunID: x.RunID, ModelID: m.ID, DatasetName: x.DatasetName, DatasetDigest: x.DatasetDigest})
	}
	return &LoggedModel{
		Info: LoggedModelInfo{ModelID: m.ID, ExperimentID: expID, Name: m.Name,
			CreationTimestampMS: ms(m.CreatedAt), LastUpdatedTimestampMS: ms(m.UpdatedAt),
			ArtifactURI: loggedModelArtifactURI(expID, m.ID), Status: lmStatuses[m.Status],
			ModelType: m.ModelType, SourceRunID: m.SourceRunID, StatusMessage: m.StatusMessage,
			Tags: sortedKeyVals(m.Tags)},
		Data: LoggedModelData{Params: sortedKeyVals(m.Params), Metrics: metrics},
	}
}

// findLoggedModel returns a live logged model, with MLflow's message when there is none.
func (s *scope) findLoggedModel(id string) (*atelier.LoggedModel, error) {
	m, err := s.h.svc.FindLoggedModel(s.ctx, s.ws, id)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND || (err == nil && m.Deleted) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "Logged model with ID '%s' not found.", id)
	}
	return m, err
}

func keyValMap(kind string, list []inKeyVal, limit int) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range list {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m, atelier.ValidateKeyValues(kind, m, limit)
}

func (h *Handler) createLoggedModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentID jstring    `json:"experiment_id"`
		Name         jstring    `json:"name"`
		ModelType    jstring    `json:"model_type"`
		SourceRunID  jstring    `json:"source_run_id"`
		Params       []inKeyVal `json:"params"`
		Tags         []inKeyVal `json:"tags"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	params, err := keyValMap("param", req.Params, atelier.MaxParamValue)
	if err != nil {
		return err
	}
	tags, err := keyValMap("tag", req.Tags, atelier.MaxTagValue)
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	expID := string(req.ExperimentID)
	if expID == "" {
		expID = "0"
	}
	e, err := s.experimentByID(expID)
	if err != nil {
		return err
	}
	if e.Archived {
		return invalidParam("The experiment %s must be in the 'active' state. Current state is deleted.", expID)
	}
	name := string(req.Name)
	if name == "" {
		name = randomRunName()
	}
	m, err := h.svc.CreateLoggedModel(s.ctx, ws, atelier.LoggedModelCreate{Experiment: e.Name, Name: name, ModelType: string(req.ModelType),
		SourceRunID: string(req.SourceRunID), Params: params, Tags: tags})
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"model": s.toLoggedModel(m)})
}

// loggedModelRoute picks the handler of logged-models/{model_id}[/...].
func (h *Handler) loggedModelRoute(method, endpoint string) handlerFunc {
	rest, found := strings.CutPrefix(endpoint, "logged-models/")
	if !found || rest == "" {
		return nil
	}
	id, sub, _ := strings.Cut(rest, "/")
	with := func(f func(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, ws string) error {
			s := h.scope(r, ws)
			m, err := s.findLoggedModel(id)
			if err != nil {
				return err
			}
			return f(w, r, s, m)
		}
	}
	switch {
	case sub == "" && (method == http.MethodGet || method == http.MethodHead):
		return with(h.getLoggedModel)
	case sub == "" && method == http.MethodPatch:
		return with(h.finalizeLoggedModel)
	case sub == "" && method == http.MethodDelete:
		return with(h.deleteLoggedModel)
	case sub == "tags" && method == http.MethodPatch:
		return with(h.setLoggedModelTags)
	case strings.HasPrefix(sub, "tags/") && method == http.MethodDelete:
		key, err := url.PathUnescape(strings.TrimPrefix(sub, "tags/"))
		if err != nil {
			return nil
		}
		return with(func(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
			return h.deleteLoggedModelTag(w, s, m, key)
		})
	case sub == "params" && method == http.MethodPost:
		return with(h.logLoggedModelParams)
	case sub == "artifacts/directories" && method == http.MethodGet:
		return with(h.listLoggedModelArtifacts)
	}
	return nil
}

func (h *Handler) getLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	return ok(w, map[string]any{"model": s.toLoggedModel(m)})
}

func (h *Handler) finalizeLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	var req struct {
		Status jstring `json:"status"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	st, err := loggedModelStatus(string(req.Status))
	if err != nil {
		return err
	}
	if m, err = h.svc.UpdateLoggedModel(s.ctx, s.ws, m.ID, atelier.LoggedModelUpdate{Status: &st}); err != nil {
		return err
	}
	return ok(w, map[string]any{"model": s.toLoggedModel(m)})
}

func (h *Handler) deleteLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	if err := h.svc.DeleteLoggedModel(s.ctx, s.ws, m.ID); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) setLoggedModelTags(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	var req struct {
		Tags []inKeyVal `json:"tags"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	tags, err := keyValMap("tag", req.Tags, atelier.MaxTagValue)
	if err != nil {
		return err
	}
	if len(tags) > 0 {
		if m, err = h.svc.UpdateLoggedModel(s.ctx, s.ws, m.ID, atelier.LoggedModelUpdate{Tags: tags}); err != nil {
			return err
		}
	}
	return ok(w, map[string]any{"model": s.toLoggedModel(m)})
}

func (h *Handler) deleteLoggedModelTag(w http.ResponseWriter, s *scope, m *atelier.LoggedModel, key string) error {
	if _, found := m.Tags[key]; !found {
		return atelier.Errorf(atelier.ENOTFOUND, "No tag with key %q on logged model %s", key, m.ID)
	}
	if _, err := h.svc.UpdateLoggedModel(s.ctx, s.ws, m.ID, atelier.LoggedModelUpdate{DeleteTags: []string{key}}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) logLoggedModelParams(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	var req struct {
		Params []inKeyVal `json:"params"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	params, err := keyValMap("param", req.Params, atelier.MaxParamValue)
	if err != nil {
		return err
	}
	if len(params) > 0 {
		_, err := h.svc.UpdateLoggedModel(s.ctx, s.ws, m.ID, atelier.LoggedModelUpdate{Params: params})
		if atelier.ErrorCode(err) == atelier.ECONFLICT {
			return invalidParam("%s", atelier.ErrorMessage(err))
		} else if err != nil {
			return err
		}
	}
	return ok(w, nil)
}

func (h *Handler) listLoggedModelArtifacts(w http.ResponseWriter, r *http.Request, s *scope, m *atelier.LoggedModel) error {
	sub := strings.Trim(r.URL.Query().Get("artifact_directory_path"), "/")
	if sub != "" {
		if err := atelier.ValidatePath(sub); err != nil {
			return err
		}
	}
	list, err := h.svc.ListLoggedModelFiles(s.ctx, s.ws, m.ID, sub)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"root_uri": s.toLoggedModel(m).Info.ArtifactURI, "files": dirEntries(list, sub)})
}

// dirEntries lists the entries right under dir ("" for the root) of files, as MLflow's
// FileInfo with paths from the root.
func dirEntries(files []*atelier.File, dir string) []FileInfo {
	seen := map[string]bool{}
	out := []FileInfo{}
	for _, f := range files {
		rel := f.Path
		if dir != "" {
			var found bool
			if rel, found = strings.CutPrefix(f.Path, dir+"/"); !found {
				continue
			}
		}
		name, _, nested := strings.Cut(rel, "/")
		full := name
		if dir != "" {
			full = dir + "/" + name
		}
		if seen[full] {
			continue
		}
		seen[full] = true
		if nested {
			out = append(out, FileInfo{Path: full, IsDir: true})
		} else {
			size := f.Size
			out = append(out, FileInfo{Path: full, FileSize: &size})
		}
	}
	return out
}

// loggedModelFields maps MLflow's logged model attributes to atelier's.
var loggedModelFields = map[string]string{
	"name": "name", "model_id": "id", "source_run_id": "source_run_id", "status": "status",
	"model_type": "model_type", "creation_timestamp": "created_at", "creation_time": "created_at",
	"creation_timestamp_ms": "created_at", "last_updated_timestamp": "updated_at",
	"last_updated_timestamp_ms": "updated_at", "experiment_id": "experiment",
}

// loggedModelFilter translates MLflow's logged model filter (comparisons joined by AND) to
// atelier's filter language, experiment ids to names and statuses to atelier's.
func (s *scope) loggedModelFilter(filter string) (string, error) {
	conds, err := parseConds(filter, loggedModelFields, map[string]string{"tags": "tags", "tag": "tags",
		"params": "params", "param": "params", "metrics": "metrics", "metric": "metrics"})
	if err != nil {
		return "", err
	}
	return atelierFilter(filter, conds, func(c cond) (string, bool, string) {
		switch c.field {
		case "tags", "params", "metrics":
			return keyed(c.field, c.key), c.field == "metrics", ""
		case "status":
			for i, v := range c.values {
				if st, err := loggedModelStatus(v); err == nil {
					c.values[i] = string(st)
				}
			}
		case "experiment":
			for i, v := range c.values {
				if e, err := s.experimentByID(v); err == nil {
					c.values[i] = e.Name
				}
			}
		}
		return c.field, c.field == "created_at" || c.field == "updated_at", ""
	})
}

func (h *Handler) searchLoggedModels(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentIDs jlist   `json:"experiment_ids"`
		Filter        jstring `json:"filter"`
		Datasets      []struct {
			DatasetName   jstring `json:"dataset_name"`
			DatasetDigest jstring `json:"dataset_digest"`
		} `json:"datasets"`
		MaxResults jint    `json:"max_results"`
		PageToken  jstring `json:"page_token"`
		OrderBy    []struct {
			FieldName     jstring `json:"field_name"`
			Ascending     *jbool  `json:"ascending"`
			DatasetName   jstring `json:"dataset_name"`
			DatasetDigest jstring `json:"dataset_digest"`
		} `json:"order_by"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	limit, err := maxResults(req.MaxResults, 50, 50000)
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	if _, err := h.svc.FindWorkspace(s.ctx, ws); err != nil {
		return err
	}
	q := atelier.LoggedModelQuery{Limit: min(limit, atelier.MaxPageSize), PageToken: string(req.PageToken)}
	if q.Filter, err = s.loggedModelFilter(string(req.Filter)); err != nil {
		return err
	}
	var terms []string
	for _, o := range req.OrderBy {
		f := string(o.FieldName)
		kind, key, keyed := strings.Cut(f, ".")
		switch {
		case keyed && (kind == "metrics" || kind == "params" || kind == "tags"):
			f = atelier.FilterField{Kind: kind, Name: key}.String()
		case loggedModelFields[strings.ToLower(f)] != "":
			f = loggedModelFields[strings.ToLower(f)]
		default:
			return invalidParam("invalid order_by field %q", o.FieldName)
		}
		if o.Ascending != nil && !bool(*o.Ascending) {
			f += " desc"
		}
		terms = append(terms, f)
	}
	q.OrderBy = strings.Join(terms, ", ")
	for _, d := range req.Datasets {
		if d.DatasetName == "" {
			return invalidParam("a data set of a logged model search needs a dataset_name")
		}
		q.Datasets = append(q.Datasets, atelier.LoggedModelDataset{Name: string(d.DatasetName), Digest: string(d.DatasetDigest)})
	}
	for _, id := range req.ExperimentIDs {
		e, err := s.experimentByID(id)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		q.Experiments = append(q.Experiments, e.Name)
	}
	if len(req.ExperimentIDs) > 0 && len(q.Experiments) == 0 {
		return ok(w, map[string]any{"models": []any{}})
	}
	page, err := h.svc.ListLoggedModels(s.ctx, ws, q)
	if err != nil {
		return err
	}
	models := make([]*LoggedModel, 0, len(page.Models))
	for _, m := range page.Models {
		models = append(models, s.toLoggedModel(m))
	}
	resp := map[string]any{"models": models}
	if page.NextPageToken != "" {
		resp["next_page_token"] = page.NextPageToken
	}
	return ok(w, resp)
}

// logOutputs links a run to the logged models it produced; get-run returns them as the run's
// outputs (the client picks the newest of a run's models by step when it registers runs:/).
func (h *Handler) logOutputs(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Models []struct {
			ModelID jstring `json:"model_id"`
			Step    jint    `json:"step"`
		} `json:"models"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	if _, err := s.findRun(id, true); err != nil {
		return err
	}
	links := make([]atelier.RunModel, 0, len(req.Models))
	for _, m := range req.Models {
		if m.ModelID == "" {
			return invalidParam("missing value for required parameter 'model_id'")
		}
		if _, err := s.findLoggedModel(string(m.ModelID)); err != nil {
			return err
		}
		links = append(links, atelier.RunModel{RunID: id, ModelID: string(m.ModelID), Step: m.Step.V})
	}
	if len(links) > 0 {
		if err := h.svc.AddRunModels(s.ctx, ws, links); err != nil {
			return err
		}
	}
	return ok(w, nil)
}

// runModels gives a run's model inputs and outputs as get-run shows them.
func (s *scope) runModels(runID string) (inputs, outputs []map[string]any, err error) {
	links, err := s.h.svc.ListRunModels(s.ctx, s.ws, runID)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range links {
		if l.Input {
			inputs = append(inputs, map[string]any{"model_id": l.ModelID})
		} else {
			outputs = append(outputs, map[string]any{"model_id": l.ModelID, "step": l.Step})
		}
	}
	return inputs, outputs, nil
}

// loggedModelBase is the directory name a logged model's files get in a model version: its
// name when that is a plain file name, else "model".
func loggedModelBase(m *atelier.LoggedModel) string {
	name := m.Name
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") || path.Clean(name) != name || atelier.ValidatePath(name) != nil {
		return "model"
	}
	return name
}
