package mlflow

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// defaultExperiment is the atelier experiment behind MLflow's experiment "0".
const defaultExperiment = "Default"

// scope is one request's view of a workspace; it caches the experiments it has read, which run
// conversions need to turn experiment names into MLflow ids: the whole list once a request
// needed it (allExps), else only those it looked up one by one.
type scope struct {
	h       *Handler
	ctx     context.Context
	ws      string
	exps    []*atelier.Experiment
	allExps bool
	lookups int // experiments looked up by name one by one
}

func (h *Handler) scope(r *http.Request, ws string) *scope {
	return &scope{h: h, ctx: r.Context(), ws: ws}
}

// experiments lists the workspace's experiments, archived ones included.
func (s *scope) experiments() ([]*atelier.Experiment, error) {
	if s.allExps {
		return s.exps, nil
	}
	list, err := s.h.svc.ListExperiments(s.ctx, s.ws, atelier.ExperimentFilter{IncludeArchived: true})
	if err != nil {
		return nil, err
	}
	s.exps, s.allExps = list, true
	return list, nil
}

// forgetExperiments drops the cache, after a write that may have created an experiment.
func (s *scope) forgetExperiments() { s.exps, s.allExps = nil, false }

// mlflowExperimentID is an experiment's MLflow id: its atelier id, but "0" for Default.
func mlflowExperimentID(e *atelier.Experiment) string {
	if e.Name == defaultExperiment {
		return "0"
	}
	return strconv.FormatInt(e.ID, 10)
}

// experimentIDOf returns the MLflow id of the named experiment.
func (s *scope) experimentIDOf(name string) string {
	if name == defaultExperiment {
		return "0"
	}
	find := func() string {
		for _, e := range s.exps {
			if e.Name == name {
				return mlflowExperimentID(e)
			}
		}
		return ""
	}
	if id := find(); id != "" {
		return id
	}
	// A few experiments are looked up one by one; a request that converts runs of more reads
	// the whole list once.
	if s.lookups++; s.lookups > 3 && !s.allExps {
		if _, err := s.experiments(); err == nil {
			if id := find(); id != "" {
				return id
			}
		}
	}
	if e, err := s.h.svc.FindExperiment(s.ctx, s.ws, name); err == nil {
		s.exps = append(s.exps, e)
		return mlflowExperimentID(e)
	}
	return ""
}

// experimentByID finds an experiment by MLflow id. Experiment "0" exists from the start: until
// a run is created in it, it is synthesized.
func (s *scope) experimentByID(id string) (*atelier.Experiment, error) {
	if id == "" {
		return nil, invalidParam("missing value for required parameter 'experiment_id'")
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		return nil, invalidParam("invalid experiment id %q: experiment ids are integers", id)
	}
	if n == 0 {
		return s.defaultExperiment()
	}
	for _, e := range s.exps {
		if e.ID == n {
			return e, nil
		}
	}
	// One experiment read, not the workspace's list: runs/create asks for this on every call.
	list, err := s.h.svc.ListExperiments(s.ctx, s.ws, atelier.ExperimentFilter{IncludeArchived: true, ID: n})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "no experiment with id %s", id)
	}
	s.exps = append(s.exps, list[0])
	return list[0], nil
}

func (s *scope) defaultExperiment() (*atelier.Experiment, error) {
	e, err := s.h.svc.FindExperiment(s.ctx, s.ws, defaultExperiment)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		if _, werr := s.h.svc.FindWorkspace(s.ctx, s.ws); werr != nil {
			return nil, werr
		}
		return &atelier.Experiment{Workspace: s.ws, Name: defaultExperiment}, nil
	}
	return e, err
}

func (s *scope) toExperiment(e *atelier.Experiment) Experiment {
	id := mlflowExperimentID(e)
	loc := e.ArtifactLocation
	if loc == "" {
		loc = "mlflow-artifacts:/" + id
	}
	out := Experiment{ExperimentID: id, Name: e.Name, ArtifactLocation: loc,
		LifecycleStage: "active", CreationTime: e.CreatedAt.UnixMilli(), LastUpdateTime: e.UpdatedAt.UnixMilli()}
	if e.CreatedAt.IsZero() {
		out.CreationTime, out.LastUpdateTime = 0, 0
	}
	if e.Archived {
		out.LifecycleStage = "deleted"
	}
	out.Tags = sortedKeyVals(e.Tags)
	if _, noted := e.Tags["mlflow.note.content"]; !noted && e.Description != "" {
		out.Tags = append(out.Tags, KeyVal{"mlflow.note.content", e.Description})
	}
	return out
}

func sortedKeyVals(m map[string]string) []KeyVal {
	out := make([]KeyVal, 0, len(m))
	for k, v := range m {
		out = append(out, KeyVal{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (h *Handler) createExperiment(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name             jstring    `json:"name"`
		ArtifactLocation jstring    `json:"artifact_location"`
		Tags             []inKeyVal `json:"tags"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	name := string(req.Name)
	if name == "" {
		return invalidParam("missing value for required parameter 'name'")
	}
	if err := atelier.ValidateExperimentName(name); err != nil {
		return err
	}
	exists := &apiError{http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", "Experiment '" + name + "' already exists."}
	if name == defaultExperiment {
		return exists
	}
	c := atelier.ExperimentCreate{Name: name, ArtifactLocation: string(req.ArtifactLocation)}
	for _, t := range req.Tags {
		if c.Tags == nil {
			c.Tags = map[string]string{}
		}
		c.Tags[string(t.Key)] = string(t.Value)
	}
	e, err := h.svc.CreateExperiment(r.Context(), ws, c)
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		return exists
	} else if err != nil {
		return err
	}
	return ok(w, map[string]string{"experiment_id": mlflowExperimentID(e)})
}

type experimentIDReq struct {
	ExperimentID jstring `json:"experiment_id"`
}

func (h *Handler) getExperiment(w http.ResponseWriter, r *http.Request, ws string) error {
	var req experimentIDReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	e, err := s.experimentByID(string(req.ExperimentID))
	if err != nil {
		return err
	}
	return h.writeExperiment(w, s, e)
}

func (h *Handler) writeExperiment(w http.ResponseWriter, s *scope, e *atelier.Experiment) error {
	return ok(w, map[string]any{"experiment": s.toExperiment(e)})
}

func (h *Handler) getExperimentByName(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name jstring `json:"experiment_name"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return invalidParam("missing value for required parameter 'experiment_name'")
	}
	s := h.scope(r, ws)
	var e *atelier.Experiment
	var err error
	if req.Name == defaultExperiment {
		e, err = s.defaultExperiment()
	} else {
		e, err = h.svc.FindExperiment(s.ctx, ws, string(req.Name))
	}
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return atelier.Errorf(atelier.ENOTFOUND, "Could not find experiment with name '%s'", req.Name)
	} else if err != nil {
		return err
	}
	return h.writeExperiment(w, s, e)
}

func (h *Handler) searchExperiments(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		MaxResults jint    `json:"max_results"`
		PageToken  jstring `json:"page_token"`
		Filter     jstring `json:"filter"`
		OrderBy    jlist   `json:"order_by"`
		ViewType   jstring `json:"view_type"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	view, err := viewType(string(req.ViewType))
	if err != nil {
		return err
	}
	limit := 1000
	if req.MaxResults.Set {
		if req.MaxResults.V < 1 || req.MaxResults.V > 50000 {
			return invalidParam("invalid value %d for parameter 'max_results': use 1 to 50000", req.MaxResults.V)
		}
		limit = int(req.MaxResults.V)
	}
	conds, err := parseExperimentFilter(string(req.Filter))
	if err != nil {
		return err
	}
	q := atelier.ExperimentQuery{Filter: experimentFilter(conds), Limit: min(limit, atelier.MaxPageSize), PageToken: string(req.PageToken)}
	if q.OrderBy, err = experimentOrder(req.OrderBy); err != nil {
		return err
	}
	switch view {
	case viewActive:
		q.Archived = new(bool)
	case viewDeleted:
		q.Archived = ptrTo(true)
	}
	s := h.scope(r, ws)
	page, err := h.svc.SearchExperiments(s.ctx, ws, q)
	if err != nil {
		return err
	}
	out := make([]Experiment, 0, len(page.Experiments))
	for _, e := range page.Experiments {
		out = append(out, s.toExperiment(e))
	}
	// Experiment 0 exists from the start for MLflow: until a run is made in it, it is not in the
	// store, and is added here when the search fits one page.
	if q.PageToken == "" && page.NextPageToken == "" && view != viewDeleted {
		if _, err := h.svc.FindExperiment(s.ctx, ws, defaultExperiment); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			if x := s.toExperiment(&atelier.Experiment{Workspace: ws, Name: defaultExperiment}); matchExperiment(x, conds) {
				out = append(out, x)
				if err := sortExperiments(out, req.OrderBy); err != nil {
					return err
				}
				if len(out) > limit {
					out = out[:limit]
				}
			}
		} else if err != nil {
			return err
		}
	}
	resp := map[string]any{"experiments": out}
	if page.NextPageToken != "" {
		resp["next_page_token"] = page.NextPageToken
	}
	return ok(w, resp)
}

func ptrTo[T any](v T) *T { return &v }

// experimentFilter writes an MLflow experiment filter in atelier's query language.
func experimentFilter(conds []expCond) string {
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		op := c.op
		switch op {
		case "==":
			op = "="
		case "<>":
			op = "!="
		}
		switch c.field {
		case "name":
			parts = append(parts, "name "+op+" "+quote(c.value))
		case "tags":
			parts = append(parts, atelier.FilterField{Kind: atelier.FieldTag, Name: c.key}.String()+" "+op+" "+quote(c.value))
		case "creation_time":
			parts = append(parts, "created_at "+op+" "+strconv.FormatInt(c.num, 10))
		case "last_update_time":
			parts = append(parts, "updated_at "+op+" "+strconv.FormatInt(c.num, 10))
		}
	}
	return strings.Join(parts, " and ")
}

// experimentOrder translates MLflow's order_by of experiments; the default is the newest first.
func experimentOrder(orderBy []string) (string, error) {
	fields := map[string]string{"name": "name", "creation_time": "created_at", "last_update_time": "updated_at", "experiment_id": "id"}
	var terms []string
	for _, o := range orderBy {
		f := strings.Fields(o)
		if len(f) == 0 {
			continue
		}
		name := fields[strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(f[0], "attributes."), "attribute."))]
		if name == "" {
			return "", invalidParam("invalid order_by field %q: use name, experiment_id, creation_time or last_update_time", f[0])
		}
		if len(f) > 2 {
			return "", invalidParam("invalid order_by clause %q", o)
		}
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "DESC":
				name += " desc"
			case "ASC":
			default:
				return "", invalidParam("invalid order_by clause %q", o)
			}
		}
		terms = append(terms, name)
	}
	if len(terms) == 0 {
		return "created_at desc", nil
	}
	return strings.Join(terms, ", "), nil
}

// expCond is one condition of an experiment filter.
type expCond struct {
	field, key, op, value string
	num                   int64
}

// parseExperimentFilter reads MLflow's experiment filter: conditions on name, tags.KEY,
// creation_time and last_update_time joined by AND.
func parseExperimentFilter(s string) ([]expCond, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var conds []expCond
	for i := 0; i < len(toks); {
		if len(conds) > 0 {
			if !strings.EqualFold(toks[i].text, "and") {
				return nil, invalidParam("experiment filter: expected AND near %q", toks[i].text)
			}
			i++
		}
		if i+2 >= len(toks) {
			return nil, invalidParam("experiment filter %q: expected a comparison such as name = 'x'", s)
		}
		f, op, v := toks[i], toks[i+1], toks[i+2]
		i += 3
		c := expCond{op: strings.ToLower(op.text)}
		prefix, name, dotted := strings.Cut(f.text, ".")
		switch lp := strings.ToLower(prefix); {
		case dotted && (lp == "tags" || lp == "tag"):
			c.field, c.key = "tags", strings.Trim(name, "`\"")
		case dotted && (lp == "attribute" || lp == "attributes" || lp == "attr"):
			c.field = strings.ToLower(name)
		case !dotted:
			c.field = lp
		default:
			return nil, invalidParam("experiment filter: invalid field %q", f.text)
		}
		switch c.field {
		case "name", "tags":
			if v.kind != kString {
				return nil, invalidParam("experiment filter: %s compares with a quoted string", f.text)
			}
			switch c.op {
			case "=", "==", "!=", "<>", "like", "ilike":
			default:
				return nil, invalidParam("experiment filter: invalid comparator %q for %s", op.text, f.text)
			}
			c.value = v.str
		case "creation_time", "last_update_time":
			n, err := strconv.ParseInt(v.text, 10, 64)
			if err != nil || op.kind != kOp {
				return nil, invalidParam("experiment filter: %s compares with a number of milliseconds", f.text)
			}
			c.num = n
		default:
			return nil, invalidParam("experiment filter: invalid attribute %q: use name, creation_time, last_update_time or tags.KEY", f.text)
		}
		conds = append(conds, c)
	}
	return conds, nil
}

func matchExperiment(e Experiment, conds []expCond) bool {
	for _, c := range conds {
		var ok bool
		switch c.field {
		case "name":
			ok = matchString(e.Name, c.op, c.value, true)
		case "tags":
			found := false
			for _, t := range e.Tags {
				if t.Key == c.key {
					found, ok = true, matchString(t.Value, c.op, c.value, true)
				}
			}
			ok = ok && found
		case "creation_time", "last_update_time":
			v := e.CreationTime
			if c.field == "last_update_time" {
				v = e.LastUpdateTime
			}
			switch c.op {
			case "=", "==":
				ok = v == c.num
			case "!=", "<>":
				ok = v != c.num
			case "<":
				ok = v < c.num
			case "<=":
				ok = v <= c.num
			case ">":
				ok = v > c.num
			case ">=":
				ok = v >= c.num
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func matchString(s, op, v string, _ bool) bool {
	switch op {
	case "=", "==":
		return s == v
	case "!=", "<>":
		return s != v
	case "like":
		return likeMatch(s, v)
	case "ilike":
		return likeMatch(strings.ToLower(s), strings.ToLower(v))
	}
	return false
}

// likeMatch matches SQL LIKE patterns: % any run, _ one character.
func likeMatch(s, p string) bool {
	sr, pr := []rune(s), []rune(p)
	var m func(i, j int) bool
	memo := map[[2]int]bool{}
	m = func(i, j int) bool {
		if j == len(pr) {
			return i == len(sr)
		}
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var res bool
		switch pr[j] {
		case '%':
			res = m(i, j+1) || (i < len(sr) && m(i+1, j))
		case '_':
			res = i < len(sr) && m(i+1, j+1)
		default:
			res = i < len(sr) && sr[i] == pr[j] && m(i+1, j+1)
		}
		memo[k] = res
		return res
	}
	return m(0, 0)
}

func sortExperiments(list []Experiment, orderBy []string) error {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	for _, o := range orderBy {
		f := strings.Fields(o)
		if len(f) == 0 {
			continue
		}
		k := key{field: strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(f[0], "attributes."), "attribute."))}
		if len(f) > 1 {
			switch strings.ToUpper(f[1]) {
			case "DESC":
				k.desc = true
			case "ASC":
			default:
				return invalidParam("invalid order_by clause %q", o)
			}
		}
		if len(f) > 2 {
			return invalidParam("invalid order_by clause %q", o)
		}
		switch k.field {
		case "name", "creation_time", "last_update_time", "experiment_id":
		default:
			return invalidParam("invalid order_by field %q: use name, experiment_id, creation_time or last_update_time", f[0])
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		keys = []key{{"creation_time", true}}
	}
	keys = append(keys, key{field: "experiment_id"})
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		for _, k := range keys {
			var c int
			switch k.field {
			case "name":
				c = strings.Compare(a.Name, b.Name)
			case "creation_time":
				c = cmpInt(a.CreationTime, b.CreationTime)
			case "last_update_time":
				c = cmpInt(a.LastUpdateTime, b.LastUpdateTime)
			case "experiment_id":
				x, _ := strconv.ParseInt(a.ExperimentID, 10, 64)
				y, _ := strconv.ParseInt(b.ExperimentID, 10, 64)
				c = cmpInt(x, y)
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (h *Handler) updateExperiment(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentID jstring `json:"experiment_id"`
		NewName      jstring `json:"new_name"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	e, err := s.existingExperiment(string(req.ExperimentID))
	if err != nil {
		return err
	}
	if req.NewName == "" {
		return ok(w, nil)
	}
	name := string(req.NewName)
	if name == defaultExperiment || e.Name == defaultExperiment {
		return invalidParam("the Default experiment (id 0) keeps its name")
	}
	if _, err := h.svc.FindExperiment(s.ctx, ws, name); err == nil {
		return &apiError{http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", "Experiment '" + name + "' already exists."}
	}
	if _, err := h.svc.UpdateExperiment(s.ctx, ws, e.Name, atelier.ExperimentUpdate{Name: &name}); err != nil {
		return err
	}
	return ok(w, nil)
}

// existingExperiment finds an experiment that must exist in the store (not a synthesized Default).
func (s *scope) existingExperiment(id string) (*atelier.Experiment, error) {
	e, err := s.experimentByID(id)
	if err != nil {
		return nil, err
	}
	if e.ID == 0 {
		// Default has no runs yet: bring it into being (a concurrent request may have).
		e, err := s.h.svc.CreateExperiment(s.ctx, s.ws, atelier.ExperimentCreate{Name: defaultExperiment})
		if atelier.ErrorCode(err) == atelier.ECONFLICT {
			return s.h.svc.FindExperiment(s.ctx, s.ws, defaultExperiment)
		}
		return e, err
	}
	return e, nil
}

func (h *Handler) setArchived(w http.ResponseWriter, r *http.Request, ws string, archived bool) error {
	var req experimentIDReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	e, err := s.existingExperiment(string(req.ExperimentID))
	if err != nil {
		return err
	}
	if _, err := h.svc.UpdateExperiment(s.ctx, ws, e.Name, atelier.ExperimentUpdate{Archived: &archived}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteExperiment(w http.ResponseWriter, r *http.Request, ws string) error {
	return h.setArchived(w, r, ws, true)
}

func (h *Handler) restoreExperiment(w http.ResponseWriter, r *http.Request, ws string) error {
	return h.setArchived(w, r, ws, false)
}

func (h *Handler) setExperimentTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentID jstring `json:"experiment_id"`
		Key          jstring `json:"key"`
		Value        jstring `json:"value"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if err := atelier.ValidateKey("tag", string(req.Key)); err != nil {
		return err
	}
	s := h.scope(r, ws)
	e, err := s.existingExperiment(string(req.ExperimentID))
	if err != nil {
		return err
	}
	if e.Archived {
		return invalidParam("experiment %s is deleted: restore it to change its tags", req.ExperimentID)
	}
	upd := atelier.ExperimentUpdate{Tags: map[string]string{string(req.Key): string(req.Value)}}
	if _, err := h.svc.UpdateExperiment(s.ctx, ws, e.Name, upd); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteExperimentTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		ExperimentID jstring `json:"experiment_id"`
		Key          jstring `json:"key"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	e, err := s.experimentByID(string(req.ExperimentID))
	if err != nil {
		return err
	}
	if e.ID == 0 {
		return atelier.Errorf(atelier.ENOTFOUND, "experiment %s has no tag %q", req.ExperimentID, req.Key)
	}
	if _, err := h.svc.UpdateExperiment(s.ctx, ws, e.Name, atelier.ExperimentUpdate{DeleteTags: []string{string(req.Key)}}); err != nil {
		return err
	}
	return ok(w, nil)
}
