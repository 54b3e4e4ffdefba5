package storetest

import (
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// The UserStore part of the suite: users, workspace memberships and the audit log.

// MustCreateUser creates a user with a placeholder password hash or fails the test.
func MustCreateUser(tb testing.TB, s atelier.Store, name string, admin bool) *atelier.User {
	tb.Helper()
	u := &atelier.User{Name: name, Admin: admin, PasswordHash: "$2a$04$hash-of-" + name}
	if err := s.CreateUser(Context(tb), u); err != nil {
		tb.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func testUsers(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	before := time.Now().Add(-time.Minute)

	list, err := s.ListUsers(ctx)
	mustOK(t, err, "ListUsers(empty)")
	if list == nil || len(list) != 0 {
		t.Errorf("ListUsers of an empty store = %#v, want an empty, non-nil list", list)
	}

	ana := MustCreateUser(t, s, "ana", false)
	MustCreateUser(t, s, "bob", true)
	if ana.CreatedAt.Before(before) || ana.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("CreateUser set CreatedAt %v, want about now", ana.CreatedAt)
	}
	got, err := s.FindUser(ctx, "ana")
	mustOK(t, err, "FindUser")
	want := &atelier.User{Name: "ana", PasswordHash: "$2a$04$hash-of-ana", CreatedAt: ana.CreatedAt}
	if diff := cmp.Diff(want, got, approxTime); diff != "" {
		t.Errorf("FindUser (-want +got):\n%s", diff)
	}
	if got, _ := s.FindUser(ctx, "bob"); got == nil || !got.Admin {
		t.Errorf("FindUser(bob) = %+v, want an administrator", got)
	}

	for _, tc := range []struct {
		name string
		u    atelier.User
		code string
	}{
		{"taken name", atelier.User{Name: "ana", PasswordHash: "other"}, atelier.ECONFLICT},
		{"invalid name", atelier.User{Name: "a b", PasswordHash: "h"}, atelier.EINVALID},
		{"empty name", atelier.User{Name: "", PasswordHash: "h"}, atelier.EINVALID},
		{"reserved name", atelier.User{Name: "Admin", PasswordHash: "h"}, atelier.EINVALID},
		{"no password hash", atelier.User{Name: "carl"}, atelier.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.u
			wantCode(t, s.CreateUser(ctx, &u), tc.code, "CreateUser(%q)", u.Name)
		})
	}
	// A refused creation changed nothing.
	if got, _ := s.FindUser(ctx, "ana"); got == nil || got.PasswordHash != "$2a$04$hash-of-ana" {
		t.Errorf("a refused CreateUser changed ana: %+v", got)
	}
	_, err = s.FindUser(ctx, "carl")
	wantCode(t, err, atelier.ENOTFOUND, "FindUser(refused carl)")
	_, err = s.FindUser(ctx, "nobody")
	wantCode(t, err, atelier.ENOTFOUND, "FindUser(nobody)")

	mustOK(t, s.DisableUser(ctx, "ana"), "DisableUser")
	got, err = s.FindUser(ctx, "ana")
	mustOK(t, err, "FindUser(disabled)")
	if got.DisabledAt == nil || got.DisabledAt.Before(before) {
		t.Errorf("disabled user has DisabledAt %v, want about now", got.DisabledAt)
	}
	first := *got.DisabledAt
	wantCode(t, s.DisableUser(ctx, "ana"), atelier.ECONFLICT, "DisableUser(already disabled)")
	if got, _ := s.FindUser(ctx, "ana"); got == nil || got.DisabledAt == nil || !got.DisabledAt.Equal(first) {
		t.Errorf("disabling again moved DisabledAt: %+v, want %v", got, first)
	}
	wantCode(t, s.DisableUser(ctx, "nobody"), atelier.ENOTFOUND, "DisableUser(nobody)")

	list, err = s.ListUsers(ctx)
	mustOK(t, err, "ListUsers")
	var names []string
	for _, u := range list {
		names = append(names, u.Name)
	}
	if diff := cmp.Diff([]string{"ana", "bob"}, names); diff != "" {
		t.Errorf("ListUsers by name (-want +got):\n%s", diff)
	}
	if list[0].DisabledAt == nil || list[1].DisabledAt != nil || !list[1].Admin {
		t.Errorf("ListUsers = %+v %+v: want ana disabled, bob an enabled administrator", list[0], list[1])
	}
}

func testMembers(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	MustCreateWorkspace(t, s, "gone")
	for _, name := range []string{"ana", "bob", "carl"} {
		MustCreateUser(t, s, name, false)
	}

	put := func(ws, user string, role atelier.Role) *atelier.Member {
		t.Helper()
		m := &atelier.Member{Workspace: ws, User: user, Role: role}
		mustOK(t, s.PutMember(ctx, m), "PutMember(%s, %s, %s)", ws, user, role)
		return m
	}
	first := put("ws", "bob", atelier.RoleOwner)
	put("ws", "ana", atelier.RoleReader)
	put("other", "ana", atelier.RoleContributor)
	put("gone", "ana", atelier.RoleReader)
	if first.CreatedAt.IsZero() {
		t.Errorf("PutMember left CreatedAt zero")
	}

	got, err := s.FindMember(ctx, "ws", "bob")
	mustOK(t, err, "FindMember")
	if diff := cmp.Diff(&atelier.Member{Workspace: "ws", User: "bob", Role: atelier.RoleOwner, CreatedAt: first.CreatedAt}, got, approxTime); diff != "" {
		t.Errorf("FindMember (-want +got):\n%s", diff)
	}

	// Changing a role keeps the membership's date; the role is stored in its canonical spelling.
	changed := put("ws", "bob", "contributor")
	got, err = s.FindMember(ctx, "ws", "bob")
	mustOK(t, err, "FindMember(changed)")
	if got.Role != atelier.RoleContributor || !got.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("after changing the role: %+v, want Contributor since %v", got, first.CreatedAt)
	}
	if changed.Role != atelier.RoleContributor || !changed.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("PutMember returned %+v, want what is stored: %+v", changed, got)
	}

	for _, tc := range []struct {
		name string
		m    atelier.Member
		code string
	}{
		{"unknown role", atelier.Member{Workspace: "ws", User: "carl", Role: "Boss"}, atelier.EINVALID},
		{"empty role", atelier.Member{Workspace: "ws", User: "carl"}, atelier.EINVALID},
		{"missing workspace", atelier.Member{Workspace: "nows", User: "carl", Role: atelier.RoleReader}, atelier.ENOTFOUND},
		{"missing user", atelier.Member{Workspace: "ws", User: "nobody", Role: atelier.RoleReader}, atelier.ENOTFOUND},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			wantCode(t, s.PutMember(ctx, &m), tc.code, "PutMember(%+v)", tc.m)
		})
	}
	_, err = s.FindMember(ctx, "ws", "carl")
	wantCode(t, err, atelier.ENOTFOUND, "FindMember(a refused member)")
	_, err = s.FindMember(ctx, "other", "bob")
	wantCode(t, err, atelier.ENOTFOUND, "FindMember(of another workspace)")
	_, err = s.FindMember(ctx, "nows", "bob")
	wantCode(t, err, atelier.ENOTFOUND, "FindMember(missing workspace)")

	members := func(ws string) []string {
		t.Helper()
		list, err := s.ListMembers(ctx, ws)
		mustOK(t, err, "ListMembers(%s)", ws)
		out := []string{}
		for _, m := range list {
			if m.Workspace != ws {
				t.Errorf("ListMembers(%s) holds %+v", ws, m)
			}
			out = append(out, m.User+":"+string(m.Role))
		}
		return out
	}
	memberships := func(user string) []string {
		t.Helper()
		list, err := s.ListMemberships(ctx, user)
		mustOK(t, err, "ListMemberships(%s)", user)
		if list == nil {
			t.Errorf("ListMemberships(%s) = nil, want a non-nil list", user)
		}
		out := []string{}
		for _, m := range list {
			if m.User != user {
				t.Errorf("ListMemberships(%s) holds %+v", user, m)
			}
			out = append(out, m.Workspace+":"+string(m.Role))
		}
		return out
	}
	if diff := cmp.Diff([]string{"ana:Reader", "bob:Contributor"}, members("ws")); diff != "" {
		t.Errorf("ListMembers by user (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gone:Reader", "other:Contributor", "ws:Reader"}, memberships("ana")); diff != "" {
		t.Errorf("ListMemberships by workspace (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{}, memberships("carl")); diff != "" {
		t.Errorf("ListMemberships of a user without any (-want +got):\n%s", diff)
	}
	_, err = s.ListMembers(ctx, "nows")
	wantCode(t, err, atelier.ENOTFOUND, "ListMembers(missing workspace)")

	mustOK(t, s.DeleteMember(ctx, "ws", "ana"), "DeleteMember")
	_, err = s.FindMember(ctx, "ws", "ana")
	wantCode(t, err, atelier.ENOTFOUND, "FindMember(deleted)")
	if diff := cmp.Diff([]string{"bob:Contributor"}, members("ws")); diff != "" {
		t.Errorf("ListMembers after DeleteMember (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gone:Reader", "other:Contributor"}, memberships("ana")); diff != "" {
		t.Errorf("ListMemberships after DeleteMember (-want +got):\n%s", diff)
	}
	wantCode(t, s.DeleteMember(ctx, "ws", "ana"), atelier.ENOTFOUND, "DeleteMember(twice)")
	wantCode(t, s.DeleteMember(ctx, "nows", "bob"), atelier.ENOTFOUND, "DeleteMember(missing workspace)")
	wantCode(t, s.DeleteMember(ctx, "ws", "nobody"), atelier.ENOTFOUND, "DeleteMember(missing user)")

	// A deleted workspace takes its memberships with it: a new workspace of the same name
	// starts without members.
	mustOK(t, s.DeleteWorkspace(ctx, "gone", true), "DeleteWorkspace")
	if diff := cmp.Diff([]string{"other:Contributor"}, memberships("ana")); diff != "" {
		t.Errorf("ListMemberships after deleting a workspace (-want +got):\n%s", diff)
	}
	MustCreateWorkspace(t, s, "gone")
	if diff := cmp.Diff([]string{}, members("gone")); diff != "" {
		t.Errorf("a re-created workspace inherited members (-want +got):\n%s", diff)
	}
}

func testAudit(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	t0 := time.UnixMilli(1714521600000).UTC()
	entries := []*atelier.AuditEntry{
		{Time: t0, Workspace: "ws", User: "ana", Kind: atelier.PrincipalUser, TokenID: "tok-1", Method: "POST", Path: "/api/v1/workspaces/ws/runs", Status: 201, Remote: "10.0.0.1"},
		{Time: t0.Add(time.Second), Workspace: "ws", User: "bob", Kind: atelier.PrincipalRun, TokenID: "tok-2", Method: "PUT", Path: "/p2", Status: 403, Remote: "10.0.0.2"},
		{Time: t0.Add(2 * time.Second), Workspace: "other", User: "ana", Kind: atelier.PrincipalUser, Method: "DELETE", Path: "/p3", Status: 204},
		{Time: t0.Add(3 * time.Second), User: "admin", Kind: atelier.PrincipalAdmin, Method: "POST", Path: "/api/v1/users", Status: 201},
		// The same millisecond as the one before: the later append lists first.
		{Time: t0.Add(3 * time.Second), Workspace: "ws", User: "ana", Kind: atelier.PrincipalUser, Method: "PATCH", Path: "/p5", Status: 200},
	}
	ids := map[int64]bool{}
	for i, e := range entries {
		mustOK(t, s.AppendAudit(ctx, e), "AppendAudit(%d)", i)
		if e.ID == 0 || ids[e.ID] {
			t.Errorf("AppendAudit(%d) gave id %d, want a new non-zero id", i, e.ID)
		}
		ids[e.ID] = true
	}
	// An entry without a time is recorded now.
	now := &atelier.AuditEntry{Workspace: "late", User: "carl", Kind: atelier.PrincipalUser, Method: "POST", Path: "/p6", Status: 200}
	mustOK(t, s.AppendAudit(ctx, now), "AppendAudit(no time)")
	if now.Time.IsZero() || time.Since(now.Time) > time.Minute {
		t.Errorf("AppendAudit without a time set %v, want about now", now.Time)
	}

	paths := func(list []*atelier.AuditEntry) []string {
		out := []string{}
		for _, e := range list {
			out = append(out, e.Path)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		workspace string
		f         atelier.AuditFilter
		want      []string
	}{
		{"one workspace, newest first", "ws", atelier.AuditFilter{}, []string{"/p5", "/p2", "/api/v1/workspaces/ws/runs"}},
		{"every workspace", "", atelier.AuditFilter{}, []string{"/p6", "/p5", "/api/v1/users", "/p3", "/p2", "/api/v1/workspaces/ws/runs"}},
		{"user", "", atelier.AuditFilter{User: "ana"}, []string{"/p5", "/p3", "/api/v1/workspaces/ws/runs"}},
		{"user in a workspace", "ws", atelier.AuditFilter{User: "bob"}, []string{"/p2"}},
		{"since, inclusive", "ws", atelier.AuditFilter{Since: ptr(t0.Add(time.Second))}, []string{"/p5", "/p2"}},
		{"since and user", "", atelier.AuditFilter{Since: ptr(t0.Add(time.Second)), User: "ana"}, []string{"/p5", "/p3"}},
		{"limit keeps the newest", "", atelier.AuditFilter{Limit: 2}, []string{"/p6", "/p5"}},
		{"limit with filters", "", atelier.AuditFilter{User: "ana", Limit: 1}, []string{"/p5"}},
		{"nothing since", "", atelier.AuditFilter{Since: ptr(time.Now().Add(time.Hour))}, []string{}},
		{"unknown user", "", atelier.AuditFilter{User: "nobody"}, []string{}},
		// The log outlives workspaces: it is kept by name, and a name never created has none.
		{"a workspace that does not exist", "nows", atelier.AuditFilter{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListAudit(ctx, tc.workspace, tc.f)
			mustOK(t, err, "ListAudit(%q, %+v)", tc.workspace, tc.f)
			if diff := cmp.Diff(tc.want, paths(list)); diff != "" {
				t.Errorf("ListAudit(%q, %+v) (-want +got):\n%s", tc.workspace, tc.f, diff)
			}
		})
	}

	list, err := s.ListAudit(ctx, "ws", atelier.AuditFilter{User: "bob"})
	mustOK(t, err, "ListAudit(bob)")
	if diff := cmp.Diff([]*atelier.AuditEntry{entries[1]}, list, approxTime); diff != "" {
		t.Errorf("an entry read back (-want +got):\n%s", diff)
	}

	// A batch's entries are appended together, each with its own id; one without a time is
	// recorded now.
	batch := []*atelier.AuditEntry{
		{Time: t0.Add(time.Minute), Workspace: "batch", User: "ana", Kind: atelier.PrincipalUser, Method: "PUT", Path: "/b1", Status: 201, Remote: "local"},
		{Workspace: "batch", User: "ana", Kind: atelier.PrincipalUser, Method: "PUT", Path: "/b2", Status: 400, Remote: "local"},
	}
	mustOK(t, s.AppendAudits(ctx, batch), "AppendAudits")
	for i, e := range batch {
		if e.ID == 0 || ids[e.ID] {
			t.Errorf("AppendAudits: entry %d has id %d, want a new non-zero id", i, e.ID)
		}
		ids[e.ID] = true
	}
	if time.Since(batch[1].Time) > time.Minute {
		t.Errorf("AppendAudits without a time set %v, want about now", batch[1].Time)
	}
	list, err = s.ListAudit(ctx, "batch", atelier.AuditFilter{})
	mustOK(t, err, "ListAudit(batch)")
	if diff := cmp.Diff([]*atelier.AuditEntry{batch[1], batch[0]}, list, approxTime); diff != "" {
		t.Errorf("a batch read back, newest first (-want +got):\n%s", diff)
	}
}
