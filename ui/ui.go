// Package ui is the studio: atelier's web UI, server-rendered with html/template, its few
// front-end libraries (htmx, uPlot) embedded with go:embed. Every page reads through the same
// domain services as the REST API, with the caller's principal in the context, so
// authorization is the service layer's: a workspace or run the caller may not see is a 404
// page, as it is a 404 over REST. The pages' scripts read live data (metric series, logs,
// events) from the REST API with the session cookie.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Services is what the pages read and change; *service.Service implements it.
type Services interface {
	atelier.WorkspaceService
	atelier.ExperimentService
	atelier.RunService
	atelier.MetricService
	atelier.FileService
	atelier.ActivityService
	atelier.ModelService
	atelier.ComputeService
	atelier.DatastoreService
	atelier.MemberService
	atelier.AuditService
	atelier.SnapshotService
	atelier.ImageService
	atelier.WebServiceService
	// CallerRole is the caller's role in a workspace, to leave out the buttons of writes the
	// caller may not make (the service still refuses them).
	CallerRole(ctx context.Context, workspace string) (atelier.Role, error)
}

// Sessions opens and closes login sessions; *service.Service implements it.
type Sessions interface {
	Login(ctx context.Context, user, password, remote string) (*atelier.Token, error)
	Logout(ctx context.Context) error
}

// Handler serves the studio's pages and static files.
type Handler struct {
	svc      Services
	auth     atelier.AuthService
	sessions Sessions
	audit    edge.Auditor
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	static   http.Handler

	// SecureCookie says whether the session cookie of a response to r is Secure (nil: never);
	// the server gives the REST API's rule, so both doors set the same cookie.
	SecureCookie func(r *http.Request) bool
	// Now is the clock of relative times ("3 minutes ago").
	Now func() time.Time
}

// New returns the studio's handler. audit may be nil (logins are then not audited).
func New(svc Services, auth atelier.AuthService, sessions Sessions, audit edge.Auditor, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{svc: svc, auth: auth, sessions: sessions, audit: audit, log: log, mux: http.NewServeMux(), Now: time.Now}
	h.pages = parsePages()
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	h.routes()
	return h
}

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /static/", h.serveStatic)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/static/favicon.svg"
		w.Header().Set("Content-Type", "image/svg+xml")
		h.serveStatic(w, r)
	})
	m.HandleFunc("GET /login", h.public(h.loginPage))
	m.HandleFunc("POST /login", h.public(h.login))
	m.HandleFunc("POST /logout", h.page(h.logout))
	m.HandleFunc("GET /{$}", h.page(h.workspaces))
	m.HandleFunc("GET /workspaces/{workspace}/mlflow/{$}", h.page(h.mlflowLanding))
	m.HandleFunc("GET /workspaces/{workspace}/mlflow", h.page(h.mlflowLanding))
	m.HandleFunc("GET /w/{workspace}", h.page(h.home))
	m.HandleFunc("GET /w/{workspace}/experiments", h.page(h.experiments))
	m.HandleFunc("GET /w/{workspace}/experiments/{experiment}", h.page(h.runs))
	m.HandleFunc("GET /w/{workspace}/runs", h.page(h.runs))
	m.HandleFunc("GET /w/{workspace}/runs/live", h.page(h.jsonData(h.liveRuns)))
	m.HandleFunc("GET /w/{workspace}/runs/{run}", h.page(h.run))
	m.HandleFunc("POST /w/{workspace}/runs/{run}/cancel", h.page(h.cancel))
	m.HandleFunc("POST /w/{workspace}/runs/{run}/rerun", h.page(h.rerun))
	m.HandleFunc("GET /w/{workspace}/runs/{run}/files/{path...}", h.page(h.preview))
	m.HandleFunc("POST /w/{workspace}/runs/{run}/register", h.page(h.register))
	m.HandleFunc("GET /w/{workspace}/runs/{run}/snapshot", h.page(h.snapshot))
	m.HandleFunc("GET /w/{workspace}/compare", h.page(h.compare))
	m.HandleFunc("GET /w/{workspace}/parallel", h.page(h.parallel))
	m.HandleFunc("GET /w/{workspace}/models", h.page(h.models))
	m.HandleFunc("GET /w/{workspace}/models/{model}", h.page(h.model))
	m.HandleFunc("GET /w/{workspace}/models/{model}/versions/{version}", h.page(h.modelVersion))
	m.HandleFunc("GET /w/{workspace}/models/{model}/aliases/{alias}", h.page(h.modelVersion))
	m.HandleFunc("POST /w/{workspace}/models/{model}/aliases", h.page(h.setAlias))
	m.HandleFunc("POST /w/{workspace}/models/{model}/aliases/{alias}/delete", h.page(h.deleteAlias))
	m.HandleFunc("GET /w/{workspace}/compute", h.page(h.compute))
	m.HandleFunc("GET /w/{workspace}/images", h.page(h.images))
	m.HandleFunc("GET /w/{workspace}/services", h.page(h.services))
	m.HandleFunc("GET /w/{workspace}/services/{service}", h.page(h.service))
	m.HandleFunc("GET /w/{workspace}/services/{service}/stats", h.page(h.jsonData(h.serviceStatsData)))
	m.HandleFunc("GET /w/{workspace}/activities", h.page(h.activities))
	m.HandleFunc("GET /w/{workspace}/datastores", h.page(h.datastores))
	m.HandleFunc("GET /w/{workspace}/datastores/{datastore}", h.page(h.datastore))
	m.HandleFunc("GET /w/{workspace}/members", h.page(h.members))
	m.HandleFunc("POST /w/{workspace}/members", h.page(h.addMember))
	m.HandleFunc("POST /w/{workspace}/members/{user}", h.page(h.setMemberRole))
	m.HandleFunc("POST /w/{workspace}/members/{user}/remove", h.page(h.removeMember))
	m.HandleFunc("GET /w/{workspace}/audit", h.page(h.auditLog))
	m.HandleFunc("/", h.notFound)
}

// Handles reports whether a request is the studio's: everything but the REST API's /api/
// paths, which the server routes first (with the registry's and MLflow's), and the landing
// page of a workspace's MLflow tracking URI, where MLflow's "View run" links point.
func Handles(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return !strings.HasPrefix(r.URL.Path, "/api/")
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/workspaces/"); ok {
		ws, tail, _ := strings.Cut(rest, "/")
		return ws != "" && (tail == "mlflow" || tail == "mlflow/")
	}
	return !strings.HasPrefix(r.URL.Path, "/api/")
}

// IsLanding reports whether r asks for a workspace's MLflow landing page (see Handles), which
// the server routes to the studio before MLflow's API, whose paths it shares.
func IsLanding(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/workspaces/")
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	ws, tail, _ := strings.Cut(rest, "/")
	return ws != "" && (tail == "mlflow" || tail == "mlflow/")
}

// ServeHTTP serves the studio.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The pages run only their own scripts: markup that slipped through escaping still runs
	// nothing. Data is read from this origin only.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	// The files change only with the binary; a day of caching, revalidated by Last-Modified.
	w.Header().Set("Cache-Control", "public, max-age=86400")
	h.static.ServeHTTP(w, r)
}

// view is what every page's template gets besides its own data.
type view struct {
	Title     string
	User      *atelier.Principal
	CSRF      string
	Workspace string
	Role      atelier.Role
	Nav       string // the nav entry of the page
	Data      any
	Path      string
	Timing    time.Duration
}

// IsOwner tells whether the caller may see the workspace's audit log and manage its members.
func (v *view) IsOwner() bool { return v.Role.AtLeast(atelier.RoleOwner) }

// CanWrite tells whether the caller may make the page's writes (cancel a run, ...).
func (v *view) CanWrite() bool { return v.Role.AtLeast(atelier.RoleContributor) }

// request is one page request: the writer, the request with the principal, the view.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	v     *view
	start time.Time
	// status is the page's status; 0 is 200 (a runs table whose filter does not parse is a
	// 400, shown with the error where the filter was typed).
	status int
}

func (q *request) ctx() context.Context { return q.r.Context() }
func (q *request) ws() string           { return q.r.PathValue("workspace") }

// page authenticates a page request with the REST API's rules (the session cookie, with the
// CSRF token on a write, or a bearer token) and renders its error, if any, as a page. A caller
// without credentials, or with an expired session, goes to the login page, which brings them
// back to this page.
func (h *Handler) page(f func(q *request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, err := edge.Authenticator{Auth: h.auth}.Authenticate(r)
		if err != nil {
			if atelier.ErrorCode(err) == atelier.EUNAUTHORIZED {
				h.toLogin(w, r)
				return
			}
			h.renderError(w, r, &view{Title: "Error", Path: r.URL.RequestURI()}, err)
			return
		}
		ctx := atelier.NewContextWithPrincipal(r.Context(), p)
		finish := func(int) {}
		if edge.IsWrite(r.Method) && p != nil {
			d := edge.Door{Audit: h.audit}
			ctx, finish = d.BeginAudit(ctx, atelier.AuditEntry{Workspace: r.PathValue("workspace"), User: p.Name, Kind: p.Kind,
				TokenID: p.TokenID, Method: r.Method, Path: r.URL.Path, Remote: edge.RemoteHost(r)})
		}
		r = r.WithContext(ctx)
		v := &view{User: p, Path: r.URL.RequestURI(), Workspace: r.PathValue("workspace")}
		if c, err := r.Cookie(edge.SessionCookie); err == nil && c.Value != "" {
			v.CSRF = edge.CSRFToken(c.Value)
		}
		if v.Workspace != "" {
			role, err := h.svc.CallerRole(ctx, v.Workspace)
			if err != nil {
				finish(statusOf(err))
				h.renderError(w, r, v, err)
				return
			}
			v.Role = role
		}
		sw := &edge.StatusWriter{ResponseWriter: w}
		q := &request{w: sw, r: r, v: v, start: start}
		if err := f(q); err != nil {
			if sw.Status == 0 {
				h.renderError(sw, r, v, err)
			} else {
				h.log.Error("studio page", "path", r.URL.Path, "err", err)
			}
		}
		if sw.Status == 0 {
			sw.Status = http.StatusOK
		}
		finish(sw.Status)
	}
}

// public serves a page without authentication (the login page).
func (h *Handler) public(f func(q *request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := &view{Path: r.URL.RequestURI()}
		q := &request{w: w, r: r, v: v, start: time.Now()}
		if err := f(q); err != nil {
			h.renderError(w, r, v, err)
		}
	}
}

// toLogin sends a caller without a valid session to the login page, remembering the page
// (a GET's; a refused form post goes back to where it came from, if that was here).
func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		next = "/"
		if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host {
			next = ref.RequestURI()
		}
	}
	q := url.Values{"next": {next}}
	if c, err := r.Cookie(edge.SessionCookie); err == nil && c.Value != "" {
		q.Set("expired", "1")
	}
	http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
}

// statusOf is the HTTP status of an error, by the same codes as the REST API's.
func statusOf(err error) int {
	switch atelier.ErrorCode(err) {
	case atelier.EINVALID:
		return http.StatusBadRequest
	case atelier.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case atelier.EFORBIDDEN:
		return http.StatusForbidden
	case atelier.ENOTFOUND:
		return http.StatusNotFound
	case atelier.ECONFLICT:
		return http.StatusConflict
	case atelier.ETOOMANY:
		return http.StatusTooManyRequests
	case atelier.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

// renderError renders an error page. Internal errors are logged, not shown.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, v *view, err error) {
	status := statusOf(err)
	d := errorData{Status: status, Message: atelier.ErrorMessage(err)}
	switch status {
	case http.StatusNotFound:
		d.Heading = "Not found"
	case http.StatusForbidden:
		d.Heading = "Not allowed"
	case http.StatusInternalServerError:
		h.log.Error("studio page", "path", r.URL.Path, "err", err)
		d.Heading, d.Message = "Something went wrong", "The server could not show this page; the error is in its log."
	default:
		d.Heading = http.StatusText(status)
	}
	v.Title, v.Data = d.Heading, d
	h.render(w, status, "error", v)
}

// render executes a page's template into a buffer first, so a template error is a clean 500
// rather than half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, v *view) {
	t, ok := h.pages[name]
	if !ok {
		panic("ui: no template " + name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		h.log.Error("rendering a studio page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered; the error is in the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}

// show renders a page with its data, telling the browser the server's time (Server-Timing).
func (q *request) show(h *Handler, name, title, nav string, data any) error {
	q.v.Title, q.v.Nav, q.v.Data = title, nav, data
	q.v.Timing = time.Since(q.start)
	q.w.Header().Set("Server-Timing", fmt.Sprintf("app;dur=%.2f", float64(time.Since(q.start).Microseconds())/1000))
	status := q.status
	if status == 0 {
		status = http.StatusOK
	}
	h.render(q.w, status, name, q.v)
	return nil
}

// notFound is the page of every path no route serves: a 404 with or without a session (a
// path that is no page is not worth a login, and the front door serves nothing else there).
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	v := &view{Path: r.URL.RequestURI()}
	if p, err := (edge.Authenticator{Auth: h.auth}).Authenticate(r); err == nil {
		v.User = p
		if c, err := r.Cookie(edge.SessionCookie); err == nil {
			v.CSRF = edge.CSRFToken(c.Value)
		}
	}
	h.renderError(w, r, v, atelier.Errorf(atelier.ENOTFOUND, "there is no page at %s", r.URL.Path))
}

var errNoSessions = errors.New("this server does not open sessions")
