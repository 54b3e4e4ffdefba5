package ui

import (
	"net/http"
	"net/url"
	"strings"

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

type membersData struct {
	Members []*atelier.Member
	Roles   []atelier.Role
	Error   string // what a refused change was refused for
	User    string // the user of the refused add, kept in its field
}

var memberRoles = []atelier.Role{atelier.RoleReader, atelier.RoleContributor, atelier.RoleOwner}

func (h *Handler) members(q *request) error { return h.showMembers(q, "", "") }

func (h *Handler) showMembers(q *request, msg, user string) error {
	list, err := h.svc.ListMembers(q.ctx(), q.ws())
	if err != nil {
		return err
	}
	return q.show(h, "members", "Members", "members", &membersData{Members: list, Roles: memberRoles, Error: msg, User: user})
}

// addMember gives a user a role in the workspace (POST /w/{ws}/members: user, role), and
// setMemberRole changes a member's (POST /w/{ws}/members/{user}: role); both are the service's
// ShareWorkspace, for Owners and administrators. removeMember is its UnshareWorkspace. The
// service authorizes them: a Reader's or Contributor's post is a 403 page.
func (h *Handler) addMember(q *request) error {
	user := strings.TrimSpace(q.r.PostFormValue("user"))
	if user == "" {
		return h.memberRefused(q, atelier.Errorf(atelier.EINVALID, "name the user to add"), user)
	}
	return h.shareWith(q, user)
}

func (h *Handler) setMemberRole(q *request) error { return h.shareWith(q, q.r.PathValue("user")) }

func (h *Handler) shareWith(q *request, user string) error {
	role := atelier.Role(q.r.PostFormValue("role"))
	if _, err := h.svc.ShareWorkspace(q.ctx(), q.ws(), user, role); err != nil {
		return h.memberRefused(q, err, user)
	}
	return h.toMembers(q)
}

func (h *Handler) removeMember(q *request) error {
	if err := h.svc.UnshareWorkspace(q.ctx(), q.ws(), q.r.PathValue("user")); err != nil {
		return h.memberRefused(q, err, "")
	}
	return h.toMembers(q)
}

func (h *Handler) toMembers(q *request) error {
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(q.ws())+"/members", http.StatusSeeOther)
	return nil
}

// memberRefused shows a change the service refused for its input (a bad role, an unknown
// user, the last Owner) on the members page, with the refusal's status; a caller who may not
// change members gets the error page.
func (h *Handler) memberRefused(q *request, err error, user string) error {
	switch atelier.ErrorCode(err) {
	case atelier.EINVALID, atelier.ECONFLICT:
	case atelier.ENOTFOUND:
		// The workspace not found is the 404 page; a user not found is said on the page.
		if _, werr := h.svc.ListMembers(q.ctx(), q.ws()); werr != nil {
			return err
		}
	default:
		return err
	}
	q.status = statusOf(err)
	return h.showMembers(q, atelier.ErrorMessage(err), user)
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
