package mlflow

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// MLflow's limits on logging, checked before anything is stored.
const (
	maxBatchMetrics  = 1000
	maxBatchParams   = 100
	maxBatchTags     = 100
	maxBatchEntities = 1000
)

// Tags MLflow gives meaning to.
const (
	tagRunName   = "mlflow.runName"
	tagParentRun = "mlflow.parentRunId"
	tagUser      = "mlflow.user"
	tagInputs    = "mlflow.datasetInputs" // hidden: the run's dataset inputs as JSON
)

// hiddenTags are atelier's bookkeeping, not shown as MLflow tags.
var hiddenTags = map[string]bool{tagLifecycle: true, tagInputs: true}

func ms(t time.Time) int64 { return t.UnixMilli() }

// toRun converts an atelier run to MLflow's Run; metrics come from their latest summaries.
func (s *scope) toRun(run *atelier.Run) (*Run, error) {
	sums, err := s.h.svc.ListMetrics(s.ctx, s.ws, run.ID)
	if err != nil {
		return nil, err
	}
	out := s.toRunWith(run, sums)
	ins, outs, err := s.runModels(run.ID)
	if err != nil {
		return nil, err
	}
	if len(ins) > 0 {
		var inputs map[string]any
		if json.Unmarshal(out.Inputs, &inputs) != nil || inputs == nil {
			inputs = map[string]any{}
		}
		inputs["model_inputs"] = ins
		out.Inputs, _ = json.Marshal(inputs)
	}
	if len(outs) > 0 {
		out.Outputs, _ = json.Marshal(map[string]any{"model_outputs": outs})
	}
	return out, nil
}

// toRunWith converts a run whose metric summaries are at hand.
func (s *scope) toRunWith(run *atelier.Run, sums []*atelier.MetricSummary) *Run {
	out := &Run{Info: s.toRunInfo(run)}
	out.Data.Metrics = make([]Metric, 0, len(sums))
	for _, m := range sums {
		if m.Kind == atelier.MetricScalar || m.Kind == "" {
			out.Data.Metrics = append(out.Data.Metrics, Metric{Key: m.Name, Value: m.Value, Timestamp: m.Timestamp, Step: m.Step})
		}
	}
	out.Data.Params = sortedKeyVals(run.Params)
	tags := map[string]string{}
	for k, v := range run.Tags {
		if !hiddenTags[k] {
			tags[k] = v
		}
	}
	if _, ok := tags[tagRunName]; !ok && run.Name != "" {
		tags[tagRunName] = run.Name
	}
	if _, ok := tags[tagParentRun]; !ok && run.ParentID != "" {
		tags[tagParentRun] = run.ParentID
	}
	if _, ok := tags[tagUser]; !ok && run.CreatedBy != "" {
		tags[tagUser] = run.CreatedBy
	}
	out.Data.Tags = sortedKeyVals(tags)
	out.Inputs = json.RawMessage(`{"dataset_inputs":[]}`)
	if in := run.Tags[tagInputs]; in != "" && json.Valid([]byte(in)) {
		out.Inputs = json.RawMessage(`{"dataset_inputs":` + in + `}`)
	}
	return out
}

func (s *scope) toRunInfo(run *atelier.Run) RunInfo {
	name := run.Tags[tagRunName]
	if name == "" {
		name = run.Name
	}
	expID := s.experimentIDOf(run.Experiment)
	info := RunInfo{RunID: run.ID, RunUUID: run.ID, RunName: name, ExperimentID: expID, UserID: run.CreatedBy,
		Status: mlflowStatus(run.Status), StartTime: ms(run.CreatedAt),
		ArtifactURI: "mlflow-artifacts:/" + expID + "/" + run.ID + "/artifacts", LifecycleStage: "active"}
	if run.StartedAt != nil {
		info.StartTime = ms(*run.StartedAt)
	}
	if run.EndedAt != nil {
		t := ms(*run.EndedAt)
		info.EndTime = &t
	}
	if run.Deleted {
		info.LifecycleStage = "deleted"
	}
	return info
}

type runIDReq struct {
	RunID   jstring `json:"run_id"`
	RunUUID jstring `json:"run_uuid"`
}

func (r runIDReq) id() (string, error) {
	id := string(r.RunID)
	if id == "" {
		id = string(r.RunUUID)
	}
	if id == "" {
		return "", invalidParam("missing value for required parameter 'run_id'")
	}
	return id, nil
}

// findRun returns a run by id; with active set, a run deleted through MLflow is refused as
// MLflow refuses to log to it.
func (s *scope) findRun(id string, active bool) (*atelier.Run, error) {
	run, err := s.h.svc.FindRun(s.ctx, s.ws, id)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "Run '%s' not found", id)
	} else if err != nil {
		return nil, err
	}
	if active && run.Deleted {
		return nil, invalidParam("The run %s must be in the 'active' state. Current state is deleted.", id)
	}
	return run, nil
}

func (h *Handler) createRun(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentID jstring    `json:"experiment_id"`
		UserID       jstring    `json:"user_id"`
		RunName      jstring    `json:"run_name"`
		StartTime    jint       `json:"start_time"`
		Tags         []inKeyVal `json:"tags"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Tags) > maxBatchTags*10 {
		return invalidParam("too many tags: %d", len(req.Tags))
	}
	// start_time is kept as given (MLflow's clients send their clock; importers the run's own
	// start); 0 or absent is the server's clock, as MLflow's. The domain bounds it.
	started, err := mlflowTime("start_time", req.StartTime)
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
	tags := map[string]string{}
	for _, t := range req.Tags {
		tags[string(t.Key)] = string(t.Value)
	}
	name := string(req.RunName)
	if name == "" {
		name = tags[tagRunName]
	}
	if name == "" {
		name = randomRunName()
	}
	if t, ok := tags[tagRunName]; ok && t != name {
		return invalidParam("both 'run_name' (%q) and the tag '%s' (%q) were given with different values", name, tagRunName, t)
	}
	tags[tagRunName] = name
	atelierName := name
	for utf8.RuneCountInString(atelierName) > atelier.MaxRunNameLength {
		_, n := utf8.DecodeLastRuneInString(atelierName)
		atelierName = atelierName[:len(atelierName)-n]
	}
	// A parent tag naming a run atelier does not hold (one kept elsewhere) is recorded as
	// given, as MLflow records it, and the run has no parent here.
	parent := tags[tagParentRun]
	if parent != "" {
		if _, err := h.svc.FindRun(s.ctx, ws, parent); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			parent = ""
		}
	}
	run, err := h.svc.CreateRun(s.ctx, ws, atelier.RunCreate{Experiment: e.Name, Name: atelierName,
		ParentID: parent, Status: atelier.StatusRunning, StartedAt: started, Tags: tags})
	if err != nil {
		return err
	}
	// A new run has no metrics. Its experiment is e, which s.exps holds (or, for Default, which
	// the run may have just brought into being, "0" whatever its atelier id).
	return ok(w, map[string]any{"run": s.toRunWith(run, nil)})
}

// mlflowTime reads a run's start_time or end_time, milliseconds since 1970: nil when 0 or
// absent (the server's clock), refused when negative.
func mlflowTime(field string, v jint) (*time.Time, error) {
	if v.V < 0 {
		return nil, invalidParam("invalid value %d for parameter '%s': milliseconds since 1970 cannot be negative", v.V, field)
	}
	if v.V == 0 {
		return nil, nil
	}
	t := time.UnixMilli(v.V).UTC()
	return &t, nil
}

func (h *Handler) getRun(w http.ResponseWriter, r *http.Request, ws string) error {
	var req runIDReq
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
	out, err := s.toRun(run)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"run": out})
}

func (h *Handler) updateRun(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Status  jstring `json:"status"`
		EndTime jint    `json:"end_time"`
		RunName jstring `json:"run_name"`
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
	if req.RunName != "" {
		if err := h.svc.SetTags(s.ctx, ws, id, map[string]string{tagRunName: string(req.RunName)}); err != nil {
			return err
		}
		run.Tags[tagRunName] = string(req.RunName)
	}
	if req.Status != "" {
		st, err := atelierStatus(string(req.Status))
		if err != nil {
			return err
		}
		switch {
		case mlflowStatus(st) == mlflowStatus(run.Status):
			// already there (MLflow's RUNNING covers several atelier states)
		case run.Status.Terminal() && !st.Terminal():
			// MLflow resumes an ended run by setting it RUNNING; atelier's lifecycle does not go
			// back, so the run stays ended and its logging goes on.
		default:
			// end_time is kept as given when the update ends the run (MLflow's clients send
			// their clock); 0 or absent is the server's clock.
			ended, err := mlflowTime("end_time", req.EndTime)
			if err != nil {
				return err
			}
			if run, err = h.svc.UpdateRunStatus(s.ctx, ws, id, atelier.RunStatusUpdate{Status: st, EndedAt: ended}); err != nil {
				return err
			}
		}
	}
	return ok(w, map[string]any{"run_info": s.toRunInfo(run)})
}

func (h *Handler) setLifecycle(w http.ResponseWriter, r *http.Request, ws string, deleted bool) error {
	var req runIDReq
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
	l := atelier.LifecycleActive
	if deleted {
		l = atelier.LifecycleDeleted
	}
	if run.Deleted != deleted {
		if _, err := h.svc.SetRunLifecycle(s.ctx, ws, run.ID, l); err != nil {
			return err
		}
	}
	return ok(w, nil)
}

func (h *Handler) deleteRun(w http.ResponseWriter, r *http.Request, ws string) error {
	return h.setLifecycle(w, r, ws, true)
}

func (h *Handler) restoreRun(w http.ResponseWriter, r *http.Request, ws string) error {
	return h.setLifecycle(w, r, ws, false)
}

func (h *Handler) searchRuns(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentIDs jlist   `json:"experiment_ids"`
		Filter        jstring `json:"filter"`
		RunViewType   jstring `json:"run_view_type"`
		MaxResults    jint    `json:"max_results"`
		OrderBy       jlist   `json:"order_by"`
		PageToken     jstring `json:"page_token"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	view, err := viewType(string(req.RunViewType))
	if err != nil {
		return err
	}
	limit := 1000
	if req.MaxResults.Set {
		if req.MaxResults.V < 1 || req.MaxResults.V > 50000 {
			return invalidParam("invalid value %d for parameter 'max_results': use 1 to 50000", req.MaxResults.V)
		}
		limit = int(min(req.MaxResults.V, atelier.MaxPageSize))
	}
	s := h.scope(r, ws)
	var names []string
	for _, id := range req.ExperimentIDs {
		e, err := s.experimentByID(id)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		names = append(names, e.Name)
	}
	resp := map[string]any{"runs": []*Run{}}
	if len(names) == 0 {
		// No experiment found may be no workspace: one the caller cannot see is not found, as
		// everywhere else, not an empty answer.
		if _, err := h.svc.FindWorkspace(s.ctx, ws); err != nil {
			return err
		}
		return ok(w, resp)
	}
	filter, err := translateFilter(string(req.Filter))
	if err != nil {
		return err
	}
	var conds []string
	q := atelier.RunQuery{Limit: limit, PageToken: string(req.PageToken), Summaries: true}
	switch view {
	case viewActive:
		q.Lifecycle = atelier.LifecycleActive
	case viewDeleted:
		q.Lifecycle = atelier.LifecycleDeleted
	}
	if len(names) == 1 {
		q.Experiment = names[0]
	} else {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = quote(n)
		}
		conds = append(conds, "experiment in ("+strings.Join(quoted, ", ")+")")
	}
	if strings.TrimSpace(filter) != "" {
		conds = append(conds, "("+filter+")")
	}
	q.Filter = strings.Join(conds, " and ")
	if q.OrderBy, err = translateOrderBy(req.OrderBy); err != nil {
		return err
	}
	// Ties go as MLflow's server breaks them: the newest start first, then by run id ascending.
	if q.OrderBy == "" {
		q.OrderBy = "started_at desc, id"
	} else {
		q.OrderBy += ", started_at desc, id"
	}
	page, err := h.svc.ListRuns(s.ctx, ws, q)
	if err != nil {
		return err
	}
	runs := make([]*Run, 0, len(page.Runs))
	for _, run := range page.Runs {
		runs = append(runs, s.toRunWith(run, page.Summaries[run.ID]))
	}
	resp["runs"] = runs
	if page.NextPageToken != "" {
		resp["next_page_token"] = page.NextPageToken
	}
	return ok(w, resp)
}

func toPoint(m inMetric, now int64) (atelier.MetricPoint, error) {
	if m.Key == "" {
		return atelier.MetricPoint{}, invalidParam("missing value for required parameter 'key'")
	}
	if !m.Value.Set {
		return atelier.MetricPoint{}, invalidParam("missing value for required parameter 'value' of metric %q", m.Key)
	}
	ts := m.Timestamp.V
	if !m.Timestamp.Set {
		ts = now
	}
	step := m.Step.V
	return atelier.MetricPoint{Name: string(m.Key), Step: &step, Timestamp: ts, Value: atelier.Float(m.Value.V)}, nil
}

func (h *Handler) logMetric(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		inMetric
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	p, err := toPoint(req.inMetric, h.Now().UnixMilli())
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	if err := s.logBatch(id, &atelier.RunBatch{Metrics: atelier.MetricBatch{Points: []atelier.MetricPoint{p}}}); err != nil {
		return err
	}
	if err := s.logModelMetrics(id, []inMetric{req.inMetric}, h.Now().UnixMilli()); err != nil {
		return err
	}
	return ok(w, nil)
}

// logModelMetrics records the metrics that name a logged model (MLflow 3's model_id) on that
// model too, with the run and the data set they were measured with.
func (s *scope) logModelMetrics(runID string, list []inMetric, now int64) error {
	byModel := map[string][]*atelier.LoggedModelMetric{}
	var order []string
	for _, m := range list {
		if m.ModelID == "" {
			continue
		}
		ts := m.Timestamp.V
		if !m.Timestamp.Set {
			ts = now
		}
		id := string(m.ModelID)
		if byModel[id] == nil {
			order = append(order, id)
		}
		byModel[id] = append(byModel[id], &atelier.LoggedModelMetric{Name: string(m.Key), Value: m.Value.V, Step: m.Step.V,
			Timestamp: time.UnixMilli(ts).UTC(), RunID: runID, DatasetName: string(m.DatasetName), DatasetDigest: string(m.DatasetDigest)})
	}
	for _, id := range order {
		err := s.h.svc.LogLoggedModelMetrics(s.ctx, s.ws, id, byModel[id])
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return atelier.Errorf(atelier.ENOTFOUND, "Logged model with ID '%s' not found.", id)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// logParams logs params with MLflow's message for a changed value.
func (s *scope) logParams(id string, params map[string]string) error {
	err := s.h.svc.LogParams(s.ctx, s.ws, id, params)
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		return invalidParam("Changing param values is not allowed. %s", atelier.ErrorMessage(err))
	}
	return err
}

func (h *Handler) logParam(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		inKeyVal
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	if req.Key == "" {
		return invalidParam("missing value for required parameter 'key'")
	}
	s := h.scope(r, ws)
	if _, err := s.findRun(id, true); err != nil {
		return err
	}
	if err := s.logParams(id, map[string]string{string(req.Key): string(req.Value)}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) setTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		inKeyVal
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	if req.Key == "" {
		return invalidParam("missing value for required parameter 'key'")
	}
	s := h.scope(r, ws)
	if _, err := s.findRun(id, true); err != nil {
		return err
	}
	if err := h.svc.SetTags(s.ctx, ws, id, map[string]string{string(req.Key): string(req.Value)}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Key jstring `json:"key"`
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
	if hiddenTags[string(req.Key)] {
		return atelier.Errorf(atelier.ENOTFOUND, "No tag with name: %s in run with id %s", req.Key, id)
	}
	if err := h.svc.DeleteTag(s.ctx, ws, id, string(req.Key)); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) logBatch(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Metrics []inMetric `json:"metrics"`
		Params  []inKeyVal `json:"params"`
		Tags    []inKeyVal `json:"tags"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	switch {
	case len(req.Metrics) > maxBatchMetrics:
		return invalidParam("A batch logging request can contain at most %d metrics. Got %d metrics.", maxBatchMetrics, len(req.Metrics))
	case len(req.Params) > maxBatchParams:
		return invalidParam("A batch logging request can contain at most %d params. Got %d params.", maxBatchParams, len(req.Params))
	case len(req.Tags) > maxBatchTags:
		return invalidParam("A batch logging request can contain at most %d tags. Got %d tags.", maxBatchTags, len(req.Tags))
	case len(req.Metrics)+len(req.Params)+len(req.Tags) > maxBatchEntities:
		return invalidParam("A batch logging request can contain at most %d metrics, params and tags in total.", maxBatchEntities)
	}
	now := h.Now().UnixMilli()
	pts := make([]atelier.MetricPoint, 0, len(req.Metrics))
	for _, m := range req.Metrics {
		p, err := toPoint(m, now)
		if err != nil {
			return err
		}
		pts = append(pts, p)
	}
	params := map[string]string{}
	for _, p := range req.Params {
		if old, ok := params[string(p.Key)]; ok && old != string(p.Value) {
			return invalidParam("Duplicate parameter keys have been submitted: %q with different values", p.Key)
		}
		params[string(p.Key)] = string(p.Value)
	}
	tags := map[string]string{}
	for _, t := range req.Tags {
		tags[string(t.Key)] = string(t.Value)
	}
	// Validate everything before storing anything.
	batch := &atelier.RunBatch{Params: params, Tags: tags, Metrics: atelier.MetricBatch{Points: pts}}
	if err := batch.Validate(); err != nil {
		return err
	}
	s := h.scope(r, ws)
	if err := s.logBatch(id, batch); err != nil {
		return err
	}
	if err := s.logModelMetrics(id, req.Metrics, now); err != nil {
		return err
	}
	return ok(w, nil)
}

// logBatch stores a batch as MLflow does: not to a deleted run, and a metric point already
// stored is not stored again (a retried request logs nothing twice). The checks are made in
// the batch's transaction; a refused batch is looked into again for MLflow's words.
func (s *scope) logBatch(id string, b *atelier.RunBatch) error {
	if len(b.Params)+len(b.Tags)+len(b.Metrics.Points) == 0 {
		_, err := s.findRun(id, true)
		return err
	}
	b.SkipDuplicates = true
	err := s.h.svc.LogBatch(s.ctx, s.ws, id, b)
	if code := atelier.ErrorCode(err); code != atelier.ENOTFOUND && code != atelier.ECONFLICT {
		return err
	}
	run, ferr := s.findRun(id, true)
	if ferr != nil {
		return ferr
	}
	for k, v := range b.Params {
		if old, ok := run.Params[k]; ok && old != v {
			return invalidParam("Changing param values is not allowed. Param with key='%s' was already logged with value='%s' for run ID='%s'. Attempted logging new value '%s'.", k, old, id, v)
		}
	}
	return err
}

// logInputs records dataset inputs in a hidden tag (atelier has no dataset lineage yet); what
// does not fit a tag keeps only each dataset's name, digest and source.
func (h *Handler) logInputs(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		Datasets []json.RawMessage `json:"datasets"`
		Models   []struct {
			ModelID jstring `json:"model_id"`
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
	// Models the run used are linked to it as inputs.
	links := make([]atelier.RunModel, 0, len(req.Models))
	for _, m := range req.Models {
		if m.ModelID == "" {
			return invalidParam("missing value for required parameter 'model_id'")
		}
		if _, err := s.findLoggedModel(string(m.ModelID)); err != nil {
			return err
		}
		links = append(links, atelier.RunModel{RunID: id, ModelID: string(m.ModelID), Input: true})
	}
	if len(links) > 0 {
		if err := h.svc.AddRunModels(s.ctx, ws, links); err != nil {
			return err
		}
	}
	if len(req.Datasets) == 0 {
		return ok(w, nil)
	}
	var list []json.RawMessage
	if old := run.Tags[tagInputs]; old != "" {
		_ = json.Unmarshal([]byte(old), &list)
	}
	seen := map[string]bool{}
	for _, d := range list {
		seen[string(d)] = true
	}
	for _, d := range req.Datasets {
		if !seen[string(d)] {
			list = append(list, d)
			seen[string(d)] = true
		}
	}
	b, _ := json.Marshal(list)
	if len(b) > atelier.MaxTagValue {
		b = slimInputs(list)
	}
	if len(b) > atelier.MaxTagValue {
		h.log.Warn("mlflow dataset inputs too large to keep", "run", id, "bytes", len(b))
		return ok(w, nil)
	}
	if err := h.svc.SetTags(s.ctx, ws, id, map[string]string{tagInputs: string(b)}); err != nil {
		return err
	}
	return ok(w, nil)
}

func slimInputs(list []json.RawMessage) []byte {
	type dataset struct {
		Name       string `json:"name"`
		Digest     string `json:"digest"`
		SourceType string `json:"source_type"`
		Source     string `json:"source"`
	}
	type input struct {
		Tags    []KeyVal `json:"tags,omitempty"`
		Dataset dataset  `json:"dataset"`
	}
	out := make([]input, 0, len(list))
	for _, raw := range list {
		var in input
		if json.Unmarshal(raw, &in) == nil {
			out = append(out, in)
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// logModel appends the model's metadata to the tag mlflow.log-model.history, as MLflow does.
func (h *Handler) logModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		ModelJSON jstring `json:"model_json"`
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
	var model json.RawMessage
	if err := json.Unmarshal([]byte(req.ModelJSON), &model); err != nil {
		return invalidParam("model_json is not valid JSON")
	}
	var hist []json.RawMessage
	_ = json.Unmarshal([]byte(run.Tags["mlflow.log-model.history"]), &hist)
	hist = append(hist, model)
	b, _ := json.Marshal(hist)
	if len(b) > atelier.MaxTagValue {
		return ok(w, nil)
	}
	if err := h.svc.SetTags(s.ctx, ws, id, map[string]string{"mlflow.log-model.history": string(b)}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) getMetricHistory(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		runIDReq
		MetricKey  jstring `json:"metric_key"`
		PageToken  jstring `json:"page_token"`
		MaxResults jint    `json:"max_results"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	id, err := req.id()
	if err != nil {
		return err
	}
	if req.MetricKey == "" {
		return invalidParam("missing value for required parameter 'metric_key'")
	}
	limit := math.MaxInt32 // every point, as MLflow answers without max_results
	if req.MaxResults.Set {
		if req.MaxResults.V < 1 {
			return invalidParam("invalid value %d for parameter 'max_results': use a positive number", req.MaxResults.V)
		}
		limit = int(min(req.MaxResults.V, math.MaxInt32))
	}
	s := h.scope(r, ws)
	if _, err := s.findRun(id, false); err != nil {
		return err
	}
	series, err := h.svc.MetricHistory(s.ctx, ws, id, string(req.MetricKey), atelier.HistoryQuery{})
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		series = &atelier.Series{Name: string(req.MetricKey)}
	} else if err != nil {
		return err
	}
	lo, hi, next, err := pageOf(len(series.Steps), string(req.PageToken), limit)
	if err != nil {
		return err
	}
	return writeHistory(w, series, lo, hi, next)
}

// writeHistory streams points lo..hi of a series as MLflow's GetMetricHistory response, one
// point at a time: a series of millions of points is never one response value in memory.
func writeHistory(w http.ResponseWriter, s *atelier.Series, lo, hi int, next string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	key, _ := json.Marshal(s.Name)
	buf := append(make([]byte, 0, 256), `{"metrics":[`...)
	for i := lo; i < hi; i++ {
		if i > lo {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"key":`...)
		buf = append(buf, key...)
		buf = append(buf, `,"value":`...)
		buf = atelier.AppendFloatJSON(buf, float64(s.Values[i]))
		buf = append(buf, `,"timestamp":`...)
		buf = strconv.AppendInt(buf, s.Timestamps[i], 10)
		buf = append(buf, `,"step":`...)
		buf = strconv.AppendInt(buf, s.Steps[i], 10)
		buf = append(buf, '}')
		if _, err := bw.Write(buf); err != nil {
			return nil // the client went away; the status is sent
		}
		buf = buf[:0]
	}
	buf = append(buf, ']')
	if next != "" {
		t, _ := json.Marshal(next)
		buf = append(append(buf, `,"next_page_token":`...), t...)
	}
	buf = append(buf, "}\n"...)
	bw.Write(buf)
	bw.Flush()
	return nil
}

func (h *Handler) getMetricHistoryBulkInterval(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		RunIDs     jlist   `json:"run_ids"`
		MetricKey  jstring `json:"metric_key"`
		StartStep  jint    `json:"start_step"`
		EndStep    jint    `json:"end_step"`
		MaxResults jint    `json:"max_results"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	switch {
	case len(req.RunIDs) == 0:
		return invalidParam("missing value for required parameter 'run_ids'")
	case len(req.RunIDs) > 100:
		return invalidParam("GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received %d run_ids.", len(req.RunIDs))
	case req.MetricKey == "":
		return invalidParam("missing value for required parameter 'metric_key'")
	case req.StartStep.Set != req.EndStep.Set:
		return invalidParam("if either start step or end step are specified, both must be specified")
	case req.StartStep.Set && req.StartStep.V > req.EndStep.V:
		return invalidParam("end_step must be greater than start_step")
	}
	maxResults := 320
	if req.MaxResults.Set {
		if req.MaxResults.V < 1 || req.MaxResults.V > 2500 {
			return invalidParam("max_results must be between 1 and 2500")
		}
		maxResults = int(req.MaxResults.V)
	}
	q := atelier.HistoryQuery{MaxPoints: maxResults}
	if req.StartStep.Set {
		q.MinStep, q.MaxStep = &req.StartStep.V, &req.EndStep.V
	}
	s := h.scope(r, ws)
	metrics := []Metric{}
	for _, id := range req.RunIDs {
		if _, err := s.findRun(id, false); err != nil {
			return err
		}
		series, err := h.svc.MetricHistory(s.ctx, ws, id, string(req.MetricKey), q)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		for i := range series.Steps {
			metrics = append(metrics, Metric{Key: series.Name, Value: series.Values[i], Timestamp: series.Timestamps[i], Step: series.Steps[i], RunID: id})
		}
	}
	sort.SliceStable(metrics, func(i, j int) bool {
		if metrics[i].RunID != metrics[j].RunID {
			return metrics[i].RunID < metrics[j].RunID
		}
		return metrics[i].Step < metrics[j].Step
	})
	return ok(w, map[string]any{"metrics": metrics})
}
