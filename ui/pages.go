package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// loginCookie holds a random value the login form repeats, so another site cannot post the
// form (and log a victim into the attacker's account): the login's CSRF token, as the
// session's own cannot exist yet.
const loginCookie = "atelier_login"

// pastedCookie marks a session opened with a pasted API token: logging out forgets it in the
// browser but does not revoke the token, which the user made for other uses too.
const pastedCookie = "atelier_pasted"

type loginData struct {
	Next    string
	Expired bool
	Error   string
	User    string
	Token   string // the login form's CSRF value
}

// safeNext keeps a post-login destination on this site: a path, not //host or /\host.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, `/\`) {
		return "/"
	}
	return next
}

func (h *Handler) loginPage(q *request) error {
	d := loginData{Next: safeNext(q.r.URL.Query().Get("next")), Expired: q.r.URL.Query().Get("expired") != ""}
	return h.showLogin(q, d, http.StatusOK)
}

func (h *Handler) showLogin(q *request, d loginData, status int) error {
	// One value a browser: another tab's (or a favicon's) visit to the login page must not
	// invalidate the form already shown.
	if c, err := q.r.Cookie(loginCookie); err == nil && len(c.Value) == 32 {
		d.Token = c.Value
	} else {
		var b [16]byte
		rand.Read(b[:])
		d.Token = hex.EncodeToString(b[:])
	}
	http.SetCookie(q.w, &http.Cookie{Name: loginCookie, Value: d.Token, Path: "/login", HttpOnly: true,
		Secure: h.secure(q.r), SameSite: http.SameSiteStrictMode})
	q.v.Title, q.v.Data = "Log in", d
	h.render(q.w, status, "login", q.v)
	return nil
}

func (h *Handler) secure(r *http.Request) bool { return h.SecureCookie != nil && h.SecureCookie(r) }

func (h *Handler) login(q *request) error {
	r := q.r
	d := loginData{Next: safeNext(r.PostFormValue("next")), User: r.PostFormValue("user")}
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(edge.CSRFFormField))) != 1 {
		d.Error = "The login form expired or did not come from this site: please try again."
		return h.showLogin(q, d, http.StatusForbidden)
	}
	remote := edge.RemoteHost(r)
	if token := strings.TrimSpace(r.PostFormValue("token")); token != "" {
		p, err := h.auth.Authenticate(r.Context(), token)
		if err == nil && p.Kind == atelier.PrincipalRun {
			err = atelier.Errorf(atelier.EUNAUTHORIZED, "a run's token cannot open the studio: paste a user's token")
		}
		if err != nil {
			d.Error = atelier.ErrorMessage(err)
			return h.showLogin(q, d, statusOf(err))
		}
		h.setSession(q, token, time.Time{})
		http.SetCookie(q.w, &http.Cookie{Name: pastedCookie, Value: "1", Path: "/", HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
		http.Redirect(q.w, r, d.Next, http.StatusSeeOther)
		return nil
	}
	if h.sessions == nil {
		d.Error = errNoSessions.Error()
		return h.showLogin(q, d, http.StatusServiceUnavailable)
	}
	// Logins are audited, failed ones too, as the REST API's are.
	door := edge.Door{Audit: h.audit}
	ctx, finish := door.BeginAudit(r.Context(), atelier.AuditEntry{User: d.User, Kind: atelier.PrincipalUser,
		Method: r.Method, Path: r.URL.Path, Remote: remote})
	t, err := h.sessions.Login(ctx, d.User, r.PostFormValue("password"), remote)
	if err != nil {
		finish(statusOf(err))
		d.Error = atelier.ErrorMessage(err)
		return h.showLogin(q, d, statusOf(err))
	}
	finish(http.StatusOK)
	h.setSession(q, t.Secret, *t.ExpiresAt)
	http.SetCookie(q.w, &http.Cookie{Name: pastedCookie, Path: "/", MaxAge: -1})
	http.Redirect(q.w, r, d.Next, http.StatusSeeOther)
	return nil
}

func (h *Handler) setSession(q *request, secret string, expires time.Time) {
	http.SetCookie(q.w, &http.Cookie{Name: edge.SessionCookie, Value: secret, Path: "/", Expires: expires,
		Secure: h.secure(q.r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.SetCookie(q.w, &http.Cookie{Name: loginCookie, Path: "/login", MaxAge: -1})
}

func (h *Handler) logout(q *request) error {
	if c, err := q.r.Cookie(pastedCookie); (err != nil || c.Value == "") && h.sessions != nil {
		if err := h.sessions.Logout(q.ctx()); err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return err
		}
	}
	for _, name := range []string{edge.SessionCookie, pastedCookie} {
		http.SetCookie(q.w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: h.secure(q.r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
	return nil
}

// workspaces lists the caller's workspaces; with exactly one, it is the workspace's home.
func (h *Handler) workspaces(q *request) error {
	list, err := h.svc.ListWorkspaces(q.ctx())
	if err != nil {
		return err
	}
	return q.show(h, "workspaces", "Workspaces", "workspaces", list)
}

// mlflowLanding is the page at a workspace's MLflow tracking URI: MLflow's "View run" link is
// <tracking URI>/#/experiments/X/runs/Y, whose fragment only the browser sees; the page's
// script sends it on to the run's page, and without a fragment it is the workspace's home.
func (h *Handler) mlflowLanding(q *request) error {
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(q.ws()), http.StatusSeeOther)
	return nil
}

type homeData struct {
	Running    []*atelier.Run
	Recent     []*atelier.Run
	Models     []*atelier.Model
	Activities []*atelier.Activity
}

func (h *Handler) home(q *request) error {
	ctx, ws := q.ctx(), q.ws()
	var d homeData
	running, err := h.svc.ListRuns(ctx, ws, atelier.RunQuery{Filter: "status in ('Queued', 'Preparing', 'Running', 'Finalizing', 'CancelRequested')", OrderBy: "created_at desc", Limit: 20})
	if err != nil {
		return err
	}
	recent, err := h.svc.ListRuns(ctx, ws, atelier.RunQuery{OrderBy: "created_at desc", Limit: 10})
	if err != nil {
		return err
	}
	d.Running, d.Recent = running.Runs, recent.Runs
	if models, err := h.svc.ListModels(ctx, ws, atelier.ModelQuery{Limit: 10}); err == nil {
		d.Models = models.Models
	} else {
		return err
	}
	if d.Activities, err = h.svc.ListActivities(ctx, ws, atelier.ActivityFilter{Active: true, Limit: 20}); err != nil {
		return err
	}
	return q.show(h, "home", ws, "home", d)
}

func (h *Handler) experiments(q *request) error {
	list, err := h.svc.ListExperiments(q.ctx(), q.ws(), atelier.ExperimentFilter{IncludeArchived: q.r.URL.Query().Get("archived") != ""})
	if err != nil {
		return err
	}
	return q.show(h, "experiments", "Experiments", "experiments", list)
}

// column is a chosen column of the runs table: a metric, param or tag.
type column struct {
	Field atelier.FilterField
}

func (c column) Label() string { return c.Field.Name }
func (c column) Kind() string  { return c.Field.Kind }

// Value is the column's value for a run, "" when it has none.
func (c column) Value(r *atelier.Run) string {
	switch c.Field.Kind {
	case atelier.FieldMetric:
		if v, ok := r.Metrics[c.Field.Name]; ok {
			return formatFloat(v)
		}
	case atelier.FieldParam:
		return r.Params[c.Field.Name]
	case atelier.FieldTag:
		return r.Tags[c.Field.Name]
	}
	return ""
}

type runsData struct {
	Experiment string
	Filter     string
	Order      string
	Cols       string
	Root       bool
	Limit      int
	Columns    []column
	Runs       []*atelier.Run
	Next       template.URL // the next page's link, "" on the last page
	First      template.URL // the first page's link, "" on the first page
	// FilterError is the query's error, shown under the field it is about with a caret under
	// the offending position (ErrorAt, 1-based; 0 for none).
	FilterError string
	OrderError  string
	ColsError   string
	ErrorAt     int
	Base        string // the table's path
	// Expand are the parents whose children are shown in the table, under their rows
	// (expand=ID, repeatable); Children holds those children by parent.
	Expand   []string
	Children map[string][]*atelier.Run
	page     string // this page's token
}

// ColsValue is the table's columns as a cols parameter (the chosen ones, or those picked for
// the page), for the live updates of its cells.
func (d *runsData) ColsValue() string {
	parts := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		parts[i] = c.Field.Kind + "." + c.Field.Name
	}
	return strings.Join(parts, ",")
}

// Expanded tells whether a parent's children are shown.
func (d *runsData) Expanded(id string) bool { return slices.Contains(d.Expand, id) }

// ExpandLink is the link to this page of the table with a parent's children shown, or hidden
// when they are.
func (d *runsData) ExpandLink(id string) template.URL {
	var expand []string
	for _, e := range d.Expand {
		if e != id {
			expand = append(expand, e)
		}
	}
	if !d.Expanded(id) {
		expand = append(expand, id)
	}
	return d.link(d.Order, d.page, expand)
}

// ParallelFilter is the filter of the table's runs, its experiment's included.
func (d *runsData) ParallelFilter() string {
	if d.Experiment == "" {
		return d.Filter
	}
	f := "experiment = '" + strings.ReplaceAll(d.Experiment, "'", "''") + "'"
	if strings.TrimSpace(d.Filter) != "" {
		f += " and (" + d.Filter + ")"
	}
	return f
}

// SortLink is the link to the table ordered by field, toggling the direction when it already is.
func (d *runsData) SortLink(field string) template.URL {
	order := field + " desc"
	if d.Order == order {
		order = field + " asc"
	}
	return d.query(order, "")
}

// SortMark is the arrow of a column the table is ordered by.
func (d *runsData) SortMark(field string) string {
	switch d.Order {
	case field + " desc":
		return "▼"
	case field + " asc":
		return "▲"
	}
	return ""
}

// query is the link to a page of the table (a template.URL: a query html/template would
// otherwise escape as one value).
func (d *runsData) query(order, page string) template.URL { return d.link(order, page, nil) }

// link is the link to a page of the table with the children of expand shown.
func (d *runsData) link(order, page string, expand []string) template.URL {
	v := url.Values{}
	if d.Filter != "" {
		v.Set("filter", d.Filter)
	}
	if order != "" {
		v.Set("order", order)
	}
	if d.Cols != "" {
		v.Set("cols", d.Cols)
	}
	if d.Root {
		v.Set("root", "1")
	}
	if d.Limit != defaultRunsLimit {
		v.Set("limit", strconv.Itoa(d.Limit))
	}
	if page != "" {
		v.Set("page", page)
	}
	if len(expand) > 0 {
		v["expand"] = expand
	}
	return template.URL("?" + v.Encode())
}

const (
	defaultRunsLimit = 50
	maxRunsLimit     = 500
	// maxExpanded bounds the parents expanded at once, maxChildRows the children shown under
	// each (more are a link to the table of the parent's children).
	maxExpanded  = 20
	maxChildRows = 100
)

// runs is the runs table, of an experiment or the whole workspace: the run filter language and
// ordering of the CLI and the API, chosen columns, server-side pages.
func (h *Handler) runs(q *request) error {
	qs := q.r.URL.Query()
	d := &runsData{Experiment: q.r.PathValue("experiment"), Filter: qs.Get("filter"), Order: qs.Get("order"),
		Cols: qs.Get("cols"), Root: qs.Get("root") != "", Limit: defaultRunsLimit}
	d.Base = "/w/" + url.PathEscape(q.ws()) + "/runs"
	if d.Experiment != "" {
		d.Base = "/w/" + url.PathEscape(q.ws()) + "/experiments/" + url.PathEscape(d.Experiment)
	}
	if l := qs.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxRunsLimit {
			return atelier.Errorf(atelier.EINVALID, "limit=%q: give a number of runs per page from 1 to %d", l, maxRunsLimit)
		}
		d.Limit = n
	}
	cols, err := parseColumns(d.Cols)
	if err != nil {
		d.ColsError = atelier.ErrorMessage(err)
	}
	d.page = qs.Get("page")
	for _, id := range qs["expand"] {
		if id != "" && !slices.Contains(d.Expand, id) {
			d.Expand = append(d.Expand, id)
		}
	}
	if len(d.Expand) > maxExpanded {
		return atelier.Errorf(atelier.EINVALID, "%d runs expanded: expand at most %d at once", len(d.Expand), maxExpanded)
	}
	title := "Runs"
	if d.Experiment != "" {
		title = d.Experiment
		// An experiment that does not exist is a 404 page, not an empty table.
		if _, err := h.svc.FindExperiment(q.ctx(), q.ws(), d.Experiment); err != nil {
			return err
		}
	}
	page, err := h.svc.ListRuns(q.ctx(), q.ws(), atelier.RunQuery{Experiment: d.Experiment, Filter: d.Filter, OrderBy: d.Order,
		RootOnly: d.Root, Limit: d.Limit, PageToken: qs.Get("page")})
	switch {
	case err == nil:
		d.Runs = page.Runs
		if page.NextPageToken != "" {
			d.Next = d.query(d.Order, page.NextPageToken)
		}
		if qs.Get("page") != "" {
			d.First = d.query(d.Order, "")
		}
	case atelier.ErrorCode(err) == atelier.EINVALID:
		// A query that does not parse is shown where it was typed, not as an error page.
		msg := atelier.ErrorMessage(err)
		switch {
		case strings.HasPrefix(msg, "order by"):
			d.OrderError = msg
		case strings.HasPrefix(msg, "filter"):
			d.FilterError = msg
			d.ErrorAt = errorPosition(msg)
		default:
			d.FilterError = msg
		}
		q.status = http.StatusBadRequest
	default:
		return err
	}
	if err := h.expandChildren(q, d); err != nil {
		return err
	}
	if cols == nil {
		cols = autoColumns(d.Runs)
	}
	d.Columns = cols
	return q.show(h, "runs", title, "runs", d)
}

// expandChildren reads the children of the expanded parents on the page (a parent not on the
// page is left out: its link is the way back to it).
func (h *Handler) expandChildren(q *request, d *runsData) error {
	for _, id := range d.Expand {
		if !slices.ContainsFunc(d.Runs, func(r *atelier.Run) bool { return r.ID == id && r.ChildCount > 0 }) {
			continue
		}
		page, err := h.svc.ListRuns(q.ctx(), q.ws(), atelier.RunQuery{ParentID: id, OrderBy: "created_at asc", Limit: maxChildRows})
		if err != nil {
			return err
		}
		if d.Children == nil {
			d.Children = map[string][]*atelier.Run{}
		}
		d.Children[id] = page.Runs
	}
	return nil
}

// errorPosition is the 1-based position a parse error names ("at position 12"), or 0.
func errorPosition(msg string) int {
	_, rest, ok := strings.Cut(msg, "at position ")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}

// parseColumns reads the cols parameter: fields of the filter language (metrics.rmse,
// params.alpha, tags.team), separated by commas; nil when it is empty.
func parseColumns(s string) ([]column, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var cols []column
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		kind, name, ok := strings.Cut(f, ".")
		switch kind {
		case "metrics", "metric":
			kind = atelier.FieldMetric
		case "params", "param":
			kind = atelier.FieldParam
		case "tags", "tag":
			kind = atelier.FieldTag
		default:
			ok = false
		}
		name = strings.Trim(name, "`")
		if !ok || name == "" {
			return nil, atelier.Errorf(atelier.EINVALID, "columns: %q is not a metric, param or tag: write metrics.NAME, params.NAME or tags.NAME", f)
		}
		cols = append(cols, column{Field: atelier.FilterField{Kind: kind, Name: name}})
	}
	return cols, nil
}

// autoColumns picks the columns of a table none were chosen for: the page's first metrics and
// params by name.
func autoColumns(runs []*atelier.Run) []column {
	metrics, params := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		for k := range r.Metrics {
			metrics[k] = true
		}
		for k := range r.Params {
			params[k] = true
		}
	}
	var cols []column
	for _, set := range []struct {
		kind  string
		names map[string]bool
	}{{atelier.FieldMetric, metrics}, {atelier.FieldParam, params}} {
		names := make([]string, 0, len(set.names))
		for k := range set.names {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, n := range names[:min(len(names), 4)] {
			cols = append(cols, column{Field: atelier.FilterField{Kind: set.kind, Name: n}})
		}
	}
	return cols
}

type runData struct {
	Run      *atelier.Run
	Scalars  []*atelier.MetricSummary
	Others   []*atelier.MetricSummary
	Records  []*recordView
	Logs     []*atelier.File
	Outputs  []*atelier.File
	Children []*atelier.Run
	Models   []*atelier.ModelVersion
	Data     []dataRef      // the datastore paths of its run configuration
	Datasets []datasetInput // the data sets an MLflow client logged as its inputs
	RerunOf  string         // the run this one repeats
	Log      string         // the shown log's path
	LogText  string         // its tail
	LogEnd   int64          // the offset after the tail, where following starts
	LogCut   bool           // the tail is not the whole log
}

// logTail is how much of a log the run page shows before following it.
const logTail = 64 << 10

func (h *Handler) run(q *request) error {
	ctx, ws, id := q.ctx(), q.ws(), q.r.PathValue("run")
	run, err := h.svc.FindRun(ctx, ws, id)
	if err != nil {
		return err
	}
	d := &runData{Run: run}
	metrics, err := h.svc.ListMetrics(ctx, ws, id)
	if err != nil {
		return err
	}
	for _, m := range metrics {
		if m.Kind == atelier.MetricScalar || m.Kind == "" {
			d.Scalars = append(d.Scalars, m)
		} else {
			d.Others = append(d.Others, m)
		}
	}
	if d.Records, err = h.recordViews(q, id, d.Others); err != nil {
		return err
	}
	files, err := h.svc.ListFiles(ctx, ws, id, "")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Log || strings.HasPrefix(f.Path, "logs/") {
			d.Logs = append(d.Logs, f)
		} else {
			d.Outputs = append(d.Outputs, f)
		}
	}
	d.Log = q.r.URL.Query().Get("log")
	if d.Log == "" {
		d.Log = "logs/std_log.txt"
		if len(d.Logs) > 0 && !slices.ContainsFunc(d.Logs, func(f *atelier.File) bool { return f.Path == d.Log }) {
			d.Log = d.Logs[0].Path
		}
	}
	if err := h.tailLog(q, d); err != nil {
		return err
	}
	if run.ChildCount > 0 {
		children, err := h.svc.ListRuns(ctx, ws, atelier.RunQuery{ParentID: id, OrderBy: "created_at asc", Limit: 200})
		if err != nil {
			return err
		}
		d.Children = children.Runs
	}
	models, err := h.svc.ListModelVersions(ctx, ws, atelier.ModelQuery{RunID: id, Limit: 50})
	if err != nil {
		return err
	}
	d.Models = models.Versions
	d.Data, d.Datasets, d.RerunOf = dataRefs(ws, run), datasetInputs(run), run.Properties[rerunOfProperty]
	title := run.Name
	if title == "" {
		title = shortID(run.ID)
	}
	return q.show(h, "run", title, "runs", d)
}

// tailLog reads the end of the shown log: a log of a million lines opens at its end.
func (h *Handler) tailLog(q *request, d *runData) error {
	var size int64 = -1
	for _, f := range d.Logs {
		if f.Path == d.Log {
			size = f.Size
		}
	}
	if size < 0 {
		return nil // no such log yet: the page follows it from the start
	}
	off := max(0, size-logTail)
	chunk, err := h.svc.ReadLog(q.ctx(), q.ws(), d.Run.ID, d.Log, off, logTail+4096)
	if err != nil {
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil
		}
		return err
	}
	text := string(chunk.Data)
	if off > 0 {
		// Start at a whole line.
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
		d.LogCut = true
	}
	d.LogText = strings.ToValidUTF8(text, "\uFFFD")
	d.LogEnd = chunk.Offset + int64(len(chunk.Data))
	return nil
}

func (h *Handler) cancel(q *request) error {
	ws, id := q.ws(), q.r.PathValue("run")
	if _, err := h.svc.CancelRun(q.ctx(), ws, id); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(ws)+"/runs/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// register registers a model from one of the run's files (or folders).
func (h *Handler) register(q *request) error {
	ws, id := q.ws(), q.r.PathValue("run")
	name, path := strings.TrimSpace(q.r.PostFormValue("name")), q.r.PostFormValue("path")
	v, err := h.svc.RegisterModel(q.ctx(), ws, atelier.ModelRegister{Name: name, RunID: id, Path: path})
	if err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(ws)+"/models/"+url.PathEscape(v.Name), http.StatusSeeOther)
	return nil
}

type compareData struct {
	Runs    []*atelier.Run
	Params  []diffRow
	Metrics []diffRow
	Metric  string   // the charted metric
	Names   []string // the scalar metrics of any run, for the chart's choice
}

type diffRow struct {
	Key    string
	Values []string
	Differ bool
}

// maxCompare bounds the runs of one comparison page.
const maxCompare = 50

func (h *Handler) compare(q *request) error {
	ids := q.r.URL.Query()["run"]
	if len(ids) == 0 {
		return atelier.Errorf(atelier.EINVALID, "choose the runs to compare: tick them in a runs table, then Compare")
	}
	if len(ids) > maxCompare {
		return atelier.Errorf(atelier.EINVALID, "%d runs chosen: compare at most %d at once", len(ids), maxCompare)
	}
	d := &compareData{}
	params, metrics := map[string]bool{}, map[string]bool{}
	for _, id := range ids {
		run, err := h.svc.FindRun(q.ctx(), q.ws(), id)
		if err != nil {
			return err
		}
		d.Runs = append(d.Runs, run)
		for k := range run.Params {
			params[k] = true
		}
		for k := range run.Metrics {
			metrics[k] = true
		}
	}
	d.Params = diffRows(params, d.Runs, func(r *atelier.Run, k string) (string, bool) { v, ok := r.Params[k]; return v, ok })
	d.Metrics = diffRows(metrics, d.Runs, func(r *atelier.Run, k string) (string, bool) {
		v, ok := r.Metrics[k]
		return formatFloat(v), ok
	})
	for _, row := range d.Metrics {
		d.Names = append(d.Names, row.Key)
	}
	d.Metric = q.r.URL.Query().Get("metric")
	if d.Metric == "" && len(d.Names) > 0 {
		d.Metric = d.Names[0]
	}
	return q.show(h, "compare", "Compare runs", "runs", d)
}

func diffRows(keys map[string]bool, runs []*atelier.Run, get func(*atelier.Run, string) (string, bool)) []diffRow {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	rows := make([]diffRow, 0, len(names))
	for _, k := range names {
		row := diffRow{Key: k}
		for i, r := range runs {
			v, ok := get(r, k)
			if !ok {
				v = "—"
			}
			row.Values = append(row.Values, v)
			if i > 0 && v != row.Values[0] {
				row.Differ = true
			}
		}
		rows = append(rows, row)
	}
	return rows
}

type modelsData struct {
	Search   string
	Tag      string // KEY or KEY=VALUE: versions are searched
	Versions []*atelier.ModelVersion
	Models   []*atelier.Model
	Next     template.URL
}

func (h *Handler) models(q *request) error {
	qs := q.r.URL.Query()
	d := &modelsData{Search: qs.Get("q"), Tag: strings.TrimSpace(qs.Get("tag"))}
	mq := atelier.ModelQuery{NameContains: d.Search, Limit: 100, PageToken: qs.Get("page")}
	if d.Tag != "" {
		// Tags are the versions': a tag search lists the versions that have it.
		mq.Tags = []string{d.Tag}
		versions, err := h.svc.ListModelVersions(q.ctx(), q.ws(), mq)
		if err != nil {
			return err
		}
		d.Versions = versions.Versions
		if versions.NextPageToken != "" {
			d.Next = template.URL("?" + url.Values{"q": {d.Search}, "tag": {d.Tag}, "page": {versions.NextPageToken}}.Encode())
		}
		return q.show(h, "models", "Models", "models", d)
	}
	page, err := h.svc.ListModels(q.ctx(), q.ws(), mq)
	if err != nil {
		return err
	}
	d.Models = page.Models
	if page.NextPageToken != "" {
		d.Next = template.URL("?" + url.Values{"q": {d.Search}, "tag": {d.Tag}, "page": {page.NextPageToken}}.Encode())
	}
	return q.show(h, "models", "Models", "models", d)
}
