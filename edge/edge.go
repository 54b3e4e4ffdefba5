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
// authenticated write is audited: its entry goes with the request's first write, in that
// write's transaction, with the status the request will have if it succeeds; the entry is
// recorded apart only if no write took it, or to give it the status the request ended with.
func (d *Door) Serve(w http.ResponseWriter, r *http.Request, c Call, h func(http.ResponseWriter, *http.Request) error) {
	var pending *atelier.PendingAudit
	if !c.Public {
		p, err := d.Auth.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atelier"`)
			d.Errors.Write(w, r, err)
			return
		}
		ctx := atelier.NewContextWithPrincipal(r.Context(), p)
		if d.Audit != nil && c.Write {
			pending = atelier.NewPendingAudit(atelier.AuditEntry{Workspace: c.Workspace, User: p.Name, Kind: p.Kind, TokenID: p.TokenID,
				Method: r.Method, Path: r.URL.Path, Status: http.StatusOK, Remote: RemoteHost(r)})
			ctx = atelier.NewContextWithAudit(ctx, pending)
		}
		r = r.WithContext(ctx)
	}
	sw := &StatusWriter{ResponseWriter: w}
	// A full disk the adapters did not name (a temporary file, say) is named here.
	err := atelier.StorageFull(h(sw, r))
	if err != nil {
		d.Errors.Write(sw, r, err)
	}
	if d.Storage != nil && (err != nil || c.Write) {
		d.Storage.Observe(err)
	}
	if pending != nil {
		status := sw.Status
		if status == 0 {
			status = http.StatusOK
		}
		if e, stored := pending.Finish(); !stored || e.Status != status {
			e.Status = status
			d.Audit.RecordAudit(r.Context(), &e)
		}
	}
}

// IsWrite reports whether a request with this method may change something.
func IsWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}
