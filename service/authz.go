package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// authz is the one authorization component every domain service shares: who the caller is
// (tokens, users), its role in a workspace (memberships), and what a run's token may reach
// (its run tree, its experiment, its snapshot). It caches the lookups every call makes.
type authz struct {
	reads authzStore
	now   func() time.Time
	// tokens (by hash), users and roles (by workspace and user) cache what every call reads.
	tokens lookups[*atelier.Token]
	users  lookups[*atelier.User]
	roles  lookups[atelier.Role]
}

// tokenCacheTTL bounds how long a revocation or a role change made on another server replica
// may go unseen; those made on this one drop the entry at once.
const tokenCacheTTL = 5 * time.Second

// lookups caches what authorization reads on every call, for tokenCacheTTL: a database round
// trip per call would cost more than many of the calls themselves.
type lookups[V any] struct{ m sync.Map }

type lookup[V any] struct {
	v       V
	fetched time.Time
}

// get returns the entry of key, loading it when it is missing or older than tokenCacheTTL.
func (c *lookups[V]) get(key string, now func() time.Time, load func() (V, error)) (V, error) {
	if e, ok := c.m.Load(key); ok {
		if e := e.(lookup[V]); now().Sub(e.fetched) < tokenCacheTTL {
			return e.v, nil
		}
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.m.Store(key, lookup[V]{v: v, fetched: now()})
	return v, nil
}

// What a run's token may do. A submitted script receives a token that works while its run is
// active; it may change its run and that run's descendants (the children it creates), read
// them, their experiment and the workspace record, and read the workspace's datastores,
// datasets, environments and models (registering new model and dataset versions from its own
// runs' files). Anything else is refused with runScope, so the author of a script learns what
// the token is for. Lists it may use (runs, experiments) are confined to what it may read, as a
// user's list of workspaces holds only theirs: the MLflow API looks experiments and its
// registry records up through them.

// runScope ends every refusal of a run's token.
const runScope = "a run's token may change only its run and that run's descendants, and read those runs, " +
	"their experiment, the workspace, its datastores, datasets, environments and models " +
	"(registering models and datasets from its run's files)"

// maxRunTree bounds the runs a run's token lists at once (see confineRuns).
const maxRunTree = 10000

func refuseRun(format string, args ...any) error {
	return atelier.Errorf(atelier.EFORBIDDEN, "%s: %s", fmt.Sprintf(format, args...), runScope)
}

// runPrincipal returns the caller when it is a run's token, nil otherwise.
func runPrincipal(ctx context.Context) *atelier.Principal {
	if p := atelier.PrincipalFromContext(ctx); p != nil && p.Kind == atelier.PrincipalRun {
		return p
	}
	return nil
}

// findToken looks a token up, caching it briefly: every API call authenticates, and a database
// round trip per call would cost more than many of the calls themselves.
func (s *authz) findToken(ctx context.Context, hash string) (*atelier.Token, error) {
	return s.tokens.get(hash, s.now, func() (*atelier.Token, error) { return s.reads.FindTokenByHash(ctx, hash) })
}

func (s *authz) forgetToken(id string) {
	s.tokens.m.Range(func(k, v any) bool {
		if v.(lookup[*atelier.Token]).v.ID == id {
			s.tokens.m.Delete(k)
		}
		return true
	})
}

// authorizeManage checks that the caller may change the workspace's datastores or their files:
// a Contributor or Owner, or an administrator. A run's token may read datastores, not change them.
func (s *authz) authorizeManage(ctx context.Context, workspace string) error {
	return s.authorizeWrite(ctx, workspace, "")
}

// authorizeModelRead checks that the caller may read a logged model.
func (s *authz) authorizeModelRead(ctx context.Context, workspace string, m *atelier.LoggedModel) error {
	if p := runPrincipal(ctx); p != nil && (m.SourceRunID == "" || !s.runInTree(ctx, workspace, p.RunID, m.SourceRunID)) {
		return refuseRun("logged model %s was not made by this token's run tree", m.ID)
	}
	return nil
}

// authorizeWrite checks that the caller may change the workspace: a Contributor or Owner (or
// an administrator), or a run token changing its own run or one of that run's children.
func (s *authz) authorizeWrite(ctx context.Context, workspace, runID string) error {
	role, err := s.role(ctx, workspace)
	if err != nil {
		return err
	}
	p := atelier.PrincipalFromContext(ctx)
	if p.Kind == atelier.PrincipalRun {
		if runID == "" {
			return refuseRun("a run's token may not change this")
		}
		if !s.runInTree(ctx, workspace, p.RunID, runID) {
			return refuseRun("run %s is neither this token's run nor one of its descendants", runID)
		}
		return nil
	}
	if !role.AtLeast(atelier.RoleContributor) {
		return atelier.Errorf(atelier.EFORBIDDEN, "your role in workspace %q is %s: it may read, not change anything", workspace, role)
	}
	return nil
}

// runInTree reports whether id is root or one of its descendants.
func (s *authz) runInTree(ctx context.Context, workspace, root, id string) bool {
	for depth := 0; id != "" && depth < 1000; depth++ {
		if id == root {
			return true
		}
		run, err := s.reads.FindRun(ctx, workspace, id)
		if err != nil {
			return false
		}
		id = run.ParentID
	}
	return false
}

// authorizeWorkspace checks that the caller may read the workspace record and its shared
// resources (datastores, models): what authorize allows, and a run's token of the workspace.
func (s *authz) authorizeWorkspace(ctx context.Context, workspace string) error {
	_, err := s.role(ctx, workspace)
	return err
}

// authorizeRunRead checks that the caller may read run id: what authorize allows, and the
// token of id's run tree. To a run's token another run is refused whether it exists or not.
func (s *authz) authorizeRunRead(ctx context.Context, workspace, id string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	if p := runPrincipal(ctx); p != nil && !s.runInTree(ctx, workspace, p.RunID, id) {
		return refuseRun("run %s is neither this token's run nor one of its descendants", id)
	}
	return nil
}

// runExperiment returns the experiment of a run token's run: the one it may read.
func (s *authz) runExperiment(ctx context.Context, p *atelier.Principal) (string, error) {
	run, err := s.reads.FindRun(ctx, p.Workspace, p.RunID)
	if err != nil {
		return "", err
	}
	return run.Experiment, nil
}

// authorizeExperiment checks that the caller may read the experiment: what authorize allows,
// and the token of a run of that experiment.
func (s *authz) authorizeExperiment(ctx context.Context, workspace, name string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	p := runPrincipal(ctx)
	if p == nil {
		return nil
	}
	exp, err := s.runExperiment(ctx, p)
	if err != nil {
		return err
	}
	if name != exp {
		return refuseRun("experiment %q is not the experiment of this token's run (%q)", name, exp)
	}
	return nil
}

// runTree lists the ids of root and its descendants.
func (s *authz) runTree(ctx context.Context, workspace, root string) ([]string, error) {
	ids := []string{root}
	for i := 0; i < len(ids); i++ {
		q := atelier.RunQuery{ParentID: ids[i], Limit: atelier.MaxPageSize}
		for {
			page, err := s.reads.ListRuns(ctx, workspace, q)
			if err != nil {
				return nil, err
			}
			for _, r := range page.Runs {
				ids = append(ids, r.ID)
			}
			if len(ids) > maxRunTree {
				return nil, atelier.Errorf(atelier.ETOOLARGE, "run %s has more than %d descendants: list them a parent at a time (runs/{id}/children)", root, maxRunTree)
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
	}
	return ids, nil
}

// confineRuns narrows a run search of a run's token to its run tree: the children of a run of
// the tree as they are, any other search with the tree's ids added to its filter.
func (s *authz) confineRuns(ctx context.Context, p *atelier.Principal, q atelier.RunQuery) (atelier.RunQuery, error) {
	if q.ParentID != "" {
		if !s.runInTree(ctx, p.Workspace, p.RunID, q.ParentID) {
			return q, refuseRun("run %s is neither this token's run nor one of its descendants", q.ParentID)
		}
		return q, nil
	}
	// Check the caller's filter alone first, so its errors point into what they wrote.
	if _, err := atelier.ParseFilter(q.Filter); err != nil {
		return q, err
	}
	ids, err := s.runTree(ctx, p.Workspace, p.RunID)
	if err != nil {
		return q, err
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(id) + "'"
	}
	clause := "id in (" + strings.Join(quoted, ", ") + ")"
	if strings.TrimSpace(q.Filter) == "" {
		q.Filter = clause
	} else {
		q.Filter = "(" + q.Filter + ") and " + clause
	}
	return q, nil
}

// authorizeSnapshot checks that the caller may read the snapshot: what authorize allows, and
// the token of the run it is the code of.
func (s *authz) authorizeSnapshot(ctx context.Context, workspace, id string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	p := runPrincipal(ctx)
	if p == nil {
		return nil
	}
	run, err := s.reads.FindRun(ctx, p.Workspace, p.RunID)
	if err != nil {
		return err
	}
	if run.SnapshotID == "" || run.SnapshotID != id {
		return refuseRun("snapshot %s is not the code of this token's run", id)
	}
	return nil
}

// runnerUploads reports whether the caller is the job runner of a run still active whose
// configuration has an upload data reference holding datastore path p: the runner sends back
// what the script left in that folder (see atelier.DataUpload), and nothing else.
func (s *authz) runnerUploads(ctx context.Context, workspace, datastore, p string) bool {
	pr := runPrincipal(ctx)
	if pr == nil || !pr.Runner || pr.Workspace != workspace {
		return false
	}
	run, err := s.reads.FindRun(ctx, workspace, pr.RunID)
	if err != nil || !run.Status.Active() {
		return false
	}
	var config atelier.RunConfig
	if json.Unmarshal(run.Config, &config) != nil {
		return false
	}
	for _, ref := range config.Data {
		if ref.Mode == atelier.DataUpload && ref.Datastore == datastore && strings.HasPrefix(p, ref.Folder()) {
			return true
		}
	}
	return false
}

// authorize checks that the caller may read everything in the workspace: an administrator or
// a member (any role). A run's token of the workspace is refused: it reads only what
// authorizeWorkspace, authorizeExperiment, authorizeRunRead and authorizeSnapshot allow (see
// runscope.go). To anyone else the workspace does not exist (404, not 403), so its name is not
// disclosed.
func (s *authz) authorize(ctx context.Context, workspace string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	if runPrincipal(ctx) != nil {
		return refuseRun("a run's token may not read this")
	}
	return nil
}

// role returns the caller's role in the workspace: Owner for an administrator, the member's
// role for a user, Reader for a run token of the workspace (the authorize functions narrow
// what a run's token reads; authorizeWrite adds what it may change).
func (s *authz) role(ctx context.Context, workspace string) (atelier.Role, error) {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	notFound := atelier.Errorf(atelier.ENOTFOUND, "workspace %q not found", workspace)
	switch p.Kind {
	case atelier.PrincipalAdmin:
		return atelier.RoleOwner, nil
	case atelier.PrincipalRun:
		if workspace != p.Workspace {
			return "", notFound
		}
		return atelier.RoleReader, nil
	case atelier.PrincipalUser:
		role, err := s.memberRole(ctx, workspace, p.Name)
		if err != nil {
			return "", err
		}
		if role == "" {
			return "", notFound
		}
		return role, nil
	}
	return "", atelier.Errorf(atelier.EFORBIDDEN, "unknown kind of caller %q", p.Kind)
}

// authorizeOwner checks that the caller may manage the workspace itself: its members, its
// audit log, its deletion.
func (s *authz) authorizeOwner(ctx context.Context, workspace string) error {
	role, err := s.role(ctx, workspace)
	if err != nil {
		return err
	}
	if runPrincipal(ctx) != nil {
		return refuseRun("only an Owner of workspace %q may do this", workspace)
	}
	if !role.AtLeast(atelier.RoleOwner) {
		return atelier.Errorf(atelier.EFORBIDDEN, "only an Owner of workspace %q may do this (your role: %s)", workspace, role)
	}
	return nil
}

// authorizeAdmin checks that the caller administers the server.
func (s *authz) authorizeAdmin(ctx context.Context) error {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return refuseRun("only a server administrator may do this")
	}
	if p.Kind != atelier.PrincipalAdmin {
		return atelier.Errorf(atelier.EFORBIDDEN, "only a server administrator may do this")
	}
	return nil
}

// findUser looks a user up for authentication, cached like tokens.
func (s *authz) findUser(ctx context.Context, name string) (*atelier.User, error) {
	return s.users.get(name, s.now, func() (*atelier.User, error) { return s.reads.FindUser(ctx, name) })
}

// memberRole returns the user's role in the workspace, "" for none. Every call of a user
// reads it, so it is cached briefly; changes made here drop the cache at once.
func (s *authz) memberRole(ctx context.Context, workspace, user string) (atelier.Role, error) {
	return s.roles.get(workspace+"\x00"+user, s.now, func() (atelier.Role, error) {
		m, err := s.reads.FindMember(ctx, workspace, user)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return m.Role, nil
	})
}

func (s *authz) forgetRoles() { s.roles.m.Clear() }

// authorizeListSecrets lets members (any role) and administrators see secret names, not runs.
func (s *authz) authorizeListSecrets(ctx context.Context, workspace string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	if atelier.PrincipalFromContext(ctx).Kind == atelier.PrincipalRun {
		return refuseRun("a run's token may not use the vault (the run receives the secrets its configuration names)")
	}
	return nil
}
