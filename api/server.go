// Package api is the REST API: the handlers that serve the domain services over JSON, and the
// Go client that implements the same service interfaces over HTTP.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// Services is what the handlers serve; *service.Service implements it, and so does *Client.
type Services interface {
	atelier.WorkspaceService
	atelier.ExperimentService
	atelier.RunService
	atelier.MetricService
	atelier.FileService
	atelier.SnapshotService
	atelier.ActivityService
	atelier.EventService
	atelier.ModelService
	atelier.ComputeService
	atelier.ComputeTargetService
	atelier.UserService
	atelier.TokenService
	atelier.MemberService
	atelier.AuditService
	atelier.DatastoreService
	atelier.SecretService
	atelier.ImageService
	atelier.BaseImageService
	atelier.WebServiceService
	atelier.RunRenamer
	atelier.DatasetService
	atelier.EnvironmentService
	UploadObject(ctx context.Context, workspace string, r io.Reader, digest string) (atelier.Object, error)
}

// Server holds the handlers.
type Server struct {
	svc  Services
	auth atelier.AuthService
	log  *slog.Logger
	mux  *http.ServeMux
	// bodies are the JSON request bodies of the OpenAPI document, by route.
	bodies *bodySchemas

	// MaxJSONBody bounds JSON request bodies.
	MaxJSONBody int64
	// CookieSecure says when the session cookie is Secure ("" is CookieSecureAuto).
	CookieSecure CookieSecure
	// audit and sessions are the optional parts of the service the server uses when it has
	// them (the service does; the Go client does not).
	audit    auditRecorder
	sessions sessionService
	// passing bounds the requests copying passed files at once: a copy holds a thread while
	// the kernel works, and a file on a stuck mount could hold it long.
	passing chan struct{}
	// LocalSocket is the path of the server's Unix socket, if it listens on one: the health
	// check tells it to clients on the server's own machine (see Health).
	LocalSocket string
	// Version is the server's version, told by the health check.
	Version string
	// Storage, when set, is told how writes end and tells the health check whether the
	// server's storage is full.
	Storage *edge.StorageCondition
}

// Route is one entry of the route table; the OpenAPI document and the authorization matrix
// test are checked against it.
type Route struct {
	Pattern string // "METHOD /path"
	Public  bool   // served without a token
	// Policy says who may call the route (one of the Policy constants). The service layer
	// decides; the policy documents its decision and the authorization test checks the two
	// agree, so a route without a policy fails that test.
	Policy  string
	handler func(w http.ResponseWriter, r *http.Request) error
}

// Route policies: who may call a route. "The run the request names" is the {run} (or
// {activity}) of the path, the run_id of the events stream, the run whose code {snapshot} is,
// the experiment of that run for {experiment}, and the parent_id or run_id of a body that
// creates a child run or registers a model from a run.
const (
	PolicyPublic        = "public"        // anyone, without a token
	PolicyAuthenticated = "authenticated" // any valid token, a run's included
	PolicyUser          = "user"          // a user or an administrator, for themself; not a run's token
	PolicyRead          = "read"          // members of the workspace (any role), its runs' tokens, administrators
	PolicyReadScoped    = "read-scoped"   // as read, but a run's token lists only its own runs and experiment
	PolicyRunRead       = "run-read"      // as member, and also the token of the run the request names or of an ancestor
	PolicyMember        = "member"        // members of the workspace (any role), administrators; not a run's token
	PolicyWrite         = "write"         // the workspace's Contributors and Owners, administrators
	PolicyRun           = "run"           // as write, and also the token of the run the request names or of an ancestor
	PolicyOwner         = "owner"         // the workspace's Owners, administrators
	PolicyAdmin         = "admin"         // server administrators
)

// NewServer returns the API handler.
func NewServer(svc Services, auth atelier.AuthService, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, auth: auth, log: log, mux: http.NewServeMux(), MaxJSONBody: 64 << 20,
		passing: make(chan struct{}, maxPassing)}
	s.audit, _ = svc.(auditRecorder)
	s.sessions, _ = auth.(sessionService)
	var err error
	if s.bodies, err = newBodySchemas(openapiDoc); err != nil {
		panic(err) // the document is embedded, and its tests read it
	}
	for _, rt := range s.Routes() {
		s.mux.Handle(rt.Pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/api/", s.noRoute)
	return s
}

// EMETHOD is the error code of a method the path is not served with (405). It belongs to HTTP,
// not to the domain, so it is the edge's own.
const EMETHOD = "method_not_allowed"

// routeMethods are the methods the route table uses (HEAD is served by the GET routes).
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// noRoute answers a request no route matched: 405 with an Allow header when the path is served
// with other methods (TRACE, OPTIONS, a typo), else 404. The catch-all pattern would otherwise
// hide ServeMux's own 405. Allow names the methods of the most literal patterns that match, the
// path's own: POST .../runs/search, not GET .../runs/{run} with a run named "search".
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	fewest := -1
	for _, m := range routeMethods {
		probe := *r
		probe.Method = m
		h, pattern := s.mux.Handler(&probe)
		if pattern == "/api/" || pattern == "" || isRedirect(h) {
			continue
		}
		switch n := strings.Count(pattern, "{"); {
		case fewest < 0 || n < fewest:
			allow, fewest = []string{m}, n
		case n == fewest:
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		s.writeError(w, r, atelier.Errorf(atelier.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, atelier.Errorf(EMETHOD, "method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
}

// ServeHTTP refuses non-canonical paths before routing: ServeMux would redirect them (307) and
// a client following the redirect could write a file where it did not mean to.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != "/" && (path.Clean(p) != strings.TrimSuffix(p, "/") || strings.HasSuffix(p, "//")) {
		s.writeError(w, r, atelier.Errorf(atelier.EINVALID, "invalid request path %q: empty, '.' and '..' elements are not allowed", p))
		return
	}
	// Nor the redirect of .../files to .../files/ that a {path...} route would earn.
	if h, _ := s.mux.Handler(r); isRedirect(h) {
		s.noRoute(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

var redirectType = reflect.TypeOf(http.RedirectHandler("/", http.StatusTemporaryRedirect))

// isRedirect tells that the handler ServeMux.Handler found is its redirect to the path with a
// trailing slash, not a route.
func isRedirect(h http.Handler) bool { return reflect.TypeOf(h) == redirectType }

const ws = "/api/v1/workspaces/{workspace}"

// Routes is the whole API, one line a route.
func (s *Server) Routes() []Route {
	return append([]Route{
		{Pattern: "GET /api/v1/health", Public: true, Policy: PolicyPublic, handler: s.health},
		{Pattern: "GET /api/v1/openapi.json", Public: true, Policy: PolicyPublic, handler: s.openapi},

		{Pattern: "GET /api/v1/workspaces", Policy: PolicyAuthenticated, handler: s.listWorkspaces},
		{Pattern: "POST /api/v1/workspaces", Policy: PolicyUser, handler: s.createWorkspace},
		{Pattern: "GET " + ws, Policy: PolicyRead, handler: s.getWorkspace},
		{Pattern: "DELETE " + ws, Policy: PolicyOwner, handler: s.deleteWorkspace},

		{Pattern: "GET " + ws + "/experiments", Policy: PolicyReadScoped, handler: s.listExperiments},
		{Pattern: "GET " + ws + "/experiments/{experiment}", Policy: PolicyRunRead, handler: s.getExperiment},
		{Pattern: "PATCH " + ws + "/experiments/{experiment}", Policy: PolicyWrite, handler: s.updateExperiment},

		{Pattern: "POST " + ws + "/runs", Policy: PolicyRun, handler: s.createRun},
		{Pattern: "GET " + ws + "/runs", Policy: PolicyReadScoped, handler: s.listRuns},
		{Pattern: "POST " + ws + "/runs/search", Policy: PolicyReadScoped, handler: s.searchRuns},
		{Pattern: "POST " + ws + "/runs/submit", Policy: PolicyRun, handler: s.submitRun},
		{Pattern: "GET " + ws + "/runs/{run}", Policy: PolicyRunRead, handler: s.getRun},
		{Pattern: "PATCH " + ws + "/runs/{run}", Policy: PolicyRun, handler: s.renameRun},
		{Pattern: "POST " + ws + "/runs/{run}/cancel", Policy: PolicyRun, handler: s.cancelRun},
		{Pattern: "GET " + ws + "/runs/{run}/children", Policy: PolicyRunRead, handler: s.listChildren},
		{Pattern: "POST " + ws + "/runs/{run}/status", Policy: PolicyRun, handler: s.updateRunStatus},
		{Pattern: "POST " + ws + "/runs/{run}/params", Policy: PolicyRun, handler: s.logParams},
		{Pattern: "POST " + ws + "/runs/{run}/tags", Policy: PolicyRun, handler: s.setTags},
		{Pattern: "DELETE " + ws + "/runs/{run}/tags/{key}", Policy: PolicyRun, handler: s.deleteTag},
		{Pattern: "POST " + ws + "/runs/{run}/properties", Policy: PolicyRun, handler: s.addProperties},
		{Pattern: "POST " + ws + "/runs/{run}/metrics", Policy: PolicyRun, handler: s.logMetrics},
		{Pattern: "GET " + ws + "/runs/{run}/metrics", Policy: PolicyRunRead, handler: s.listMetrics},
		{Pattern: "GET " + ws + "/runs/{run}/metric-history", Policy: PolicyRunRead, handler: s.metricHistory},
		{Pattern: "GET " + ws + "/runs/{run}/metric-records", Policy: PolicyRunRead, handler: s.metricRecords},
		{Pattern: "GET " + ws + "/runs/{run}/files", Policy: PolicyRunRead, handler: s.listFiles},
		{Pattern: "PUT " + ws + "/runs/{run}/files/{path...}", Policy: PolicyRun, handler: s.uploadFile},
		{Pattern: "GET " + ws + "/runs/{run}/files/{path...}", Policy: PolicyRunRead, handler: s.downloadFile},
		{Pattern: "POST " + ws + "/runs/{run}/logs/{path...}", Policy: PolicyRun, handler: s.appendLog},
		{Pattern: "GET " + ws + "/runs/{run}/logs/{path...}", Policy: PolicyRunRead, handler: s.readLog},
		{Pattern: "GET " + ws + "/runs/{run}/snapshot", Policy: PolicyRunRead, handler: s.downloadRunSnapshot},

		{Pattern: "POST " + ws + "/objects/missing", Policy: PolicyMember, handler: s.missingObjects},
		{Pattern: "PUT " + ws + "/objects/{digest}", Policy: PolicyWrite, handler: s.uploadObject},
		{Pattern: "POST " + ws + "/snapshots", Policy: PolicyWrite, handler: s.createSnapshot},
		{Pattern: "GET " + ws + "/snapshots/{snapshot}", Policy: PolicyRunRead, handler: s.getSnapshot},
		{Pattern: "GET " + ws + "/snapshots/{snapshot}/zip", Policy: PolicyRunRead, handler: s.downloadSnapshot},

		{Pattern: "GET " + ws + "/compute", Policy: PolicyMember, handler: s.listCompute},

		{Pattern: "GET " + ws + "/activities", Policy: PolicyMember, handler: s.listActivities},
		{Pattern: "GET " + ws + "/activities/{activity}", Policy: PolicyRunRead, handler: s.getActivity},
		{Pattern: "GET " + ws + "/events", Policy: PolicyRunRead, handler: s.events},
	}, slices.Concat(s.modelRoutes(), s.authRoutes(), s.datastoreRoutes(), s.vaultRoutes(), s.computeRoutes(), s.imageRoutes(), s.webServiceRoutes(), s.datasetRoutes(), s.environmentRoutes())...)
}

// wrap serves a route through the edge: it authenticates the request (a bearer token, or the
// UI's session cookie with its CSRF token on writes), audits writes in their own transaction
// and turns a handler's error into the JSON error response.
func (s *Server) wrap(rt Route) http.Handler {
	// A read sent as POST (a search, a batch download) stores nothing and is not audited.
	stores := rt.Policy != PolicyRead && rt.Policy != PolicyReadScoped
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := s.door()
		d.Serve(w, r, edge.Call{Public: rt.Public, Write: stores && edge.IsWrite(r.Method), Workspace: r.PathValue("workspace")}, rt.handler)
	})
}

// door is the server's edge. It is made at each request because the fields it reads (Storage)
// are set after NewServer.
func (s *Server) door() edge.Door {
	d := edge.Door{Auth: edge.Authenticator{Auth: s.auth}, Errors: s.errorWriter(), Audit: s.audit}
	if s.Storage != nil {
		d.Storage = s.Storage
	}
	return d
}

// WriteError answers err as the API does (for the server's other doors: /metrics).
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	s.errorWriter().Write(w, r, err)
}

func (s *Server) errorWriter() edge.Errors {
	return edge.Errors{Log: s.log, Map: func(err error) (int, any) {
		return edge.StatusOf(statusOf, err), ErrorResponse{Code: atelier.ErrorCode(err), Message: atelier.ErrorMessage(err)}
	}}
}

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	atelier.EINVALID:      http.StatusBadRequest,
	atelier.EUNAUTHORIZED: http.StatusUnauthorized,
	atelier.EFORBIDDEN:    http.StatusForbidden,
	atelier.ENOTFOUND:     http.StatusNotFound,
	atelier.ECONFLICT:     http.StatusConflict,
	atelier.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	atelier.ETOOMANY:      http.StatusTooManyRequests,
	EMETHOD:               http.StatusMethodNotAllowed,
	atelier.EINTERNAL:     http.StatusInternalServerError,
	atelier.EUNAVAILABLE:  http.StatusServiceUnavailable,
	atelier.ENOSPACE:      http.StatusInsufficientStorage,
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.errorWriter().Write(w, r, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error { return edge.WriteJSON(w, status, v) }

// readJSON decodes a request body strictly: unknown fields, trailing data, oversize bodies and
// bodies not of the shape the OpenAPI document gives the route (see checkShape) are client
// errors that name what was wrong.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxJSONBody))
	if err != nil {
		return err
	}
	return s.decodeJSON(r, data, v)
}

// decodeJSON is readJSON on a body already read.
func (s *Server) decodeJSON(r *http.Request, data []byte, v any) error {
	if err := atelier.ValidateJSONText(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := expectEOF(dec); err != nil {
		return err
	}
	bs, ok := s.bodies.forPattern(r.Pattern)
	if !ok {
		return atelier.Errorf(atelier.EINTERNAL, "%s has no JSON body in the OpenAPI document", r.Pattern)
	}
	return s.bodies.checkShape(bs, data)
}

// expectEOF refuses anything after the JSON value (dec.More misses a stray '}' or ']').
func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var maxErr *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var aerr *atelier.Error
	switch {
	case errors.As(err, &maxErr):
		return err
	case errors.As(err, &aerr):
		return aerr
	case errors.Is(err, io.EOF):
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: the body is empty")
	case errors.As(err, &syntax):
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: %s must be %s, not %s", field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return atelier.Errorf(atelier.EINVALID, "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// queryTyped reads an optional query parameter of a type other than string, whose empty value
// would be none of its type: present but empty is refused, not taken for absent.
func queryTyped(r *http.Request, name, typ string) (string, error) {
	q := r.URL.Query()
	v := q.Get(name)
	if v == "" && q.Has(name) {
		return "", atelier.Errorf(atelier.EINVALID, "query parameter %s is empty: give %s or leave it out", name, typ)
	}
	return v, nil
}

// queryInt reads an optional integer query parameter.
func queryInt(r *http.Request, name string) (*int64, error) {
	v, err := queryTyped(r, name, "an integer")
	if v == "" || err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "query parameter %s=%q is not an integer", name, v)
	}
	return &n, nil
}

// queryLimit reads the optional page size of a list: 0 when absent, else 0 to MaxPageSize.
func queryLimit(r *http.Request) (int, error) {
	limit, err := queryInt(r, "limit")
	if err != nil || limit == nil {
		return 0, err
	}
	if *limit < 0 || *limit > atelier.MaxPageSize {
		return 0, atelier.Errorf(atelier.EINVALID, "limit=%d is out of range (0 to %d)", *limit, atelier.MaxPageSize)
	}
	return int(*limit), nil
}

func queryBool(r *http.Request, name string) (bool, error) {
	v, err := queryTyped(r, name, "true or false")
	if v == "" || err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, atelier.Errorf(atelier.EINVALID, "query parameter %s=%q is not a boolean", name, v)
	}
	return b, nil
}

// Health answers the health check.
type Health struct {
	// Status is "ok", or "degraded" when the server serves reads but cannot store writes;
	// Reason then says why. Both answer 200: the server is up, and restarting it or taking it
	// out of a load balancer would not free its disk.
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
	// StorageFullSince is when writes began to fail for lack of space (Reason "storage full").
	StorageFullSince *time.Time `json:"storage_full_since,omitempty"`
	// Socket is the server's Unix socket, told only to a client that reached the server over
	// loopback TCP, directly: the one client that can use it (the socket is its user's alone),
	// and that gains from it (files pass as descriptors instead of through TCP).
	Socket string `json:"socket,omitempty"`
	// Version is the server's version (its module version, or its commit for a build from a
	// checkout).
	Version string `json:"version,omitempty"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	h := Health{Status: "ok", Time: time.Now().UTC(), Version: s.Version}
	if full, since := s.Storage.Full(); full {
		since = since.UTC()
		h.Status, h.Reason, h.StorageFullSince = "degraded", "storage full", &since
	}
	if s.LocalSocket != "" && edge.FromLoopback(r) {
		h.Socket = s.LocalSocket
	}
	return writeJSON(w, http.StatusOK, h)
}
