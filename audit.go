package atelier

import (
	"context"
	"sync"
)

// PendingAudit is the audit entry of a request being served. A store may write it in the
// transaction of the request's first write: the entry then costs no commit of its own and is
// durable exactly when the write is. When the request ends, the transport calls Finish and
// records the entry itself only if no write took it, or to give it the status the request
// ended with.
type PendingAudit struct {
	mu     sync.Mutex
	entry  AuditEntry
	stored bool
	done   bool
}

// NewPendingAudit returns the pending audit of a request, with the status it will have if the
// request succeeds.
func NewPendingAudit(e AuditEntry) *PendingAudit { return &PendingAudit{entry: e} }

// Claim is for stores: it returns the entry to write in the current transaction, or false if
// it is stored or finished already. A successful claim holds the entry (Finish waits) until
// Release, which the store must call once its transaction has committed or failed.
func (p *PendingAudit) Claim() (AuditEntry, bool) {
	p.mu.Lock()
	if p.stored || p.done {
		p.mu.Unlock()
		return AuditEntry{}, false
	}
	return p.entry, true
}

// Release ends a claim: id is the id the entry was stored under, 0 if its transaction failed.
func (p *PendingAudit) Release(id int64) {
	if id != 0 {
		p.entry.ID, p.stored = id, true
	}
	p.mu.Unlock()
}

// Finish ends the request: no store claims the entry afterwards. It returns the entry (with
// its ID if stored) and whether a store wrote it.
func (p *PendingAudit) Finish() (AuditEntry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	return p.entry, p.stored
}

type auditKey struct{}

// NewContextWithAudit returns ctx carrying the pending audit entry of its request.
func NewContextWithAudit(ctx context.Context, p *PendingAudit) context.Context {
	return context.WithValue(ctx, auditKey{}, p)
}

// AuditFromContext returns the pending audit entry of ctx's request, or nil.
func AuditFromContext(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(auditKey{}).(*PendingAudit)
	return p
}
