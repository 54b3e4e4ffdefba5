// Package mlflow serves MLflow's REST API (tracking, the mlflow-artifacts proxy) on atelier's
// domain services, so the unmodified mlflow Python client logs to atelier: a run created through
// MLflow is an atelier run with the same metrics, params, tags and output files, and the other
// way round. MLflow 3's logged models are atelier's logged models (loggedmodels.go), and
// MLflow's model registry is atelier's (registry.go). The wire shapes follow MLflow's protos
// (service.proto, mlflow_artifacts.proto) and its server: snake_case fields, enums as names,
// {"error_code","message"} errors.
//
// Workspaces: the default workspace answers at the server root (tracking URI http://HOST:PORT),
// another one under /workspaces/{ws}/mlflow (tracking URI http://HOST:PORT/workspaces/{ws}/mlflow).
package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// Services is what the MLflow API is translated onto; *service.Service implements it.
type Services interface {
	atelier.WorkspaceService
	atelier.ExperimentService
	atelier.ExperimentCreator
	atelier.ExperimentSearcher
	atelier.RunService
	atelier.RunDeleter
	atelier.MetricService
	atelier.FileService
	atelier.ModelService
	atelier.ModelEditor
	atelier.LoggedModelService
	// LogBatch stores a run's params, tags and metric points in one transaction.
	LogBatch(ctx context.Context, workspace, runID string, b *atelier.RunBatch) error
}

// Handler serves the MLflow REST API.
type Handler struct {
	svc    Services
	auth   atelier.AuthService
	log    *slog.Logger
	routes map[string]handlerFunc

	// MaxJSONBody bounds JSON request bodies.
	MaxJSONBody int64
	// Storage, when set, is told how writes end (see edge.StorageCondition).
	Storage atelier.StorageMonitor
	// Now is the time of metrics logged without a timestamp (the server's clock).
	Now atelier.Clock
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, ws string) error

// NewHandler returns the MLflow API handler. Mount it for /api/2.0/mlflow, /api/3.0/mlflow,
// /ajax-api/2.0/mlflow, /api/2.0/mlflow-artifacts and /workspaces/{ws}/mlflow/.
func NewHandler(svc Services, auth atelier.AuthService, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{svc: svc, auth: auth, log: log, MaxJSONBody: 64 << 20, Now: time.Now}
	h.routes = map[string]handlerFunc{
		"POST experiments/create":                h.createExperiment,
		"GET experiments/get":                    h.getExperiment,
		"GET experiments/get-by-name":            h.getExperimentByName,
		"POST experiments/search":                h.searchExperiments,
		"GET experiments/search":                 h.searchExperiments,
		"GET experiments/list":                   h.searchExperiments,
		"POST experiments/update":                h.updateExperiment,
		"POST experiments/delete":                h.deleteExperiment,
		"POST experiments/restore":               h.restoreExperiment,
		"POST experiments/set-experiment-tag":    h.setExperimentTag,
		"POST experiments/delete-experiment-tag": h.deleteExperimentTag,

		"POST runs/create":        h.createRun,
		"GET runs/get":            h.getRun,
		"POST runs/update":        h.updateRun,
		"POST runs/delete":        h.deleteRun,
		"POST runs/restore":       h.restoreRun,
		"POST runs/search":        h.searchRuns,
		"POST runs/log-metric":    h.logMetric,
		"POST runs/log-parameter": h.logParam,
		"POST runs/set-tag":       h.setTag,
		"POST runs/delete-tag":    h.deleteTag,
		"POST runs/log-batch":     h.logBatch,
		"POST runs/log-inputs":    h.logInputs,
		"POST runs/log-outputs":   h.logOutputs,
		"POST runs/outputs":       h.logOutputs,
		"POST runs/log-model":     h.logModel,

		"GET metrics/get-history":               h.getMetricHistory,
		"GET metrics/get-history-bulk-interval": h.getMetricHistoryBulkInterval,

		"GET artifacts/list": h.listRunArtifacts,

		"POST logged-models":        h.createLoggedModel,
		"POST logged-models/search": h.searchLoggedModels,

		"POST registered-models/create":              h.createRegisteredModel,
		"GET registered-models/get":                  h.getRegisteredModel,
		"POST registered-models/rename":              h.renameRegisteredModel,
		"PATCH registered-models/update":             h.updateRegisteredModel,
		"DELETE registered-models/delete":            h.deleteRegisteredModel,
		"GET registered-models/search":               h.searchRegisteredModels,
		"POST registered-models/get-latest-versions": h.getLatestVersions,
		"GET registered-models/get-latest-versions":  h.getLatestVersions,
		"POST registered-models/set-tag":             h.setRegisteredModelTag,
		"DELETE registered-models/delete-tag":        h.deleteRegisteredModelTag,
		"POST registered-models/alias":               h.setRegisteredModelAlias,
		"DELETE registered-models/alias":             h.deleteRegisteredModelAlias,
		"GET registered-models/alias":                h.getModelVersionByAlias,

		"POST model-versions/create":           h.createModelVersion,
		"GET model-versions/get":               h.getModelVersion,
		"PATCH model-versions/update":          h.updateModelVersion,
		"DELETE model-versions/delete":         h.deleteModelVersion,
		"GET model-versions/search":            h.searchModelVersions,
		"POST model-versions/set-tag":          h.setModelVersionTag,
		"DELETE model-versions/delete-tag":     h.deleteModelVersionTag,
		"POST model-versions/transition-stage": h.transitionModelVersionStage,
		"GET model-versions/get-download-uri":  h.getModelVersionDownloadURI,
	}
	return h
}

// ServeHTTP authenticates the request, finds the workspace and the endpoint, and answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, rest := atelier.DefaultWorkspace, r.URL.Path
	if after, ok := strings.CutPrefix(rest, "/workspaces/"); ok {
		name, tail, _ := strings.Cut(after, "/")
		tail = "/" + tail
		if !strings.HasPrefix(tail, "/mlflow/") {
			h.writeError(w, r, endpointNotFound(r))
			return
		}
		ws, rest = name, strings.TrimPrefix(tail, "/mlflow")
	}
	var endpoint string
	artifacts := false
	for _, p := range []string{"/api/2.0/mlflow/", "/api/3.0/mlflow/", "/ajax-api/2.0/mlflow/", "/ajax-api/3.0/mlflow/"} {
		if e, ok := strings.CutPrefix(rest, p); ok {
			endpoint = e
		}
	}
	for _, p := range []string{"/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/"} {
		if e, ok := strings.CutPrefix(rest, p); ok {
			endpoint, artifacts = e, true
		}
	}
	var fn handlerFunc
	route := r.Method + " " + strings.TrimSuffix(endpoint, "/")
	switch {
	case artifacts:
		fn = h.artifactRoute(r.Method, endpoint)
	case endpoint != "":
		fn = h.routes[route]
		if fn == nil && r.Method == http.MethodHead {
			fn = h.routes["GET "+endpoint]
		}
		if fn == nil {
			fn = h.loggedModelRoute(r.Method, endpoint)
		}
	}
	if endpoint == "server-info" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !artifacts {
		// Public, as MLflow's: clients probe it for capabilities before they authenticate.
		h.serverInfo(w)
		return
	}
	if fn == nil {
		h.writeError(w, r, endpointNotFound(r))
		return
	}
	// Writes through MLflow are audited like those through atelier's own API, in the
	// transaction of their first write.
	write := edge.IsWrite(r.Method) && (artifacts || !readPOSTs[endpoint])
	d := h.door()
	d.Serve(w, r, edge.Call{Write: write, Workspace: ws}, func(w http.ResponseWriter, r *http.Request) error {
		if p := atelier.PrincipalFromContext(r.Context()); p != nil && p.Kind == atelier.PrincipalRun && !artifacts && notForRuns[route] {
			return refuseRun(route)(w, r, ws)
		}
		return fn(w, r, ws)
	})
}

// door is the handler's edge. It is made at each request because the fields it reads (Storage)
// are set after NewHandler.
func (h *Handler) door() edge.Door {
	a, _ := h.svc.(edge.Auditor)
	return edge.Door{Auth: edge.Authenticator{Auth: h.auth}, Errors: h.errorWriter(), Audit: a, Storage: h.Storage}
}

func (h *Handler) errorWriter() edge.Errors {
	return edge.Errors{Log: h.log, Map: func(err error) (int, any) { return mapError(err) }}
}

// notForRuns are the endpoints a run's token may not call. A run's token changes only its run
// and the runs it creates (the service checks each of those writes); these change what every
// reader of the workspace sees: an experiment, a registered model, a version. Refused here,
// before anything is written. In the registry a run's token creates registered models and
// registers versions from its runs' files (registered-models/create, model-versions/create).
var notForRuns = map[string]bool{
	"POST experiments/create": true, "POST experiments/update": true, "POST experiments/delete": true,
	"POST experiments/restore": true, "POST experiments/set-experiment-tag": true,
	"POST experiments/delete-experiment-tag": true,

	"POST registered-models/rename": true, "PATCH registered-models/update": true,
	"DELETE registered-models/delete": true, "POST registered-models/set-tag": true,
	"DELETE registered-models/delete-tag": true, "POST registered-models/alias": true,
	"DELETE registered-models/alias": true,

	"PATCH model-versions/update": true, "DELETE model-versions/delete": true,
	"POST model-versions/set-tag": true, "DELETE model-versions/delete-tag": true,
	"POST model-versions/transition-stage": true,
}

// refuseRun answers a run's token that called an endpoint of notForRuns.
func refuseRun(route string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, ws string) error {
		return atelier.Errorf(atelier.EFORBIDDEN, "%s changes what every reader of workspace %q sees: a run's token may change only its run "+
			"and that run's descendants (in the registry it may create registered models and register versions from its runs' files); "+
			"a member of the workspace changes the rest", route, ws)
	}
}

// readPOSTs are the endpoints MLflow reads with a POST (their filters do not fit a query
// string): they change nothing, so they are not audited (and an audit write would cost a
// search a commit).
var readPOSTs = map[string]bool{"runs/search": true, "experiments/search": true, "logged-models/search": true,
	"registered-models/get-latest-versions": true}

// apiError is an error with MLflow's error code, for the cases atelier's codes do not say.
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Msg }

func invalidParam(format string, args ...any) error {
	return atelier.Errorf(atelier.EINVALID, format, args...)
}

func endpointNotFound(r *http.Request) error {
	return &apiError{Status: http.StatusNotFound, Code: "ENDPOINT_NOT_FOUND", Msg: "no MLflow endpoint " + r.Method + " " + r.URL.Path}
}

// errorCodes maps atelier's error codes to MLflow's error codes and HTTP statuses. The MLflow
// client retries 408, 429, 500, 502, 503 and 504 for minutes (_TRANSIENT_FAILURE_RESPONSE_CODES
// in mlflow/utils/request_utils.py), so nothing a caller got wrong may answer those, nor a full
// disk, which retrying does not free: 507 is not retried, and RESOURCE_EXHAUSTED is a code of
// MLflow's ErrorCode enum, so the client raises it with the message.
var errorCodes = map[string]struct {
	status int
	code   string
}{
	atelier.EINVALID:      {http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
	atelier.ECONFLICT:     {http.StatusBadRequest, "INVALID_PARAMETER_VALUE"},
	atelier.ENOTFOUND:     {http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST"},
	atelier.EUNAUTHORIZED: {http.StatusUnauthorized, "UNAUTHENTICATED"},
	atelier.EFORBIDDEN:    {http.StatusForbidden, "PERMISSION_DENIED"},
	atelier.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "INVALID_PARAMETER_VALUE"},
	atelier.EUNAVAILABLE:  {http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE"},
	atelier.ENOSPACE:      {http.StatusInsufficientStorage, "RESOURCE_EXHAUSTED"},
	atelier.EINTERNAL:     {http.StatusInternalServerError, "INTERNAL_ERROR"},
}

// errorBody is MLflow's error response.
type errorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// mapError returns the HTTP status and the body for err.
func mapError(err error) (int, errorBody) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, errorBody{ae.Code, ae.Msg}
	}
	code := atelier.ErrorCode(err)
	m, ok := errorCodes[code]
	if !ok {
		m = errorCodes[atelier.EINTERNAL]
	}
	return m.status, errorBody{m.code, atelier.ErrorMessage(err)}
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	h.errorWriter().Write(w, r, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error { return edge.WriteJSON(w, status, v) }

func ok(w http.ResponseWriter, v any) error {
	if v == nil {
		v = struct{}{}
	}
	return writeJSON(w, http.StatusOK, v)
}

// decode reads a request into v: GET from the query string, as MLflow's client sends it, others
// from the JSON body (a DELETE without a body from the query string). Unknown fields are ignored, as MLflow's server does,
// so newer clients that send more keep working.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return decodeQuery(r.URL.Query(), v)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxJSONBody))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if r.Method == http.MethodDelete {
			return decodeQuery(r.URL.Query(), v)
		}
		return nil
	}
	if err := atelier.ValidateJSONText(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// decodeQuery maps query parameters onto v's JSON fields: a parameter given several times (or
// a list field) becomes a list; scalar types here accept strings.
func decodeQuery(q url.Values, v any) error {
	lists := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Type.Kind() == reflect.Slice {
			lists[name] = true
		}
	}
	m := map[string]any{}
	for k, vs := range q {
		if lists[k] || len(vs) > 1 {
			m[k] = vs
		} else {
			m[k] = vs[0]
		}
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, v); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var aerr *atelier.Error
	var typ *json.UnmarshalTypeError
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &aerr):
		return aerr
	case errors.As(err, &typ):
		field := typ.Field // embedded request parts are named in the path: keep the wire name
		if i := strings.LastIndexByte(field, '.'); i >= 0 && strings.ContainsAny(field[:i], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			field = field[i+1:]
		}
		return invalidParam("Invalid value %s for parameter '%s' supplied: it must be %s", typ.Value, field, wireType(typ.Type))
	case errors.As(err, &syntax):
		return invalidParam("malformed JSON request body at byte %d: %s", syntax.Offset, syntax.Error())
	}
	return invalidParam("malformed request: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// wireType names a field's type as the protocol has it, not as Go does.
func wireType(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Name() {
	case "jint":
		return "an integer"
	case "jfloat":
		return "a number"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return "of another type"
}

// Handles reports whether a request path belongs to the MLflow API.
func Handles(path string) bool {
	if rest, ok := strings.CutPrefix(path, "/workspaces/"); ok {
		_, tail, _ := strings.Cut(rest, "/")
		return strings.HasPrefix(tail, "mlflow/")
	}
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// prefixes are the URL path prefixes the handler answers.
var prefixes = []string{"/api/2.0/mlflow/", "/api/3.0/mlflow/", "/api/2.0/mlflow-artifacts/",
	"/ajax-api/2.0/mlflow/", "/ajax-api/3.0/mlflow/", "/ajax-api/2.0/mlflow-artifacts/"}

// serverInfo tells clients what the server supports: no multipart uploads or downloads (the
// client then sends artifacts with single PUTs), no MLflow workspaces (atelier's workspaces are
// chosen by the tracking URI).
func (h *Handler) serverInfo(w http.ResponseWriter) {
	_ = ok(w, map[string]any{"store_type": nil, "workspaces_enabled": false, "trace_archival_enabled": false,
		"multipart_uploads_enabled": false, "multipart_downloads_enabled": false,
		"presigned_upload_run_id_supported": false, "presigned_upload_model_id_supported": false})
}
