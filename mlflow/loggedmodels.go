package mlflow

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// MLflow 3's logged models are atelier runs: each is a hidden run (property mlflow.record =
// logged-model) in the model's experiment, a child of its source run when it has one. The model
// id is "m-" + that run's id; the model's name, params, tags and status are the run's; its
// artifacts are the run's output files, which the client uploads through the artifacts proxy at
// mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts. So a model logged from a
// training run shows in atelier as a child run holding the model files, with its own lineage.

// Record runs: runs that hold MLflow-only objects, never shown as MLflow runs.
const (
	propRecord            = "mlflow.record"
	recordLoggedModel     = "logged-model"
	recordRegisteredModel = "registered-model"
	propModelType         = "mlflow.modelType"
	loggedModelPrefix     = "m-"
	tagModelOutputs       = "mlflow.modelOutputs" // hidden: a run's logged models, as JSON
)

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

func loggedModelStatus(s atelier.RunStatus) string {
	switch s {
	case atelier.StatusCompleted:
		return lmReady
	case atelier.StatusFailed, atelier.StatusCanceled:
		return lmFailed
	}
	return lmPending
}

// loggedModelArtifactURI is where a logged model's files are, for the artifacts proxy.
func loggedModelArtifactURI(expID, runID string) string {
	return "mlflow-artifacts:/" + expID + "/models/" + loggedModelPrefix + runID + "/artifacts"
}

func (s *scope) toLoggedModel(run *atelier.Run) *LoggedModel {
	expID := s.experimentIDOf(run.Experiment)
	updated := run.CreatedAt
	if run.EndedAt != nil {
		updated = *run.EndedAt
	}
	tags := map[string]string{}
	for k, v := range run.Tags {
		if !hiddenTags[k] {
			tags[k] = v
		}
	}
	return &LoggedModel{
		Info: LoggedModelInfo{ModelID: loggedModelPrefix + run.ID, ExperimentID: expID, Name: run.Name,
			CreationTimestampMS: ms(run.CreatedAt), LastUpdatedTimestampMS: ms(updated),
			ArtifactURI: loggedModelArtifactURI(expID, run.ID), Status: loggedModelStatus(run.Status),
			ModelType: run.Properties[propModelType], SourceRunID: run.ParentID, StatusMessage: run.Error,
			Tags: sortedKeyVals(tags)},
		Data: LoggedModelData{Params: sortedKeyVals(run.Params), Metrics: []Metric{}},
	}
}

// findLoggedModel returns the run of a logged model.
func (s *scope) findLoggedModel(id string) (*atelier.Run, error) {
	notFound := atelier.Errorf(atelier.ENOTFOUND, "Logged model with ID '%s' not found.", id)
	runID, ok := strings.CutPrefix(id, loggedModelPrefix)
	if !ok || runID == "" {
		return nil, notFound
	}
	run, err := s.h.svc.FindRun(s.ctx, s.ws, runID)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	if run.Properties[propRecord] != recordLoggedModel || run.Deleted {
		return nil, notFound
	}
	return run, nil
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
	if req.SourceRunID != "" {
		if _, err := s.findRun(string(req.SourceRunID), true); err != nil {
			return err
		}
	}
	name := string(req.Name)
	if name == "" {
		name = randomRunName()
	}
	if utf8.RuneCountInString(name) > atelier.MaxRunNameLength || strings.Contains(name, "/") {
		return invalidParam("invalid logged model name %q: use at most %d characters and no '/'", name, atelier.MaxRunNameLength)
	}
	props := map[string]string{propRecord: recordLoggedModel}
	if req.ModelType != "" {
		props[propModelType] = string(req.ModelType)
	}
	run, err := h.svc.CreateRun(s.ctx, ws, atelier.RunCreate{Experiment: e.Name, Name: name, ParentID: string(req.SourceRunID),
		Status: atelier.StatusRunning, Params: params, Tags: tags, Properties: props})
	if err != nil {
		return err
	}
	s.forgetExperiments() // the run may have created its experiment
	return ok(w, map[string]any{"model": s.toLoggedModel(run)})
}

// loggedModelRoute picks the handler of logged-models/{model_id}[/...].
func (h *Handler) loggedModelRoute(method, endpoint string) handlerFunc {
	rest, found := strings.CutPrefix(endpoint, "logged-models/")
	if !found || rest == "" {
		return nil
	}
	id, sub, _ := strings.Cut(rest, "/")
	with := func(f func(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, ws string) error {
			s := h.scope(r, ws)
			run, err := s.findLoggedModel(id)
			if err != nil {
				return err
			}
			return f(w, r, s, run)
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
		return with(func(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
			return h.deleteLoggedModelTag(w, s, run, key)
		})
	case sub == "params" && method == http.MethodPost:
		return with(h.logLoggedModelParams)
	case sub == "artifacts/directories" && method == http.MethodGet:
		return with(h.listLoggedModelArtifacts)
	}
	return nil
}

func (h *Handler) getLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
	return ok(w, map[string]any{"model": s.toLoggedModel(run)})
}

func (h *Handler) finalizeLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
	var req struct {
		Status jstring `json:"status"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	var st atelier.RunStatus
	switch strings.ToUpper(string(req.Status)) {
	case lmReady, "2":
		st = atelier.StatusCompleted
	case lmFailed, "3":
		st = atelier.StatusFailed
	case lmPending, "1":
		st = atelier.StatusRunning
	default:
		return invalidParam("invalid logged model status %q: use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED", req.Status)
	}
	// A finalized model stays as it is (atelier's run lifecycle does not go back).
	if !run.Status.Terminal() && st != run.Status {
		var err error
		if run, err = h.svc.UpdateRunStatus(s.ctx, s.ws, run.ID, atelier.RunStatusUpdate{Status: st}); err != nil {
			return err
		}
	}
	return ok(w, map[string]any{"model": s.toLoggedModel(run)})
}

func (h *Handler) deleteLoggedModel(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
	if _, err := h.svc.SetRunLifecycle(s.ctx, s.ws, run.ID, atelier.LifecycleDeleted); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) setLoggedModelTags(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
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
	for k := range tags {
		if hiddenTags[k] {
			return invalidParam("tag %q is reserved", k)
		}
	}
	if len(tags) > 0 {
		if err := h.svc.SetTags(s.ctx, s.ws, run.ID, tags); err != nil {
			return err
		}
		for k, v := range tags {
			run.Tags[k] = v
		}
	}
	return ok(w, map[string]any{"model": s.toLoggedModel(run)})
}

func (h *Handler) deleteLoggedModelTag(w http.ResponseWriter, s *scope, run *atelier.Run, key string) error {
	if _, found := run.Tags[key]; !found || hiddenTags[key] {
		return atelier.Errorf(atelier.ENOTFOUND, "No tag with key %q on logged model %s%s", key, loggedModelPrefix, run.ID)
	}
	if err := h.svc.DeleteTag(s.ctx, s.ws, run.ID, key); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) logLoggedModelParams(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
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
		if err := s.logParams(run.ID, params); err != nil {
			return err
		}
	}
	return ok(w, nil)
}

func (h *Handler) listLoggedModelArtifacts(w http.ResponseWriter, r *http.Request, s *scope, run *atelier.Run) error {
	sub := strings.Trim(r.URL.Query().Get("artifact_directory_path"), "/")
	dir := outputsDir
	if sub != "" {
		dir += "/" + sub
		if err := atelier.ValidatePath(dir); err != nil {
			return err
		}
	}
	files, err := h.listDir(r, s.ws, run.ID, dir)
	if err != nil {
		return err
	}
	for i := range files {
		if sub != "" {
			files[i].Path = sub + "/" + files[i].Path
		}
	}
	return ok(w, map[string]any{"root_uri": s.toLoggedModel(run).Info.ArtifactURI, "files": files})
}

// loggedModelAttrs are the attributes a logged model search filters and orders by.
var loggedModelAttrs = map[string]string{
	"name": "name", "model_id": "model_id", "source_run_id": "source_run_id", "status": "status",
	"model_type": "model_type", "creation_timestamp": "creation_timestamp", "creation_time": "creation_timestamp",
	"creation_timestamp_ms": "creation_timestamp", "last_updated_timestamp": "last_updated_timestamp",
	"last_updated_timestamp_ms": "last_updated_timestamp", "experiment_id": "experiment_id",
}

func loggedModelAttr(m *LoggedModel, field, key string) (string, bool) {
	switch field {
	case "name":
		return m.Info.Name, true
	case "model_id":
		return m.Info.ModelID, true
	case "source_run_id":
		return m.Info.SourceRunID, m.Info.SourceRunID != ""
	case "status":
		return m.Info.Status, true
	case "model_type":
		return m.Info.ModelType, m.Info.ModelType != ""
	case "experiment_id":
		return m.Info.ExperimentID, true
	case "creation_timestamp":
		return strconv.FormatInt(m.Info.CreationTimestampMS, 10), true
	case "last_updated_timestamp":
		return strconv.FormatInt(m.Info.LastUpdatedTimestampMS, 10), true
	case "tags", "params":
		list := m.Info.Tags
		if field == "params" {
			list = m.Data.Params
		}
		for _, kv := range list {
			if kv.Key == key {
				return kv.Value, true
			}
		}
	}
	return "", false
}

func (h *Handler) searchLoggedModels(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentIDs jlist   `json:"experiment_ids"`
		Filter        jstring `json:"filter"`
		MaxResults    jint    `json:"max_results"`
		PageToken     jstring `json:"page_token"`
		OrderBy       []struct {
			FieldName jstring `json:"field_name"`
			Ascending *jbool  `json:"ascending"`
		} `json:"order_by"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	limit, err := maxResults(req.MaxResults, 50, 50000)
	if err != nil {
		return err
	}
	conds, err := parseConds(string(req.Filter), loggedModelAttrs, map[string]string{"tags": "tags", "tag": "tags", "params": "params", "param": "params"})
	if err != nil {
		return err
	}
	var terms []string
	for _, o := range req.OrderBy {
		t := string(o.FieldName)
		if o.Ascending != nil && !bool(*o.Ascending) {
			t += " DESC"
		}
		terms = append(terms, t)
	}
	keys, err := parseOrder(terms, loggedModelAttrs)
	if err != nil {
		return err
	}
	keys = append(keys, orderKey{field: "creation_timestamp", desc: true}, orderKey{field: "model_id"})
	s := h.scope(r, ws)
	if _, err := h.svc.FindWorkspace(s.ctx, ws); err != nil {
		return err
	}
	var names []string
	for _, id := range req.ExperimentIDs {
		e, err := s.experimentByID(id)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		names = append(names, quote(e.Name))
	}
	filter := "properties.`" + propRecord + "` = '" + recordLoggedModel + "'"
	if len(req.ExperimentIDs) > 0 {
		if len(names) == 0 {
			return ok(w, map[string]any{"models": []any{}})
		}
		filter += " and experiment in (" + strings.Join(names, ", ") + ")"
	}
	runs, err := s.allRuns(atelier.RunQuery{Filter: filter, Lifecycle: atelier.LifecycleActive})
	if err != nil {
		return err
	}
	models := []*LoggedModel{}
	for _, run := range runs {
		m := s.toLoggedModel(run)
		if matchConds(conds, func(f, k string) (string, bool) { return loggedModelAttr(m, f, k) }) {
			models = append(models, m)
		}
	}
	sortItems(models, keys, func(m *LoggedModel, f string) string { v, _ := loggedModelAttr(m, f, ""); return v })
	lo, hi, next, err := pageOf(len(models), string(req.PageToken), limit)
	if err != nil {
		return err
	}
	resp := map[string]any{"models": models[lo:hi]}
	if next != "" {
		resp["next_page_token"] = next
	}
	return ok(w, resp)
}

// allRuns lists every run a query finds, page after page.
func (s *scope) allRuns(q atelier.RunQuery) ([]*atelier.Run, error) {
	q.Limit = atelier.MaxPageSize
	var out []*atelier.Run
	for {
		page, err := s.h.svc.ListRuns(s.ctx, s.ws, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Runs...)
		if page.NextPageToken == "" {
			return out, nil
		}
		q.PageToken = page.NextPageToken
	}
}

// modelOutput is MLflow's ModelOutput: a run produced a logged model at a step.
type modelOutput struct {
	ModelID string `json:"model_id"`
	Step    int64  `json:"step"`
}

// logOutputs records a run's logged models in a hidden tag; get-run returns them as the run's
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
	run, err := s.findRun(id, true)
	if err != nil {
		return err
	}
	var list []modelOutput
	_ = json.Unmarshal([]byte(run.Tags[tagModelOutputs]), &list)
	seen := map[modelOutput]bool{}
	for _, o := range list {
		seen[o] = true
	}
	added := false
	for _, m := range req.Models {
		if m.ModelID == "" {
			return invalidParam("missing value for required parameter 'model_id'")
		}
		if _, err := s.findLoggedModel(string(m.ModelID)); err != nil {
			return err
		}
		o := modelOutput{string(m.ModelID), m.Step.V}
		if !seen[o] {
			seen[o], added = true, true
			list = append(list, o)
		}
	}
	if !added {
		return ok(w, nil)
	}
	b, _ := json.Marshal(list)
	if len(b) > atelier.MaxTagValue {
		h.log.Warn("mlflow model outputs too many to keep", "run", id, "models", len(list))
		return ok(w, nil)
	}
	if err := h.svc.SetTags(s.ctx, ws, id, map[string]string{tagModelOutputs: string(b)}); err != nil {
		return err
	}
	return ok(w, nil)
}

// loggedModelBase is the directory name a logged model's files get in a model version: its
// name when that is a plain file name, else "model".
func loggedModelBase(run *atelier.Run) string {
	name := run.Name
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") || path.Clean(name) != name || atelier.ValidatePath(name) != nil {
		return "model"
	}
	return name
}
