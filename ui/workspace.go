package ui

import (
	"github.com/atelier-ml/atelier"
)

// The workspace's other pages: compute targets with their queues, the activities feed,
// datastores, members and roles, and the audit log (for its Owners).

func (h *Handler) compute(q *request) error {
	list, err := h.svc.ListComputeTargets(q.ctx(), q.ws())
	if err != nil {
		return err
	}
	return q.show(h, "compute", "Compute targets", "compute", list)
}

// maxActivities is the length of the activities feed.
const maxActivities = 200

func (h *Handler) activities(q *request) error {
	f := atelier.ActivityFilter{Active: q.r.URL.Query().Get("active") != "", Kind: q.r.URL.Query().Get("kind"), Limit: maxActivities}
	list, err := h.svc.ListActivities(q.ctx(), q.ws(), f)
	if err != nil {
		return err
	}
	return q.show(h, "activities", "Activities", "activities", map[string]any{"Activities": list, "Active": f.Active})
}

func (h *Handler) datastores(q *request) error {
	list, err := h.svc.ListDatastores(q.ctx(), q.ws())
	if err != nil {
		return err
	}
	return q.show(h, "datastores", "Datastores", "datastores", list)
}

func (h *Handler) members(q *request) error {
	list, err := h.svc.ListMembers(q.ctx(), q.ws())
	if err != nil {
		return err
	}
	return q.show(h, "members", "Members", "members", list)
}

// maxAudit is the length of the audit page.
const maxAudit = 500

func (h *Handler) auditLog(q *request) error {
	f := atelier.AuditFilter{User: q.r.URL.Query().Get("user"), Limit: maxAudit}
	list, err := h.svc.ListAudit(q.ctx(), q.ws(), f)
	if err != nil {
		return err
	}
	return q.show(h, "audit", "Audit log", "audit", map[string]any{"Entries": list, "User": f.User})
}
