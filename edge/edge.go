// Package edge is what every front door of the server shares: authentication (tokens, the
// UI's sessions, basic), the audit entry of a write, the status writer, and error writing
// through one code→status table per protocol. REST (api/) and MLflow (mlflow/) are doors on it.
package edge

import (
	"context"
	"net/http"

	"github.com/atelier-ml/atelier"
)

// Auditor stores audit entries; *service.Service implements it.
type Auditor interface {
	RecordAudit(ctx context.Context, e *atelier.AuditEntry)
}

// Door is one front door's edge: who authenticates its callers, where its writes are audited,
// how its errors are written. A zero Audit or Storage is none.
type Door struct {
	Auth    Authenticator
	Errors  Errors
	Audit   Auditor
	Storage atelier.StorageMonitor
}

// Call says how Serve treats a request.
type Call struct {
	// Public requests are served without authentication.
	Public bool
	// Write requests store something: they are audited (when authenticated) and tell Storage
	// how they ended. A read sent as POST (a search) is not a write.
	Write bool
	// Workspace is the workspace of the audit entry ("" for none).
	Workspace string
}

// Serve authenticates r (unless public), serves it with h and writes h's error. An
// authenticated write is audited (see BeginAudit).
func (d *Door) Serve(w http.ResponseWriter, r *http.Request, c Call, h func(http.ResponseWriter, *http.Request) error) {
	finish := func(int) {}
	if !c.Public {
		p, err := d.Auth.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atelier"`)
			d.Errors.Write(w, r, err)
			return
		}
		ctx := atelier.NewContextWithPrincipal(r.Context(), p)
		if c.Write && p != nil {
			ctx, finish = d.BeginAudit(ctx, atelier.AuditEntry{Workspace: c.Workspace, User: p.Name, Kind: p.Kind, TokenID: p.TokenID,
				Method: r.Method, Path: r.URL.Path, Remote: RemoteHost(r)})
		}
		r = r.WithContext(ctx)
	}
	sw := &StatusWriter{ResponseWriter: w}
	err := named(h(sw, r))
	if err != nil {
		d.Errors.Write(sw, r, err)
	}
	if d.Storage != nil && (err != nil || c.Write) {
		d.Storage.Observe(err)
	}
	if sw.Status == 0 {
		sw.Status = http.StatusOK
	}
	finish(sw.Status)
}

// BeginAudit audits a write made with the returned context: the entry goes with the write's
// first store write, in that write's transaction, so the two are durable together; the entry
// has status 200 there, the status the write will have if it succeeds. finish ends the write
// with its status: it records the entry apart only if no store write took it, or to give it
// another status. Without an Auditor it does nothing.
func (d *Door) BeginAudit(ctx context.Context, e atelier.AuditEntry) (_ context.Context, finish func(status int)) {
	if d.Audit == nil {
		return ctx, func(int) {}
	}
	e.Status = http.StatusOK
	pending := atelier.NewPendingAudit(e)
	return atelier.NewContextWithAudit(ctx, pending), func(status int) {
		if e, stored := pending.Finish(); !stored || e.Status != status {
			e.Status = status
			d.Audit.RecordAudit(ctx, &e)
		}
	}
}

// IsWrite reports whether a request with this method may change something.
func IsWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}
