package atelier

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A registered model is a name with numbered versions. Each version is a set of files stored by
// content (the same objects as the run outputs it came from: registering never copies), with
// metadata and lineage: the run and experiment that produced it and the data it was trained on.

// ModelFile is one file of a model version; the content is the object named by Digest.
type ModelFile struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ModelFileStream is an upload of model files, one after another, the way archive/tar reads:
// Next returns the next file's path and size (io.EOF after the last), then Read reads exactly
// that many bytes of its content. Digest is not used: the receiver hashes what it stores.
type ModelFileStream interface {
	Next() (*ModelFile, error)
	io.Reader
}

// ModelVersion is one registered version of a model.
type ModelVersion struct {
	Name             string            `json:"name"`
	Version          int64             `json:"version"`
	Workspace        string            `json:"workspace"`
	Description      string            `json:"description"`
	Tags             map[string]string `json:"tags"`
	Properties       map[string]string `json:"properties"`
	Framework        string            `json:"framework"`
	FrameworkVersion string            `json:"framework_version"`
	// RunID and Experiment are the lineage: the run the files came from (or that the caller
	// named when uploading them) and its experiment.
	RunID      string `json:"run_id"`
	Experiment string `json:"experiment"`
	// Path is where the files were registered from: a path in the run, or the base name of the
	// local file or folder.
	Path string `json:"path"`
	// Source, when set, makes the version a reference: its files live at this URI (s3://...,
	// gs://..., https://..., runs:/... to a path without files) and atelier stores none of them
	// (no files, no object held). Empty for a version of stored files.
	Source string `json:"source,omitempty"`
	// Datasets names the data sets or datastore paths the model was trained on.
	Datasets  []string `json:"datasets"`
	FileCount int      `json:"file_count"`
	Size      int64    `json:"size"`
	// Aliases are the aliases of the model that point at this version.
	Aliases   []string  `json:"aliases"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Files is filled when one version is read, not in lists.
	Files []ModelFile `json:"files,omitempty"`
}

// Ref returns the version's reference, name:version.
func (v *ModelVersion) Ref() ModelRef { return ModelRef{Name: v.Name, Version: v.Version} }

// IsReference reports whether the version only points at files stored elsewhere (Source).
func (v *ModelVersion) IsReference() bool { return v.Source != "" }

// NotStored is the refusal (EINVALID) to read, download or build from the files of a reference
// version, which atelier does not hold.
func (v *ModelVersion) NotStored() error {
	return Errorf(EINVALID, "model %s is a reference to %s; its files are not stored in atelier", v.Ref(), v.Source)
}

// Model is a model name with its versions summarized. A model comes into being with its first
// version and goes with its last, unless it was created on its own (CreateModel) or given a
// description or tags: then it stays, with or without versions, until it is deleted.
type Model struct {
	Name          string `json:"name"`
	Workspace     string `json:"workspace"`
	LatestVersion int64  `json:"latest_version"`
	VersionCount  int64  `json:"version_count"`
	// Aliases maps each alias to the version it points at.
	Aliases   map[string]int64 `json:"aliases"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
	// Description and Tags are the model's own, beside those of each version.
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// ModelCreate creates a model before (or without) any version.
type ModelCreate struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Validate checks a creation before anything of it is stored.
func (c *ModelCreate) Validate() error {
	if err := ValidateModelName(c.Name); err != nil {
		return err
	}
	return (&ModelUpdate{Description: &c.Description, Tags: c.Tags}).Validate()
}

// ModelUpdate changes a model's own description and tags; nil fields are left alone. Tags are
// set (added or changed) and DeleteTags removed, each of which must exist.
type ModelUpdate struct {
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	DeleteTags  []string          `json:"delete_tags,omitempty"`
}

// Validate checks an update before anything of it is stored.
func (u *ModelUpdate) Validate() error {
	if u.Description != nil {
		if err := ValidateModelMetadata(*u.Description, "", "", nil, nil, nil); err != nil {
			return err
		}
	}
	return ValidateTagChanges(u.Tags, u.DeleteTags)
}

// ModelEditor creates, describes and renames models, each in one transaction of the store.
type ModelEditor interface {
	// CreateModel creates a model with no version; ECONFLICT when the name is taken.
	CreateModel(ctx context.Context, workspace string, c ModelCreate) (*Model, error)
	// UpdateModel changes a model's description and tags, all or nothing.
	UpdateModel(ctx context.Context, workspace, name string, upd ModelUpdate) (*Model, error)
	// RenameModel gives a model a new name (ECONFLICT when taken), keeping its versions,
	// aliases, creation times and what uses them: references follow the versions.
	RenameModel(ctx context.Context, workspace, name, newName string) (*Model, error)
}

// Limits on models.
const (
	MaxModelNameLength   = 255
	MaxModelDescription  = 8000
	MaxModelFiles        = 100000
	MaxModelDatasets     = 1000
	MaxFrameworkLength   = 256
	MaxDatasetNameLength = 2048
)

var (
	modelNamePattern  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?$`)
	modelAliasPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,127}$`)
)

// ValidateModelName checks a model name: 1-255 letters, digits, '.', '_', '-' or spaces (as
// MLflow allows), starting with a letter or digit and not ending with a space, so it is a file
// name, escapes plainly in a URL path and never holds ':', '@' or '/'.
func ValidateModelName(name string) error {
	if !modelNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid model name %q: use 1-%d letters, digits, '.', '_', '-' or spaces, starting with a letter or digit and not ending with a space", name, MaxModelNameLength)
	}
	return nil
}

// ValidateModelAlias checks an alias: 1-128 letters, digits, '.', '_' or '-' starting with a
// letter (so it never reads as a version number); "latest" is reserved for the newest version.
func ValidateModelAlias(alias string) error {
	if !modelAliasPattern.MatchString(alias) {
		return Errorf(EINVALID, "invalid model alias %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter", alias)
	}
	if alias == "latest" {
		return Errorf(EINVALID, "invalid model alias %q: it is reserved for the newest version", alias)
	}
	return nil
}

// ModelRef names a model version: Name:Version, Name@Alias, or Name alone for the latest version.
type ModelRef struct {
	Name    string
	Version int64  // 0 with an empty Alias means the latest version
	Alias   string // set instead of Version
}

// ParseModelRef parses "name", "name:3", "name:latest" or "name@alias".
func ParseModelRef(s string) (ModelRef, error) {
	if name, alias, ok := strings.Cut(s, "@"); ok {
		ref := ModelRef{Name: name, Alias: alias}
		if alias == "" {
			return ref, Errorf(EINVALID, "invalid model reference %q: give an alias after '@'", s)
		}
		return ref, ref.Validate()
	}
	name, ver, ok := strings.Cut(s, ":")
	if !ok {
		ref := ModelRef{Name: name}
		return ref, ref.Validate()
	}
	if ver != "latest" && (ver == "" || ver[0] < '0' || ver[0] > '9') {
		return ModelRef{Name: name}, Errorf(EINVALID, "invalid model reference %q: after ':' give a version number or \"latest\" (name@alias for an alias)", s)
	}
	return ParseModelSelector(name, ver)
}

// ParseModelSelector parses what follows a model name in a URL: a version number, "latest" or
// an alias.
func ParseModelSelector(name, sel string) (ModelRef, error) {
	ref := ModelRef{Name: name}
	switch {
	case sel == "latest":
	case sel != "" && sel[0] >= '0' && sel[0] <= '9':
		v, err := strconv.ParseInt(sel, 10, 64)
		if err != nil || v < 1 {
			return ref, Errorf(EINVALID, "invalid model version %q: want a positive integer, \"latest\" or an alias", sel)
		}
		ref.Version = v
	default:
		ref.Alias = sel
	}
	return ref, ref.Validate()
}

// Validate checks the reference's parts.
func (r ModelRef) Validate() error {
	if err := ValidateModelName(r.Name); err != nil {
		return err
	}
	if r.Version < 0 {
		return Errorf(EINVALID, "invalid model version %d: want a positive integer", r.Version)
	}
	if r.Alias != "" {
		if r.Version != 0 {
			return Errorf(EINVALID, "model reference %s:%d@%s: give a version or an alias, not both", r.Name, r.Version, r.Alias)
		}
		return ValidateModelAlias(r.Alias)
	}
	return nil
}

// Latest reports whether the reference means the newest version.
func (r ModelRef) Latest() bool { return r.Version == 0 && r.Alias == "" }

// Selector is the part after the name in a URL: the version, the alias or "latest".
func (r ModelRef) Selector() string {
	switch {
	case r.Alias != "":
		return r.Alias
	case r.Version > 0:
		return strconv.FormatInt(r.Version, 10)
	}
	return "latest"
}

func (r ModelRef) String() string {
	switch {
	case r.Alias != "":
		return r.Name + "@" + r.Alias
	case r.Version > 0:
		return r.Name + ":" + strconv.FormatInt(r.Version, 10)
	}
	return r.Name
}

// ModelRegister is the request to register a new version of a model, from a run's files
// (RunID and Path), from uploaded objects (Files, with RunID optional for lineage), or as a
// reference to files stored elsewhere (Source, with RunID optional for lineage).
type ModelRegister struct {
	Name             string            `json:"name"`
	RunID            string            `json:"run_id,omitempty"`
	Path             string            `json:"path,omitempty"`
	Files            []ModelFile       `json:"files,omitempty"`
	Source           string            `json:"source,omitempty"`
	Description      string            `json:"description,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	Properties       map[string]string `json:"properties,omitempty"`
	Framework        string            `json:"framework,omitempty"`
	FrameworkVersion string            `json:"framework_version,omitempty"`
	Datasets         []string          `json:"datasets,omitempty"`
}

// Validate checks the request. Files are normalized (sorted by path).
func (m *ModelRegister) Validate() error {
	if err := ValidateModelName(m.Name); err != nil {
		return err
	}
	switch {
	case m.Source != "" && (m.Path != "" || len(m.Files) > 0):
		return Errorf(EINVALID, "a reference (source %q) holds no files: give a source, a run path or uploaded files, only one", m.Source)
	case m.Source != "":
		if err := ValidateModelSource(m.Source); err != nil {
			return err
		}
	case m.Path != "" && len(m.Files) > 0:
		return Errorf(EINVALID, "give either a run path or uploaded files, not both")
	case m.Path != "" && m.RunID == "":
		return Errorf(EINVALID, "a path names files of a run: give the run too")
	case m.Path == "" && len(m.Files) == 0:
		return Errorf(EINVALID, "a model needs files: give a run and a path in it, upload files, or give the source URI of files stored elsewhere")
	}
	if m.Path != "" {
		if err := ValidatePath(m.Path); err != nil {
			return err
		}
	}
	if err := ValidateModelFiles(m.Files); err != nil {
		return err
	}
	return ValidateModelMetadata(m.Description, m.Framework, m.FrameworkVersion, m.Datasets, m.Tags, m.Properties)
}

// MaxModelSourceLength bounds the source URI of a reference version.
const MaxModelSourceLength = 4096

var modelSourceScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// ValidateModelSource checks the source URI of a reference version: a URI with a scheme
// (s3://bucket/key, gs://..., dbfs:/..., https://..., runs:/RUN/PATH), not a local path or a
// file: URI (the server's disk is no place to point at), with no ".." segment.
func ValidateModelSource(source string) error {
	if source == "" || len(source) > MaxModelSourceLength || !utf8.ValidString(source) {
		return Errorf(EINVALID, "a model source must be a URI of 1-%d bytes of UTF-8", MaxModelSourceLength)
	}
	for _, r := range source {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "model source %q holds a control character", source)
		}
	}
	scheme := modelSourceScheme.FindString(source)
	if scheme == "" || len(scheme) == 2 { // "C:" is a Windows drive, not a scheme
		return Errorf(EINVALID, "model source %q is not a URI: a reference points at files stored elsewhere (s3://, gs://, https://...), not at a local path", source)
	}
	if strings.EqualFold(scheme, "file:") {
		return Errorf(EINVALID, "model source %q is a file of the server's disk: upload the files instead", source)
	}
	rest := source[len(scheme):]
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == ".." {
			return Errorf(EINVALID, "model source %q holds a '..' segment", source)
		}
	}
	return nil
}

// ValidateModelMetadata checks the descriptive fields of a version.
func ValidateModelMetadata(description, framework, frameworkVersion string, datasets []string, tags, props map[string]string) error {
	if !utf8.ValidString(description) {
		return invalidUTF8("the model's description")
	}
	if len(description) > MaxModelDescription {
		return Errorf(EINVALID, "model description must be valid UTF-8 of at most %d bytes", MaxModelDescription)
	}
	for what, s := range map[string]string{"framework": framework, "framework version": frameworkVersion} {
		if len(s) > MaxFrameworkLength || !utf8.ValidString(s) {
			return Errorf(EINVALID, "model %s must be valid UTF-8 of at most %d bytes", what, MaxFrameworkLength)
		}
	}
	if len(datasets) > MaxModelDatasets {
		return Errorf(EINVALID, "too many data sets: %d (limit %d)", len(datasets), MaxModelDatasets)
	}
	for _, d := range datasets {
		if d == "" || len(d) > MaxDatasetNameLength || !utf8.ValidString(d) {
			return Errorf(EINVALID, "invalid data set %q: use 1-%d bytes of UTF-8", d, MaxDatasetNameLength)
		}
	}
	if err := ValidateKeyValues("tag", tags, MaxTagValue); err != nil {
		return err
	}
	return ValidateKeyValues("property", props, MaxTagValue)
}

// ValidateModelFiles checks a manifest and sorts it by path.
func ValidateModelFiles(files []ModelFile) error {
	if len(files) > MaxModelFiles {
		return Errorf(EINVALID, "a model may hold at most %d files, not %d", MaxModelFiles, len(files))
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for i, f := range files {
		if err := ValidatePath(f.Path); err != nil {
			return err
		}
		if err := ValidateDigest(f.Digest); err != nil {
			return Errorf(EINVALID, "model file %q: %s", f.Path, ErrorMessage(err))
		}
		if f.Size < 0 {
			return Errorf(EINVALID, "model file %q: negative size", f.Path)
		}
		if i > 0 && files[i-1].Path == f.Path {
			return Errorf(EINVALID, "model file %q appears twice", f.Path)
		}
	}
	// A file and a directory of the same name could not both be extracted.
	paths := make(map[string]bool, len(files))
	for _, f := range files {
		paths[f.Path] = true
	}
	for _, f := range files {
		for dir := f.Path; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			if dir = dir[:i]; paths[dir] {
				return Errorf(EINVALID, "model file %q is also the directory of %q", dir, f.Path)
			}
		}
	}
	return nil
}

// ModelVersionUpdate changes the mutable parts of a version: its description and tags, and adds
// properties (which, once set, never change).
type ModelVersionUpdate struct {
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	DeleteTags  []string          `json:"delete_tags,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
}

// Validate checks the update.
func (u *ModelVersionUpdate) Validate() error {
	desc := ""
	if u.Description != nil {
		desc = *u.Description
	}
	if err := ValidateModelMetadata(desc, "", "", nil, u.Tags, u.Properties); err != nil {
		return err
	}
	for _, k := range u.DeleteTags {
		if err := ValidateKey("tag", k); err != nil {
			return err
		}
		if _, ok := u.Tags[k]; ok {
			return Errorf(EINVALID, "tag %q is both set and deleted", k)
		}
	}
	return nil
}

// ModelQuery selects model versions (or models, for ListModels: only NameContains and paging
// apply). Filters combine with AND.
type ModelQuery struct {
	// Name keeps the versions of one model.
	Name string `json:"name,omitempty"`
	// NameContains keeps models whose name contains it, ignoring case.
	NameContains string `json:"name_contains,omitempty"`
	// Tags are "key" (the tag is set) or "key=value".
	Tags []string `json:"tags,omitempty"`
	// Properties are "key" or "key=value".
	Properties []string `json:"properties,omitempty"`
	// RunID keeps the versions registered from a run.
	RunID string `json:"run_id,omitempty"`
	// OrderBy is "version", "created_at" or "name", then optionally asc or desc; the default is
	// created_at desc (the newest first).
	OrderBy string `json:"order_by,omitempty"`
	// Filter and Sort are the query language of runs (filter.go), evaluated by the store: over
	// ModelAttributes and tags.K for models, ModelVersionAttributes, tags.K and properties.K for
	// versions. Sort, when set, replaces OrderBy (ties go by name, then version desc). For
	// in-process callers (the MLflow API); the REST API does not carry them yet.
	Filter    string `json:"-"`
	Sort      string `json:"-"`
	Limit     int    `json:"limit,omitempty"`
	PageToken string `json:"page_token,omitempty"`
}

// The attributes of model and version searches (ModelQuery.Filter and Sort).
var (
	ModelAttributes        = []string{"name", "created_at", "updated_at"}
	ModelVersionAttributes = []string{"name", "version", "run_id", "experiment", "created_at", "updated_at"}
)

// ModelOrder is a parsed ModelQuery.OrderBy.
type ModelOrder struct {
	Field string // version, created_at or name
	Desc  bool
}

// ParseModelOrder parses an order_by of a model query.
func ParseModelOrder(s string) (ModelOrder, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ModelOrder{Field: "created_at", Desc: true}, nil
	}
	o := ModelOrder{Field: f[0]}
	if o.Field != "version" && o.Field != "created_at" && o.Field != "name" || len(f) > 2 {
		return o, Errorf(EINVALID, "invalid order_by %q: use version, created_at or name, optionally followed by asc or desc", s)
	}
	if len(f) == 2 {
		switch strings.ToLower(f[1]) {
		case "asc":
		case "desc":
			o.Desc = true
		default:
			return o, Errorf(EINVALID, "invalid order_by %q: use version, created_at or name, optionally followed by asc or desc", s)
		}
	}
	return o, nil
}

// KeyFilter is a parsed "key" or "key=value" filter.
type KeyFilter struct {
	Key      string
	Value    string
	HasValue bool
}

// ParseKeyFilters parses "key" and "key=value" filters of tags or properties.
func ParseKeyFilters(kind string, list []string) ([]KeyFilter, error) {
	if len(list) > 50 {
		return nil, Errorf(EINVALID, "too many %s filters: %d (limit 50)", kind, len(list))
	}
	out := make([]KeyFilter, len(list))
	for i, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if err := ValidateKey(kind, k); err != nil {
			return nil, err
		}
		out[i] = KeyFilter{Key: k, Value: v, HasValue: ok}
	}
	return out, nil
}

// Validate checks the query.
func (q *ModelQuery) Validate() error {
	if q.Name != "" {
		if err := ValidateModelName(q.Name); err != nil {
			return err
		}
	}
	if len(q.NameContains) > MaxModelNameLength {
		return Errorf(EINVALID, "name_contains is longer than %d characters", MaxModelNameLength)
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return Errorf(EINVALID, "limit %d is out of range (0 to %d)", q.Limit, MaxPageSize)
	}
	if _, err := ParseModelOrder(q.OrderBy); err != nil {
		return err
	}
	if _, err := ParseKeyFilters("tag", q.Tags); err != nil {
		return err
	}
	_, err := ParseKeyFilters("property", q.Properties)
	return err
}

// ModelPage is one page of models; NextPageToken is empty on the last page.
type ModelPage struct {
	Models        []*Model `json:"models"`
	NextPageToken string   `json:"next_page_token"`
}

// ModelVersionPage is one page of model versions.
type ModelVersionPage struct {
	Versions      []*ModelVersion `json:"versions"`
	NextPageToken string          `json:"next_page_token"`
}

// ModelReference records that something (an image, a deployed service) uses a model version;
// while one exists the version cannot be deleted.
type ModelReference struct {
	Kind    string `json:"kind"` // "image", "service", ...
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

// Validate checks a reference.
func (r ModelReference) Validate() error {
	if err := ValidateName("reference kind", r.Kind); err != nil {
		return err
	}
	if r.ID == "" || len(r.ID) > 256 || !utf8.ValidString(r.ID) {
		return Errorf(EINVALID, "invalid reference id %q: use 1-256 bytes of UTF-8", r.ID)
	}
	if r.Version < 1 {
		return Errorf(EINVALID, "a reference names a model version, not %d", r.Version)
	}
	return ValidateModelName(r.Name)
}

// ModelInUseError is the ECONFLICT error of deleting a model version something still uses; it
// lists the references so the caller knows what to remove first.
type ModelInUseError struct {
	Err        *Error
	References []ModelReference
}

// NewModelInUseError returns the error of deleting model (a name or name:version) while refs
// (not empty) use it.
func NewModelInUseError(model string, refs []ModelReference) *ModelInUseError {
	parts := make([]string, 0, len(refs))
	for i, r := range refs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(refs)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s (uses %s:%d)", r.Kind, r.ID, r.Name, r.Version))
	}
	return &ModelInUseError{References: refs,
		Err: Errorf(ECONFLICT, "model %s is in use by %s: delete those first", model, strings.Join(parts, ", "))}
}

func (e *ModelInUseError) Error() string { return e.Err.Error() }

// Unwrap gives the *Error, so ErrorCode and ErrorMessage see ECONFLICT and the message.
func (e *ModelInUseError) Unwrap() error { return e.Err }

// ModelStore is the part of the metadata store that keeps the model registry. Versions are
// numbered by the store, atomically: concurrent registrations of one name get distinct,
// consecutive versions. Deleted version numbers are never reused while the model exists.
type ModelStore interface {
	ModelEditor
	// CreateModelVersion assigns the next version of v.Name and stores v with its files (whose
	// objects the workspace then holds). A run named by v.RunID must exist; v.Experiment is
	// taken from it.
	CreateModelVersion(ctx context.Context, workspace string, v *ModelVersion) error
	FindModel(ctx context.Context, workspace, name string) (*Model, error)
	ListModels(ctx context.Context, workspace string, q ModelQuery) (*ModelPage, error)
	// FindModelVersion resolves ref and returns the version with its files.
	FindModelVersion(ctx context.Context, workspace string, ref ModelRef) (*ModelVersion, error)
	ListModelVersions(ctx context.Context, workspace string, q ModelQuery) (*ModelVersionPage, error)
	// UpdateModelVersion refuses (ECONFLICT) to change a property already set to another value.
	UpdateModelVersion(ctx context.Context, workspace string, ref ModelRef, upd ModelVersionUpdate) (*ModelVersion, error)
	// SetModelAlias points alias at a version (ENOTFOUND if it does not exist), moving it.
	SetModelAlias(ctx context.Context, workspace, name, alias string, version int64) (*ModelVersion, error)
	DeleteModelAlias(ctx context.Context, workspace, name, alias string) error
	// DeleteModelVersion and DeleteModel refuse with a *ModelInUseError while a reference exists.
	DeleteModelVersion(ctx context.Context, workspace string, ref ModelRef) error
	DeleteModel(ctx context.Context, workspace, name string) error
	// AddModelReference records that r.Kind r.ID uses a version (idempotent);
	// RemoveModelReference forgets it.
	AddModelReference(ctx context.Context, workspace string, r ModelReference) error
	RemoveModelReference(ctx context.Context, workspace string, r ModelReference) error
	// ListModelReferences lists the references to a version, or to every version of the model
	// when ref is the bare name.
	ListModelReferences(ctx context.Context, workspace string, ref ModelRef) ([]ModelReference, error)
}

// ModelService is the model registry as users see it.
type ModelService interface {
	// UploadModelFiles stores every file of the stream by its content, hashed while it is
	// stored (one pass; no digest is taken from the sender), and returns the manifest for
	// RegisterModel's Files, sorted by path. The workspace then holds the objects.
	UploadModelFiles(ctx context.Context, workspace string, files ModelFileStream) ([]ModelFile, error)
	RegisterModel(ctx context.Context, workspace string, req ModelRegister) (*ModelVersion, error)
	FindModel(ctx context.Context, workspace, name string) (*Model, error)
	ListModels(ctx context.Context, workspace string, q ModelQuery) (*ModelPage, error)
	FindModelVersion(ctx context.Context, workspace string, ref ModelRef) (*ModelVersion, error)
	ListModelVersions(ctx context.Context, workspace string, q ModelQuery) (*ModelVersionPage, error)
	UpdateModelVersion(ctx context.Context, workspace string, ref ModelRef, upd ModelVersionUpdate) (*ModelVersion, error)
	SetModelAlias(ctx context.Context, workspace, name, alias string, version int64) (*ModelVersion, error)
	DeleteModelAlias(ctx context.Context, workspace, name, alias string) error
	DeleteModelVersion(ctx context.Context, workspace string, ref ModelRef) error
	DeleteModel(ctx context.Context, workspace, name string) error
	ListModelReferences(ctx context.Context, workspace string, ref ModelRef) ([]ModelReference, error)
	// OpenModelFile streams one file of a version.
	OpenModelFile(ctx context.Context, workspace string, ref ModelRef, path string) (*ModelFile, io.ReadCloser, error)
	// WriteModelZip streams a version's files as a zip.
	WriteModelZip(ctx context.Context, workspace string, ref ModelRef, w io.Writer) error
}
