package mlflow

import (
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// MLflow's model registry is atelier's: a version registered through MLflow is an atelier model
// version made of the files backing its source (a logged model, run artifacts or another
// version), registered by reference (no byte copied); an atelier version reads as an MLflow one.
// A registered model's description and tags are the atelier model's own, and a model created
// through MLflow exists with no version (atelier.ModelEditor). A run's token creates registered
// models but changes none (notForRuns in handler.go). What the atelier registry has no place
// for lives beside it: a version's stage in its tag mlflow.stage; its MLflow source, logged
// model id and run link in properties (set once, as the source of a version never changes).
//
// Every version is downloaded from registered-models/<name>/versions/<v>/files through the
// artifacts proxy, so what MLflow loads is what the registry holds.

const (
	tagStage    = "mlflow.stage"
	propSource  = "mlflow.source"
	propModelID = "mlflow.modelId"
	propRunLink = "mlflow.runLink"
	// propRunID is the run_id given with a reference version's remote source when atelier holds
	// no such run (MLflow looks no run up for a remote source): shown as given, no lineage.
	propRunID = "mlflow.runId"
	stageNone = "None"
)

// versionRunID is a version's MLflow run_id: its lineage, or the run_id given with a remote
// source that names no run held here.
func versionRunID(v *atelier.ModelVersion) string {
	if v.RunID != "" {
		return v.RunID
	}
	return v.Properties[propRunID]
}

// remoteSource reports whether a version source is a URI of files stored elsewhere (s3://,
// gs://, dbfs:/, http(s)://, ...): any scheme but those naming what atelier stores (runs:/,
// models:/, mlflow-artifacts:) and file: (MLflow refuses the server's own disk). MLflow records
// such a source as a pointer; atelier registers a reference version.
func remoteSource(source string) bool {
	scheme, _, found := strings.Cut(source, ":")
	if !found || len(scheme) < 2 || strings.ContainsAny(scheme, "/\\") {
		return false // a local path (or a Windows drive, C:)
	}
	switch strings.ToLower(scheme) {
	case "runs", "models", "mlflow-artifacts", "file":
		return false
	}
	return true // checked by atelier.ValidateModelSource, a 400 naming the source
}

// ModelVersion is MLflow's ModelVersion message.
type ModelVersion struct {
	Name                 string   `json:"name"`
	Version              string   `json:"version"`
	CreationTimestamp    int64    `json:"creation_timestamp"`
	LastUpdatedTimestamp int64    `json:"last_updated_timestamp"`
	UserID               string   `json:"user_id,omitempty"`
	CurrentStage         string   `json:"current_stage"`
	Description          string   `json:"description,omitempty"`
	Source               string   `json:"source"`
	RunID                string   `json:"run_id,omitempty"`
	Status               string   `json:"status"`
	Tags                 []KeyVal `json:"tags,omitempty"`
	RunLink              string   `json:"run_link,omitempty"`
	Aliases              []string `json:"aliases,omitempty"`
	ModelID              string   `json:"model_id,omitempty"`
}

// RegisteredModelAlias is an alias and the version it points at.
type RegisteredModelAlias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// RegisteredModel is MLflow's RegisteredModel message.
type RegisteredModel struct {
	Name                 string                 `json:"name"`
	CreationTimestamp    int64                  `json:"creation_timestamp"`
	LastUpdatedTimestamp int64                  `json:"last_updated_timestamp"`
	UserID               string                 `json:"user_id,omitempty"`
	Description          string                 `json:"description,omitempty"`
	LatestVersions       []*ModelVersion        `json:"latest_versions,omitempty"`
	Tags                 []KeyVal               `json:"tags,omitempty"`
	Aliases              []RegisteredModelAlias `json:"aliases,omitempty"`
}

func (s *scope) toModelVersion(v *atelier.ModelVersion) *ModelVersion {
	tags := map[string]string{}
	for k, val := range v.Tags {
		if k != tagStage {
			tags[k] = val
		}
	}
	stage := v.Tags[tagStage]
	if stage == "" {
		stage = stageNone
	}
	return &ModelVersion{Name: v.Name, Version: strconv.FormatInt(v.Version, 10), CreationTimestamp: ms(v.CreatedAt),
		LastUpdatedTimestamp: ms(v.UpdatedAt), UserID: v.CreatedBy, CurrentStage: stage, Description: v.Description,
		Source: s.versionSource(v), RunID: versionRunID(v), Status: "READY", Tags: sortedKeyVals(tags),
		RunLink: v.Properties[propRunLink], Aliases: v.Aliases, ModelID: v.Properties[propModelID]}
}

// versionSource is the MLflow source of a version: as given when registered through MLflow;
// for a version registered in atelier from a run's outputs, the run's artifact URI; else the
// version's own files.
func (s *scope) versionSource(v *atelier.ModelVersion) string {
	if src := v.Properties[propSource]; src != "" {
		return src
	}
	if v.IsReference() {
		return v.Source
	}
	if v.RunID != "" && (v.Path == outputsDir || strings.HasPrefix(v.Path, outputsDir+"/")) {
		if expID := s.experimentIDOf(v.Experiment); expID != "" {
			return strings.TrimSuffix("mlflow-artifacts:/"+expID+"/"+v.RunID+"/artifacts/"+strings.TrimPrefix(strings.TrimPrefix(v.Path, outputsDir), "/"), "/")
		}
	}
	return versionDownloadURI(v)
}

// findModel returns a registered model, ENOTFOUND in MLflow's words when there is none.
func (s *scope) findModel(name string) (*atelier.Model, error) {
	if name == "" {
		return nil, invalidParam("missing value for required parameter 'name'")
	}
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	m, err := s.h.svc.FindModel(s.ctx, s.ws, name)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "Registered Model with name=%s not found", name)
	}
	return m, err
}

// allVersions lists the versions of a model (all models for an empty name).
func (s *scope) allVersions(name string) ([]*atelier.ModelVersion, error) {
	q := atelier.ModelQuery{Name: name, Limit: atelier.MaxPageSize, OrderBy: "version asc"}
	var out []*atelier.ModelVersion
	for {
		page, err := s.h.svc.ListModelVersions(s.ctx, s.ws, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Versions...)
		if page.NextPageToken == "" {
			return out, nil
		}
		q.PageToken = page.NextPageToken
	}
}

// latestByStage keeps the newest version of each stage, in stage order.
func latestByStage(versions []*ModelVersion, stages []string) []*ModelVersion {
	want := map[string]bool{}
	for _, st := range stages {
		if c, err := canonicalStage(st); err == nil {
			want[c] = true
		}
	}
	best := map[string]*ModelVersion{}
	for _, v := range versions {
		if len(want) > 0 && !want[v.CurrentStage] {
			continue
		}
		if b := best[v.CurrentStage]; b == nil || compareValues(v.Version, b.Version) > 0 {
			best[v.CurrentStage] = v
		}
	}
	out := []*ModelVersion{}
	for _, st := range []string{stageNone, "Staging", "Production", "Archived"} {
		if b := best[st]; b != nil {
			out = append(out, b)
		}
	}
	return out
}

func canonicalStage(s string) (string, error) {
	for _, st := range []string{stageNone, "Staging", "Production", "Archived"} {
		if strings.EqualFold(s, st) {
			return st, nil
		}
	}
	return "", invalidParam("invalid model version stage %q: use None, Staging, Production or Archived", s)
}

func (s *scope) toRegisteredModel(m *atelier.Model, versions []*atelier.ModelVersion) *RegisteredModel {
	out := &RegisteredModel{Name: m.Name, Description: m.Description, Tags: sortedKeyVals(m.Tags),
		CreationTimestamp: ms(m.CreatedAt), LastUpdatedTimestamp: ms(m.UpdatedAt)}
	for a, v := range m.Aliases {
		out.Aliases = append(out.Aliases, RegisteredModelAlias{a, strconv.FormatInt(v, 10)})
	}
	sort.Slice(out.Aliases, func(i, j int) bool { return out.Aliases[i].Alias < out.Aliases[j].Alias })
	mvs := make([]*ModelVersion, 0, len(versions))
	for _, v := range versions {
		mvs = append(mvs, s.toModelVersion(v))
		if out.UserID == "" {
			out.UserID = v.CreatedBy
		}
	}
	if lv := latestByStage(mvs, nil); len(lv) > 0 {
		out.LatestVersions = lv
	}
	return out
}

// registeredModel reads one registered model.
func (s *scope) registeredModel(name string) (*RegisteredModel, error) {
	m, err := s.findModel(name)
	if err != nil {
		return nil, err
	}
	var versions []*atelier.ModelVersion
	if m.VersionCount > 0 {
		if versions, err = s.allVersions(name); err != nil {
			return nil, err
		}
	}
	return s.toRegisteredModel(m, versions), nil
}

type nameReq struct {
	Name jstring `json:"name"`
}

func (h *Handler) createRegisteredModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name        jstring    `json:"name"`
		Tags        []inKeyVal `json:"tags"`
		Description jstring    `json:"description"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	name := string(req.Name)
	if name == "" {
		return invalidParam("missing value for required parameter 'name'")
	}
	if err := atelier.ValidateModelName(name); err != nil {
		return err
	}
	tags, err := keyValMap("tag", req.Tags, atelier.MaxTagValue)
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	_, err = h.svc.CreateModel(s.ctx, ws, atelier.ModelCreate{Name: name, Description: string(req.Description), Tags: tags})
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		return &apiError{http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=" + name + ") already exists."}
	} else if err != nil {
		return err
	}
	rm, err := s.registeredModel(name)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"registered_model": rm})
}

func (h *Handler) getRegisteredModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req nameReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	rm, err := h.scope(r, ws).registeredModel(string(req.Name))
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"registered_model": rm})
}

func (h *Handler) updateRegisteredModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name        jstring  `json:"name"`
		Description *jstring `json:"description"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	name := string(req.Name)
	if _, err := s.findModel(name); err != nil {
		return err
	}
	if req.Description != nil {
		if _, err := h.svc.UpdateModel(s.ctx, ws, name, atelier.ModelUpdate{Description: (*string)(req.Description)}); err != nil {
			return err
		}
	}
	rm, err := s.registeredModel(name)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"registered_model": rm})
}

func (h *Handler) deleteRegisteredModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req nameReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	name := string(req.Name)
	if _, err := s.findModel(name); err != nil {
		return err
	}
	if err := h.svc.DeleteModel(s.ctx, ws, name); err != nil {
		return err
	}
	return ok(w, nil)
}

// renameRegisteredModel renames a model in one transaction of the store: versions, aliases,
// creation times and what uses them stay with it.
func (h *Handler) renameRegisteredModel(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name    jstring `json:"name"`
		NewName jstring `json:"new_name"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	name, newName := string(req.Name), string(req.NewName)
	if newName == "" {
		return invalidParam("missing value for required parameter 'new_name'")
	}
	if err := atelier.ValidateModelName(newName); err != nil {
		return err
	}
	if _, err := s.findModel(name); err != nil {
		return err
	}
	_, err := h.svc.RenameModel(s.ctx, ws, name, newName)
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		return &apiError{http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=" + newName + ") already exists."}
	} else if err != nil {
		return err
	}
	rm, err := s.registeredModel(newName)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"registered_model": rm})
}

// registeredModelAttrs are the attributes a registered model search filters and orders by.
var registeredModelAttrs = map[string]string{"name": "name", "creation_timestamp": "creation_timestamp",
	"last_updated_timestamp": "last_updated_timestamp", "timestamp": "last_updated_timestamp"}

func (h *Handler) searchRegisteredModels(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Filter     jstring `json:"filter"`
		MaxResults jint    `json:"max_results"`
		OrderBy    jlist   `json:"order_by"`
		PageToken  jstring `json:"page_token"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	limit, err := maxResults(req.MaxResults, 100, 1000)
	if err != nil {
		return err
	}
	conds, err := parseConds(string(req.Filter), registeredModelAttrs, map[string]string{"tags": "tags", "tag": "tags"})
	if err != nil {
		return err
	}
	modelFields := map[string]string{"name": "name", "creation_timestamp": "created_at", "last_updated_timestamp": "updated_at"}
	filter, err := atelierFilter(string(req.Filter), conds, func(c cond) (string, bool, string) {
		if c.field == "tags" {
			return keyed(atelier.FieldTag, c.key), false, ""
		}
		return modelFields[c.field], c.field != "name", ""
	})
	if err != nil {
		return err
	}
	keys, err := parseOrder(req.OrderBy, registeredModelAttrs)
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	page, err := h.svc.ListModels(s.ctx, ws, atelier.ModelQuery{Filter: filter, Sort: sortOf(keys, modelFields),
		Limit: limit, PageToken: string(req.PageToken)})
	if err != nil {
		return err
	}
	// Only the models that have versions have latest versions to read.
	var names []string
	for _, m := range page.Models {
		if m.VersionCount > 0 {
			names = append(names, m.Name)
		}
	}
	versionsOf, err := s.versionsOf(names)
	if err != nil {
		return err
	}
	out := make([]*RegisteredModel, 0, len(page.Models))
	for _, m := range page.Models {
		out = append(out, s.toRegisteredModel(m, versionsOf[m.Name]))
	}
	resp := map[string]any{"registered_models": out}
	if page.NextPageToken != "" {
		resp["next_page_token"] = page.NextPageToken
	}
	return ok(w, resp)
}

// sortOf writes parsed MLflow order keys as an atelier ordering.
func sortOf(keys []orderKey, fields map[string]string) string {
	terms := make([]string, 0, len(keys))
	for _, k := range keys {
		t := fields[k.field]
		if k.desc {
			t += " desc"
		}
		terms = append(terms, t)
	}
	return strings.Join(terms, ", ")
}

// versionsOf reads the versions of the named models, by model.
func (s *scope) versionsOf(names []string) (map[string][]*atelier.ModelVersion, error) {
	out := map[string][]*atelier.ModelVersion{}
	if len(names) == 0 {
		return out, nil
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quote(n)
	}
	q := atelier.ModelQuery{Filter: "name in (" + strings.Join(quoted, ", ") + ")", Sort: "name, version", Limit: atelier.MaxPageSize}
	for {
		page, err := s.h.svc.ListModelVersions(s.ctx, s.ws, q)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			out[v.Name] = append(out[v.Name], v)
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		q.PageToken = page.NextPageToken
	}
}

func (h *Handler) getLatestVersions(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name   jstring `json:"name"`
		Stages jlist   `json:"stages"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	for _, st := range req.Stages {
		if _, err := canonicalStage(st); err != nil {
			return err
		}
	}
	s := h.scope(r, ws)
	m, err := s.findModel(string(req.Name))
	if err != nil {
		return err
	}
	var mvs []*ModelVersion
	if m.VersionCount > 0 {
		versions, err := s.allVersions(m.Name)
		if err != nil {
			return err
		}
		for _, v := range versions {
			mvs = append(mvs, s.toModelVersion(v))
		}
	}
	return ok(w, map[string]any{"model_versions": latestByStage(mvs, req.Stages)})
}

func (h *Handler) setRegisteredModelTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name  jstring `json:"name"`
		Key   jstring `json:"key"`
		Value jstring `json:"value"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if err := atelier.ValidateKey("tag", string(req.Key)); err != nil {
		return err
	}
	s := h.scope(r, ws)
	if _, err := s.findModel(string(req.Name)); err != nil {
		return err
	}
	upd := atelier.ModelUpdate{Tags: map[string]string{string(req.Key): string(req.Value)}}
	if _, err := h.svc.UpdateModel(s.ctx, ws, string(req.Name), upd); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteRegisteredModelTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name jstring `json:"name"`
		Key  jstring `json:"key"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	s := h.scope(r, ws)
	if _, err := s.findModel(string(req.Name)); err != nil {
		return err
	}
	key := string(req.Key)
	_, err := h.svc.UpdateModel(s.ctx, ws, string(req.Name), atelier.ModelUpdate{DeleteTags: []string{key}})
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return atelier.Errorf(atelier.ENOTFOUND, "registered model %s has no tag %q", req.Name, key)
	}
	if err != nil {
		return err
	}
	return ok(w, nil)
}

// versionRef reads a name and a version number.
func versionRef(name, version string) (atelier.ModelRef, error) {
	if name == "" {
		return atelier.ModelRef{}, invalidParam("missing value for required parameter 'name'")
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 {
		return atelier.ModelRef{}, invalidParam("invalid model version %q: versions are positive integers", version)
	}
	ref := atelier.ModelRef{Name: name, Version: v}
	return ref, ref.Validate()
}

type versionReq struct {
	Name    jstring `json:"name"`
	Version jstring `json:"version"`
}

func (q versionReq) ref() (atelier.ModelRef, error) {
	return versionRef(string(q.Name), string(q.Version))
}

func (h *Handler) setRegisteredModelAlias(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		versionReq
		Alias jstring `json:"alias"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	if _, err := h.svc.SetModelAlias(r.Context(), ws, ref.Name, string(req.Alias), ref.Version); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteRegisteredModelAlias(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name  jstring `json:"name"`
		Alias jstring `json:"alias"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if err := h.svc.DeleteModelAlias(r.Context(), ws, string(req.Name), string(req.Alias)); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) getModelVersionByAlias(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name  jstring `json:"name"`
		Alias jstring `json:"alias"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref := atelier.ModelRef{Name: string(req.Name), Alias: string(req.Alias)}
	if ref.Alias == "" {
		return invalidParam("missing value for required parameter 'alias'")
	}
	if err := ref.Validate(); err != nil {
		return err
	}
	s := h.scope(r, ws)
	v, err := h.svc.FindModelVersion(s.ctx, ws, ref)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"model_version": s.toModelVersion(v)})
}

// sourceFiles resolves the source of a new version to the stored files backing it, named as
// atelier names a registered folder (its base name first), and the run to record as lineage.
// Sources: a logged model (models:/m-..., or model_id), a run's or logged model's artifacts
// (mlflow-artifacts:/..., runs:/RUN/PATH), or another version (models:/NAME/VERSION,
// models:/NAME@ALIAS, or its files' URI).
func (s *scope) sourceFiles(source, modelID string) (string, []atelier.ModelFile, error) {
	if modelID == "" {
		if id, found := strings.CutPrefix(source, "models:/"); found && strings.HasPrefix(id, atelier.LoggedModelIDPrefix) && !strings.ContainsAny(id, "/@") {
			modelID = id
		}
	}
	switch {
	case modelID != "" && (source == "" || strings.HasPrefix(source, "models:/")):
		m, err := s.findLoggedModel(modelID)
		if err != nil {
			return "", nil, err
		}
		return s.loggedModelSourceFiles(m, "")
	case strings.HasPrefix(source, "mlflow-artifacts:"):
		p := strings.TrimPrefix(source, "mlflow-artifacts:")
		if rest, found := strings.CutPrefix(p, "//"); found {
			_, p, _ = strings.Cut(rest, "/") // mlflow-artifacts://host/path
		}
		if ref, file, isVersion, err := versionArtifactPath(p); err != nil {
			return "", nil, err
		} else if isVersion {
			return s.versionSourceFiles(ref, file)
		}
		if id, file, isModel, err := modelArtifactPath(p); err != nil {
			return "", nil, err
		} else if isModel {
			m, err := s.findLoggedModel(id)
			if err != nil {
				return "", nil, err
			}
			return s.loggedModelSourceFiles(m, file)
		}
		runID, file, err := runArtifactPath(p)
		if err != nil {
			return "", nil, err
		}
		run, err := s.findRun(runID, false)
		if err != nil {
			return "", nil, err
		}
		return s.runSourceFiles(run, file)
	case strings.HasPrefix(source, "runs:/"):
		runID, p, _ := strings.Cut(strings.TrimPrefix(source, "runs:/"), "/")
		file := outputsDir
		if p = strings.Trim(p, "/"); p != "" {
			file += "/" + p
		}
		if err := atelier.ValidatePath(file); err != nil {
			return "", nil, err
		}
		run, err := s.findRun(runID, false)
		if err != nil {
			return "", nil, err
		}
		return s.runSourceFiles(run, file)
	case strings.HasPrefix(source, "models:/"):
		rest := strings.TrimPrefix(source, "models:/")
		var ref atelier.ModelRef
		var err error
		if name, ver, found := strings.Cut(rest, "/"); found {
			ref, err = atelier.ParseModelSelector(name, ver)
		} else {
			ref, err = atelier.ParseModelRef(rest)
		}
		if err != nil {
			return "", nil, err
		}
		return s.versionSourceFiles(ref, "")
	}
	return "", nil, invalidParam("cannot register a model version from %q: atelier registers files it stores; use a source such as models:/<model_id>, runs:/<run_id>/<path> or the artifact URI of a run or logged model", source)
}

// runSourceFiles lists a run's files at file (a file or a folder) as version files.
func (s *scope) runSourceFiles(run *atelier.Run, file string) (string, []atelier.ModelFile, error) {
	lineage, base := run.ID, path.Base(file)
	if file == outputsDir {
		base = "model"
	}
	list, err := s.h.svc.ListFiles(s.ctx, s.ws, run.ID, file)
	if err != nil {
		return "", nil, err
	}
	var files []atelier.ModelFile
	for _, f := range list {
		if f.Log || f.Digest == "" || (f.Path != file && !strings.HasPrefix(f.Path, file+"/")) {
			continue
		}
		files = append(files, atelier.ModelFile{Path: base + f.Path[len(file):], Digest: f.Digest, Size: f.Size})
	}
	if len(files) == 0 {
		return "", nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no artifacts at %q", run.ID, strings.TrimPrefix(strings.TrimPrefix(file, outputsDir), "/"))
	}
	return lineage, files, nil
}

// loggedModelSourceFiles lists a logged model's files at file ("" for all) as version files,
// its folder named after the model; the lineage is its source run.
func (s *scope) loggedModelSourceFiles(m *atelier.LoggedModel, file string) (string, []atelier.ModelFile, error) {
	list, err := s.h.svc.ListLoggedModelFiles(s.ctx, s.ws, m.ID, file)
	if err != nil {
		return "", nil, err
	}
	base := loggedModelBase(m)
	if file != "" {
		base = path.Base(file)
	}
	var files []atelier.ModelFile
	for _, f := range list {
		rel := f.Path
		if file != "" {
			rel = f.Path[len(file):]
		} else {
			rel = "/" + rel
		}
		files = append(files, atelier.ModelFile{Path: base + rel, Digest: f.Digest, Size: f.Size})
	}
	if len(files) == 0 {
		return "", nil, atelier.Errorf(atelier.ENOTFOUND, "logged model %s has no artifacts at %q", m.ID, file)
	}
	lineage := m.SourceRunID
	if lineage != "" {
		if _, err := s.h.svc.FindRun(s.ctx, s.ws, lineage); err != nil {
			lineage = "" // a source run kept elsewhere is no lineage here
		}
	}
	return lineage, files, nil
}

// versionSourceFiles lists another version's files (under dir, kept as they are named).
func (s *scope) versionSourceFiles(ref atelier.ModelRef, dir string) (string, []atelier.ModelFile, error) {
	v, err := s.h.svc.FindModelVersion(s.ctx, s.ws, ref)
	if err != nil {
		return "", nil, err
	}
	var files []atelier.ModelFile
	for _, f := range v.Files {
		if dir == "" || f.Path == dir || strings.HasPrefix(f.Path, dir+"/") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return "", nil, atelier.Errorf(atelier.ENOTFOUND, "model %s has no files at %q", v.Ref(), dir)
	}
	return v.RunID, files, nil
}

// invalidSource is MLflow's refusal of a version source that the run or model id given does not
// hold.
func invalidSource(source, idName string) error {
	return invalidParam("Invalid model version source: '%s'. The %s request parameter must identify the resource that contains the source.", source, idName)
}

// sourceNamesRun reports whether a source is a run's files (runs:/ or a run's artifact URI).
func sourceNamesRun(source string) bool {
	if strings.HasPrefix(source, "runs:/") {
		return true
	}
	p, found := strings.CutPrefix(source, "mlflow-artifacts:")
	if !found {
		return false
	}
	if rest, host := strings.CutPrefix(p, "//"); host {
		_, p, _ = strings.Cut(rest, "/")
	}
	_, _, err := runArtifactPath(p)
	_, _, isModel, _ := modelArtifactPath(p)
	_, _, isVersion, _ := versionArtifactPath(p)
	return err == nil && !isModel && !isVersion
}

// sourceRunID is the run a run source names (runs:/RUN/... or a run's artifact URI).
func sourceRunID(source string) string {
	if rest, found := strings.CutPrefix(source, "runs:/"); found {
		id, _, _ := strings.Cut(rest, "/")
		return id
	}
	p := strings.TrimPrefix(source, "mlflow-artifacts:")
	if rest, host := strings.CutPrefix(p, "//"); host {
		_, p, _ = strings.Cut(rest, "/")
	}
	id, _, _ := runArtifactPath(p)
	return id
}

// checkSourceRun refuses, as the newest MLflow server does, a runs:/ source with a run_id naming
// another run.
func checkSourceRun(source, runID string) error {
	rest, found := strings.CutPrefix(source, "runs:/")
	if !found || runID == "" {
		return nil
	}
	if srcRun, _, _ := strings.Cut(rest, "/"); srcRun != runID {
		return invalidSource(source, "run_id")
	}
	return nil
}

func (h *Handler) createModelVersion(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Name        jstring    `json:"name"`
		Source      jstring    `json:"source"`
		RunID       jstring    `json:"run_id"`
		Tags        []inKeyVal `json:"tags"`
		RunLink     jstring    `json:"run_link"`
		Description jstring    `json:"description"`
		ModelID     jstring    `json:"model_id"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Source == "" && req.ModelID == "" {
		return invalidParam("missing value for required parameter 'source'")
	}
	tags, err := keyValMap("tag", req.Tags, atelier.MaxTagValue)
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	name := string(req.Name)
	if _, err := s.findModel(name); err != nil {
		return err
	}
	if err := checkSourceRun(string(req.Source), string(req.RunID)); err != nil {
		return err
	}
	props := map[string]string{}
	var lineage, reference string
	var files []atelier.ModelFile
	if remoteSource(string(req.Source)) {
		// Files stored elsewhere: a reference version, its source kept as given.
		if err := atelier.ValidateModelSource(string(req.Source)); err != nil {
			return invalidParam("Invalid model version source: '%s'. %s", req.Source, atelier.ErrorMessage(err))
		}
		reference = string(req.Source)
		if req.RunID != "" {
			if _, err := h.svc.FindRun(s.ctx, ws, string(req.RunID)); err == nil {
				lineage = string(req.RunID)
			} else if atelier.ErrorCode(err) == atelier.ENOTFOUND {
				props[propRunID] = string(req.RunID) // MLflow looks no run up for a remote source
			} else {
				return err
			}
		}
	} else {
		lineage, files, err = s.sourceFiles(string(req.Source), string(req.ModelID))
		if atelier.ErrorCode(err) == atelier.ENOTFOUND && sourceNamesRun(string(req.Source)) {
			if strings.HasPrefix(atelier.ErrorMessage(err), "Run '") { // findRun's, not "no artifacts at"
				// As MLflow's server answers a run source whose run it does not hold.
				return invalidSource(string(req.Source), "run_id")
			}
			// A path of a held run with no files under it: MLflow records it as a pointer, and
			// so does atelier, as a reference with the run as lineage.
			reference, lineage, files, err = string(req.Source), sourceRunID(string(req.Source)), nil, nil
			if verr := atelier.ValidateModelSource(reference); verr != nil {
				return invalidParam("Invalid model version source: '%s'. %s", req.Source, atelier.ErrorMessage(verr))
			}
		} else if err != nil {
			return err
		}
		if req.RunID != "" {
			lineage = string(req.RunID)
		}
	}
	for k, v := range map[string]jstring{propSource: req.Source, propModelID: req.ModelID, propRunLink: req.RunLink} {
		if v != "" {
			props[k] = string(v)
		}
	}
	if props[propModelID] == "" {
		if id, found := strings.CutPrefix(string(req.Source), "models:/"); found && strings.HasPrefix(id, atelier.LoggedModelIDPrefix) && !strings.ContainsAny(id, "/@") {
			props[propModelID] = id
		}
	}
	v, err := h.svc.RegisterModel(s.ctx, ws, atelier.ModelRegister{Name: name, RunID: lineage, Files: files, Source: reference,
		Description: string(req.Description), Tags: tags, Properties: props, Framework: "mlflow"})
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"model_version": s.toModelVersion(v)})
}

func (h *Handler) getModelVersion(w http.ResponseWriter, r *http.Request, ws string) error {
	var req versionReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	v, err := h.svc.FindModelVersion(s.ctx, ws, ref)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"model_version": s.toModelVersion(v)})
}

func (h *Handler) updateModelVersion(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		versionReq
		Description *jstring `json:"description"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	var upd atelier.ModelVersionUpdate
	if req.Description != nil {
		d := string(*req.Description)
		upd.Description = &d
	}
	s := h.scope(r, ws)
	v, err := h.svc.UpdateModelVersion(s.ctx, ws, ref, upd)
	if err != nil {
		return err
	}
	return ok(w, map[string]any{"model_version": s.toModelVersion(v)})
}

func (h *Handler) deleteModelVersion(w http.ResponseWriter, r *http.Request, ws string) error {
	var req versionReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	if _, err := h.svc.FindModelVersion(s.ctx, ws, ref); err != nil {
		return err
	}
	// An MLflow registered model outlives its versions: keep it (an empty update does).
	if _, err := h.svc.UpdateModel(s.ctx, ws, ref.Name, atelier.ModelUpdate{}); err != nil {
		return err
	}
	if err := h.svc.DeleteModelVersion(s.ctx, ws, ref); err != nil {
		return err
	}
	return ok(w, nil)
}

// modelVersionAttrs are the attributes a version search filters and orders by.
var modelVersionAttrs = map[string]string{"name": "name", "version_number": "version", "version": "version",
	"run_id": "run_id", "source_path": "source", "source": "source", "model_id": "model_id",
	"creation_timestamp": "creation_timestamp", "last_updated_timestamp": "last_updated_timestamp",
	"timestamp": "last_updated_timestamp", "current_stage": "current_stage"}

func (h *Handler) searchModelVersions(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		Filter     jstring `json:"filter"`
		MaxResults jint    `json:"max_results"`
		OrderBy    jlist   `json:"order_by"`
		PageToken  jstring `json:"page_token"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	limit, err := maxResults(req.MaxResults, 10000, 200000)
	if err != nil {
		return err
	}
	conds, err := parseConds(string(req.Filter), modelVersionAttrs, map[string]string{"tags": "tags", "tag": "tags"})
	if err != nil {
		return err
	}
	versionFields := map[string]string{"name": "name", "version": "version", "run_id": "run_id",
		"creation_timestamp": "created_at", "last_updated_timestamp": "updated_at",
		"source": keyed(atelier.FieldProperty, propSource), "model_id": keyed(atelier.FieldProperty, propModelID),
		"current_stage": keyed(atelier.FieldTag, tagStage)}
	filter, err := atelierFilter(string(req.Filter), conds, func(c cond) (string, bool, string) {
		switch c.field {
		case "tags":
			return keyed(atelier.FieldTag, c.key), false, ""
		case "current_stage":
			// The stage is the tag mlflow.stage; None is its absence.
			stage := keyed(atelier.FieldTag, tagStage)
			if len(c.values) == 1 && strings.EqualFold(c.values[0], stageNone) {
				switch c.op {
				case "=", "==":
					return "", false, stage + " is null"
				case "!=", "<>":
					return "", false, stage + " is not null"
				}
			}
			return stage, false, ""
		}
		return versionFields[c.field], c.field == "creation_timestamp" || c.field == "last_updated_timestamp", ""
	})
	if err != nil {
		return err
	}
	keys, err := parseOrder(req.OrderBy, modelVersionAttrs)
	if err != nil {
		return err
	}
	sort := sortOf(keys, versionFields)
	if sort == "" {
		sort = "name"
	}
	s := h.scope(r, ws)
	page, err := h.svc.ListModelVersions(s.ctx, ws, atelier.ModelQuery{Filter: filter, Sort: sort,
		Limit: min(limit, atelier.MaxPageSize), PageToken: string(req.PageToken)})
	if err != nil {
		return err
	}
	out := make([]*ModelVersion, 0, len(page.Versions))
	for _, v := range page.Versions {
		out = append(out, s.toModelVersion(v))
	}
	resp := map[string]any{"model_versions": out}
	if page.NextPageToken != "" {
		resp["next_page_token"] = page.NextPageToken
	}
	return ok(w, resp)
}

func (h *Handler) setModelVersionTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		versionReq
		Key   jstring `json:"key"`
		Value jstring `json:"value"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	if string(req.Key) == tagStage {
		return invalidParam("tag %q holds the stage: use transition-stage", tagStage)
	}
	if _, err := h.svc.UpdateModelVersion(r.Context(), ws, ref, atelier.ModelVersionUpdate{Tags: map[string]string{string(req.Key): string(req.Value)}}); err != nil {
		return err
	}
	return ok(w, nil)
}

func (h *Handler) deleteModelVersionTag(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		versionReq
		Key jstring `json:"key"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	v, err := h.svc.FindModelVersion(r.Context(), ws, ref)
	if err != nil {
		return err
	}
	if _, has := v.Tags[string(req.Key)]; !has || string(req.Key) == tagStage {
		return atelier.Errorf(atelier.ENOTFOUND, "model version %s has no tag %q", ref, req.Key)
	}
	if _, err := h.svc.UpdateModelVersion(r.Context(), ws, ref, atelier.ModelVersionUpdate{DeleteTags: []string{string(req.Key)}}); err != nil {
		return err
	}
	return ok(w, nil)
}

// setStage moves a version to a stage (None removes the tag).
func (s *scope) setStage(ref atelier.ModelRef, stage string) (*atelier.ModelVersion, error) {
	upd := atelier.ModelVersionUpdate{Tags: map[string]string{tagStage: stage}}
	if stage == stageNone {
		v, err := s.h.svc.FindModelVersion(s.ctx, s.ws, ref)
		if err != nil {
			return nil, err
		}
		if _, has := v.Tags[tagStage]; !has {
			return v, nil
		}
		upd = atelier.ModelVersionUpdate{DeleteTags: []string{tagStage}}
	}
	return s.h.svc.UpdateModelVersion(s.ctx, s.ws, ref, upd)
}

func (h *Handler) transitionModelVersionStage(w http.ResponseWriter, r *http.Request, ws string) error {
	var req struct {
		versionReq
		Stage                   jstring `json:"stage"`
		ArchiveExistingVersions jbool   `json:"archive_existing_versions"`
	}
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	stage, err := canonicalStage(string(req.Stage))
	if err != nil {
		return err
	}
	s := h.scope(r, ws)
	v, err := s.setStage(ref, stage)
	if err != nil {
		return err
	}
	if req.ArchiveExistingVersions && (stage == "Staging" || stage == "Production") {
		others, err := s.allVersions(ref.Name)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.Version != ref.Version && o.Tags[tagStage] == stage {
				if _, err := s.setStage(o.Ref(), "Archived"); err != nil {
					return err
				}
			}
		}
	}
	return ok(w, map[string]any{"model_version": s.toModelVersion(v)})
}

func (h *Handler) getModelVersionDownloadURI(w http.ResponseWriter, r *http.Request, ws string) error {
	var req versionReq
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	ref, err := req.ref()
	if err != nil {
		return err
	}
	v, err := h.svc.FindModelVersion(r.Context(), ws, ref)
	if err != nil {
		return err
	}
	if v.IsReference() {
		// The files are where the source says, as MLflow answers for a source it does not hold.
		return ok(w, map[string]any{"artifact_uri": h.scope(r, ws).referenceDownloadURI(v)})
	}
	return ok(w, map[string]any{"artifact_uri": versionDownloadURI(v)})
}

// referenceDownloadURI is where a reference version's files are: its source, a runs:/ source
// resolved (as MLflow resolves it) to the run's artifact URI.
func (s *scope) referenceDownloadURI(v *atelier.ModelVersion) string {
	if rest, found := strings.CutPrefix(v.Source, "runs:/"); found && v.RunID != "" {
		if id, p, _ := strings.Cut(rest, "/"); id == v.RunID {
			if expID := s.experimentIDOf(v.Experiment); expID != "" {
				return strings.TrimSuffix("mlflow-artifacts:/"+expID+"/"+v.RunID+"/artifacts/"+strings.Trim(p, "/"), "/")
			}
		}
	}
	return v.Source
}
