package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func filePaths(files []*atelier.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

func testFiles(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "files", Status: atelier.StatusRunning})
	other := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "files"})
	for _, p := range []string{"outputs/model.pkl", "outputs/sub/a.txt", "outputs2/x", "outputsx", "a[1]/f", "a1/g", "readme.md"} {
		mustOK(t, s.PutFile(ctx, "ws", run.ID, &atelier.File{Path: p, Size: int64(len(p)), Digest: digestOf(p)}), "PutFile(%s)", p)
	}
	mustOK(t, s.PutFile(ctx, "ws", other.ID, &atelier.File{Path: "outputs/other", Size: 1, Digest: digestOf("o")}), "PutFile(other run)")

	t.Run("Find", func(t *testing.T) {
		f, err := s.FindFile(ctx, "ws", run.ID, "outputs/model.pkl")
		mustOK(t, err, "FindFile")
		want := &atelier.File{Path: "outputs/model.pkl", Size: int64(len("outputs/model.pkl")), Digest: digestOf("outputs/model.pkl")}
		if diff := cmp.Diff(want, f, cmpopts.IgnoreFields(atelier.File{}, "CreatedAt")); diff != "" {
			t.Errorf("FindFile (-want +got):\n%s", diff)
		}
		if time.Since(f.CreatedAt) > time.Minute {
			t.Errorf("CreatedAt = %v, want about now", f.CreatedAt)
		}
		for _, p := range []string{"outputs/missing", "outputs/other", "outputs/sub"} {
			_, err = s.FindFile(ctx, "ws", run.ID, p)
			wantCode(t, err, atelier.ENOTFOUND, "FindFile(%s)", p)
		}
	})

	t.Run("ListPrefix", func(t *testing.T) {
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"a1/g", "a[1]/f", "outputs/model.pkl", "outputs/sub/a.txt", "outputs2/x", "outputsx", "readme.md"}},
			{"outputs", []string{"outputs/model.pkl", "outputs/sub/a.txt"}},
			{"outputs/", []string{"outputs/model.pkl", "outputs/sub/a.txt"}},
			{"outputs/sub", []string{"outputs/sub/a.txt"}},
			{"outputs2", []string{"outputs2/x"}},
			{"a[1]", []string{"a[1]/f"}},
			{"a?", nil},
			{"out*", nil},
			{"output", nil},
			{"nothing", nil},
		} {
			t.Run(tc.prefix, func(t *testing.T) {
				files, err := s.ListFiles(ctx, "ws", run.ID, tc.prefix)
				mustOK(t, err, "ListFiles(%q)", tc.prefix)
				if diff := cmp.Diff(tc.want, sorted(filePaths(files)), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("ListFiles(%q) (-want +got):\n%s", tc.prefix, diff)
				}
			})
		}
	})

	t.Run("Replace", func(t *testing.T) {
		mustOK(t, s.PutFile(ctx, "ws", run.ID, &atelier.File{Path: "outputs/model.pkl", Size: 99, Digest: digestOf("v2")}), "PutFile(replace)")
		f, err := s.FindFile(ctx, "ws", run.ID, "outputs/model.pkl")
		mustOK(t, err, "FindFile")
		if f.Size != 99 || f.Digest != digestOf("v2") {
			t.Errorf("replaced file = %+v, want size 99 and the new digest", f)
		}
		files, err := s.ListFiles(ctx, "ws", run.ID, "outputs")
		mustOK(t, err, "ListFiles")
		if len(files) != 2 {
			t.Errorf("after replacing, ListFiles(outputs) = %v, want 2 files", filePaths(files))
		}
	})

	t.Run("InvalidPath", func(t *testing.T) {
		for _, p := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/./b", `a\b`, "C:/x", "a/"} {
			wantCode(t, s.PutFile(ctx, "ws", run.ID, &atelier.File{Path: p, Digest: digestOf(p)}), atelier.EINVALID, "PutFile(%q)", p)
		}
	})
}

func testLogs(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "logs", Status: atelier.StatusRunning})
	const log = "logs/std_log.txt"
	parts := []string{"hello ", "world\n", "", "third line\n", "é∂ unicode\n"}
	var full []byte
	for _, p := range parts {
		size, err := s.AppendLog(ctx, "ws", run.ID, log, []byte(p))
		mustOK(t, err, "AppendLog(%q)", p)
		full = append(full, p...)
		if size != int64(len(full)) {
			t.Errorf("AppendLog(%q) returned size %d, want %d", p, size, len(full))
		}
	}

	t.Run("Read", func(t *testing.T) {
		for _, tc := range []struct {
			offset, limit int64
		}{
			{0, 0}, {0, -1}, {0, 3}, {3, 5}, {6, 6}, {5, 2}, {8, 0}, {11, 100}, {int64(len(full)) - 1, 0},
			{int64(len(full)), 0}, {0, int64(len(full))},
		} {
			chunk, err := s.ReadLog(ctx, "ws", run.ID, log, tc.offset, tc.limit)
			mustOK(t, err, "ReadLog(%d, %d)", tc.offset, tc.limit)
			end := int64(len(full))
			if tc.limit > 0 {
				end = min(end, tc.offset+tc.limit)
			}
			if want := full[tc.offset:end]; !bytes.Equal(chunk.Data, want) || chunk.Offset != tc.offset {
				t.Errorf("ReadLog(%d, %d) = %q at %d, want %q at %d", tc.offset, tc.limit, chunk.Data, chunk.Offset, want, tc.offset)
			}
			if chunk.Done {
				t.Errorf("ReadLog(%d, %d) Done while the run is live", tc.offset, tc.limit)
			}
		}
		// Following a log with a small limit reads every byte once.
		var got []byte
		for off, n := int64(0), 0; ; n++ {
			chunk, err := s.ReadLog(ctx, "ws", run.ID, log, off, 4)
			mustOK(t, err, "ReadLog(%d, 4)", off)
			if len(chunk.Data) == 0 || n > 100 {
				break
			}
			got = append(got, chunk.Data...)
			off = chunk.Offset + int64(len(chunk.Data))
		}
		if !bytes.Equal(got, full) {
			t.Errorf("reading by 4 bytes = %q, want %q", got, full)
		}
		_, err := s.ReadLog(ctx, "ws", run.ID, log, -1, 0)
		wantCode(t, err, atelier.EINVALID, "ReadLog(offset -1)")
	})

	t.Run("AsFile", func(t *testing.T) {
		f, err := s.FindFile(ctx, "ws", run.ID, log)
		mustOK(t, err, "FindFile(log)")
		if !f.Log || f.Size != int64(len(full)) || f.Path != log {
			t.Errorf("FindFile(log) = %+v, want Log and size %d", f, len(full))
		}
		files, err := s.ListFiles(ctx, "ws", run.ID, "logs")
		mustOK(t, err, "ListFiles(logs)")
		if len(files) != 1 || !files[0].Log || files[0].Size != int64(len(full)) {
			t.Errorf("ListFiles(logs) = %+v, want the log", files)
		}
	})

	t.Run("PathConflict", func(t *testing.T) {
		mustOK(t, s.PutFile(ctx, "ws", run.ID, &atelier.File{Path: "outputs/f.txt", Size: 1, Digest: digestOf("f")}), "PutFile")
		_, err := s.AppendLog(ctx, "ws", run.ID, "outputs/f.txt", []byte("x"))
		wantCode(t, err, atelier.ECONFLICT, "AppendLog(path of a file)")
		wantCode(t, s.PutFile(ctx, "ws", run.ID, &atelier.File{Path: log, Size: 1, Digest: digestOf("f")}), atelier.ECONFLICT, "PutFile(path of a log)")
		if f, err := s.FindFile(ctx, "ws", run.ID, "outputs/f.txt"); err != nil || f.Log || f.Digest != digestOf("f") {
			t.Errorf("file after refused AppendLog = %+v, %v", f, err)
		}
		if f, err := s.FindFile(ctx, "ws", run.ID, log); err != nil || !f.Log || f.Size != int64(len(full)) {
			t.Errorf("log after refused PutFile = %+v, %v", f, err)
		}
		_, err = s.AppendLog(ctx, "ws", run.ID, "../escape", []byte("x"))
		wantCode(t, err, atelier.EINVALID, "AppendLog(bad path)")
	})

	t.Run("DoneAfterRunEnds", func(t *testing.T) {
		MustSetStatus(t, s, "ws", run.ID, atelier.StatusCompleted)
		chunk, err := s.ReadLog(ctx, "ws", run.ID, log, 0, 0)
		mustOK(t, err, "ReadLog")
		if !chunk.Done || !bytes.Equal(chunk.Data, full) {
			t.Errorf("ReadLog after the run ended = %q, Done %v; want everything and Done", chunk.Data, chunk.Done)
		}
		chunk, err = s.ReadLog(ctx, "ws", run.ID, log, 6, 0)
		mustOK(t, err, "ReadLog(6)")
		if !chunk.Done || !bytes.Equal(chunk.Data, full[6:]) {
			t.Errorf("ReadLog(6) after the run ended = %q, Done %v; want the rest and Done", chunk.Data, chunk.Done)
		}
		chunk, err = s.ReadLog(ctx, "ws", run.ID, log, 0, 3)
		mustOK(t, err, "ReadLog(0, 3)")
		if chunk.Done || !bytes.Equal(chunk.Data, full[:3]) {
			t.Errorf("partial ReadLog after the run ended = %q, Done %v; want 3 bytes and not Done (more to read)", chunk.Data, chunk.Done)
		}
	})
}

func testSnapshots(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	entries := []atelier.SnapshotEntry{
		{Path: "train.py", Digest: digestOf("print(1)"), Size: 8, Executable: true},
		{Path: "data/config.yaml", Digest: digestOf("a: 1"), Size: 4},
	}
	id, size, err := atelier.NormalizeSnapshot(entries)
	mustOK(t, err, "NormalizeSnapshot")
	snap := &atelier.Snapshot{ID: id, Workspace: "ws", Size: size, FileCount: len(entries), Entries: entries}
	mustOK(t, s.PutSnapshot(ctx, snap), "PutSnapshot")
	first, err := s.FindSnapshot(ctx, "ws", id)
	mustOK(t, err, "FindSnapshot")
	want := &atelier.Snapshot{ID: id, Workspace: "ws", Size: 12, FileCount: 2, Entries: entries}
	if diff := cmp.Diff(want, first, cmpopts.IgnoreFields(atelier.Snapshot{}, "CreatedAt")); diff != "" {
		t.Errorf("FindSnapshot (-want +got):\n%s", diff)
	}
	if time.Since(first.CreatedAt) > time.Minute {
		t.Errorf("CreatedAt = %v, want about now", first.CreatedAt)
	}

	time.Sleep(2 * time.Millisecond)
	again := &atelier.Snapshot{ID: id, Workspace: "ws", Size: size, FileCount: len(entries), Entries: entries}
	mustOK(t, s.PutSnapshot(ctx, again), "PutSnapshot(same id)")
	second, err := s.FindSnapshot(ctx, "ws", id)
	mustOK(t, err, "FindSnapshot")
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("putting the same snapshot again changed it (-first +second):\n%s", diff)
	}

	_, err = s.FindSnapshot(ctx, "ws", digestOf("missing"))
	wantCode(t, err, atelier.ENOTFOUND, "FindSnapshot(missing)")
	_, err = s.FindSnapshot(ctx, "other", id)
	wantCode(t, err, atelier.ENOTFOUND, "FindSnapshot(other workspace)")
	_, err = s.FindSnapshot(ctx, "nope", id)
	wantCode(t, err, atelier.ENOTFOUND, "FindSnapshot(missing workspace)")
	wantCode(t, s.PutSnapshot(ctx, &atelier.Snapshot{ID: id, Workspace: "nope", Entries: entries}), atelier.ENOTFOUND, "PutSnapshot(missing workspace)")

	// The same content in another workspace is that workspace's own snapshot.
	mustOK(t, s.PutSnapshot(ctx, &atelier.Snapshot{ID: id, Workspace: "other", Size: size, FileCount: 2, Entries: entries}), "PutSnapshot(other)")
	if got, err := s.FindSnapshot(ctx, "other", id); err != nil || got.Workspace != "other" || len(got.Entries) != 2 {
		t.Errorf("FindSnapshot(other) = %+v, %v", got, err)
	}
}

func testActivities(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	t0 := time.UnixMilli(1714521600000).UTC()
	acts := []*atelier.Activity{
		{ID: "act-1", Workspace: "ws", Kind: "run", Target: "run-1", Status: atelier.ActivityRunning, Percent: 10, Message: "starting",
			StartedAt: t0, UpdatedAt: t0},
		{ID: "act-2", Workspace: "ws", Kind: "image.build", Target: "img", Status: atelier.ActivitySucceeded, Percent: 100,
			StartedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(2 * time.Minute), EndedAt: ptr(t0.Add(2 * time.Minute))},
		{ID: "act-3", Workspace: "ws", Kind: "run", Target: "run-2", Status: atelier.ActivityQueued,
			StartedAt: t0.Add(2 * time.Minute), UpdatedAt: t0.Add(2 * time.Minute)},
		{ID: "act-4", Workspace: "other", Kind: "run", Target: "run-1", Status: atelier.ActivityRunning,
			StartedAt: t0, UpdatedAt: t0},
	}
	for _, a := range acts {
		mustOK(t, s.PutActivity(ctx, a), "PutActivity(%s)", a.ID)
	}
	// Upsert: the run ends.
	upd := *acts[0]
	upd.Status, upd.Percent, upd.Message, upd.Error = atelier.ActivityFailed, 55, "failed", "exit code 1"
	upd.UpdatedAt, upd.EndedAt = t0.Add(3*time.Minute), ptr(t0.Add(3*time.Minute))
	mustOK(t, s.PutActivity(ctx, &upd), "PutActivity(update)")
	acts[0] = &upd

	got, err := s.FindActivity(ctx, "ws", "act-1")
	mustOK(t, err, "FindActivity")
	if diff := cmp.Diff(&upd, got, approxTime); diff != "" {
		t.Errorf("FindActivity after upsert (-want +got):\n%s", diff)
	}
	_, err = s.FindActivity(ctx, "other", "act-1")
	wantCode(t, err, atelier.ENOTFOUND, "FindActivity(other workspace)")
	_, err = s.FindActivity(ctx, "ws", "act-9")
	wantCode(t, err, atelier.ENOTFOUND, "FindActivity(missing)")
	wantCode(t, s.PutActivity(ctx, &atelier.Activity{ID: "act-x", Workspace: "nope", Kind: "run", Status: atelier.ActivityQueued,
		StartedAt: t0, UpdatedAt: t0}), atelier.ENOTFOUND, "PutActivity(missing workspace)")

	ids := func(list []*atelier.Activity) []string {
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.ID
		}
		return sorted(out)
	}
	for _, tc := range []struct {
		name string
		ws   string
		f    atelier.ActivityFilter
		want []string
	}{
		{"all", "ws", atelier.ActivityFilter{}, []string{"act-1", "act-2", "act-3"}},
		{"kind", "ws", atelier.ActivityFilter{Kind: "run"}, []string{"act-1", "act-3"}},
		{"target", "ws", atelier.ActivityFilter{Target: "img"}, []string{"act-2"}},
		{"kind and target", "ws", atelier.ActivityFilter{Kind: "run", Target: "run-2"}, []string{"act-3"}},
		{"active", "ws", atelier.ActivityFilter{Active: true}, []string{"act-3"}},
		{"limit", "ws", atelier.ActivityFilter{Limit: 2}, nil},
		{"other workspace", "other", atelier.ActivityFilter{}, []string{"act-4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListActivities(ctx, tc.ws, tc.f)
			mustOK(t, err, "ListActivities(%+v)", tc.f)
			if tc.f.Limit > 0 {
				if len(list) != tc.f.Limit {
					t.Errorf("ListActivities(limit %d) = %d activities", tc.f.Limit, len(list))
				}
				return
			}
			if diff := cmp.Diff(tc.want, ids(list)); diff != "" {
				t.Errorf("ListActivities(%+v) (-want +got):\n%s", tc.f, diff)
			}
			for _, a := range list {
				if a.ID == "act-1" {
					if diff := cmp.Diff(&upd, a, approxTime); diff != "" {
						t.Errorf("listed act-1 (-want +got):\n%s", diff)
					}
				}
			}
		})
	}
	_, err = s.ListActivities(ctx, "nope", atelier.ActivityFilter{})
	wantCode(t, err, atelier.ENOTFOUND, "ListActivities(missing workspace)")
}

func testTokens(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	t0 := time.UnixMilli(1714521600000).UTC()
	user := &atelier.Token{ID: "tok-1", Name: "laptop", Kind: atelier.PrincipalUser, Owner: "ana", CreatedAt: t0,
		ExpiresAt: ptr(t0.Add(24 * time.Hour)), Secret: "secret-1", Hash: digestOf("secret-1")}
	runTok := &atelier.Token{ID: "tok-2", Kind: atelier.PrincipalRun, Owner: "ana", Workspace: "ws", RunID: "run-1",
		CreatedAt: t0.Add(time.Second), Hash: digestOf("secret-2")}
	for _, tok := range []*atelier.Token{user, runTok} {
		mustOK(t, s.CreateToken(ctx, tok), "CreateToken(%s)", tok.ID)
	}
	wantCode(t, s.CreateToken(ctx, &atelier.Token{ID: "tok-3", Kind: atelier.PrincipalUser, CreatedAt: t0}), atelier.EINVALID, "CreateToken(no hash)")
	wantCode(t, s.CreateToken(ctx, &atelier.Token{ID: "tok-1", Kind: atelier.PrincipalUser, Owner: "bob", CreatedAt: t0, Hash: digestOf("secret-9")}),
		atelier.ECONFLICT, "CreateToken(a taken id)")
	wantCode(t, s.CreateToken(ctx, &atelier.Token{ID: "tok-4", Kind: atelier.PrincipalUser, Owner: "bob", CreatedAt: t0, Hash: digestOf("secret-1")}),
		atelier.ECONFLICT, "CreateToken(a taken hash)")

	got, err := s.FindTokenByHash(ctx, digestOf("secret-1"))
	mustOK(t, err, "FindTokenByHash")
	want := *user
	want.Secret = "" // only the hash is stored
	if diff := cmp.Diff(&want, got, approxTime); diff != "" {
		t.Errorf("FindTokenByHash (-want +got):\n%s", diff)
	}
	got, err = s.FindTokenByHash(ctx, digestOf("secret-2"))
	mustOK(t, err, "FindTokenByHash(run token)")
	if diff := cmp.Diff(runTok, got, approxTime); diff != "" {
		t.Errorf("FindTokenByHash(run token) (-want +got):\n%s", diff)
	}
	_, err = s.FindTokenByHash(ctx, digestOf("unknown"))
	wantCode(t, err, atelier.EUNAUTHORIZED, "FindTokenByHash(unknown)")

	list, err := s.ListTokens(ctx)
	mustOK(t, err, "ListTokens")
	var listed []string
	for _, tok := range list {
		listed = append(listed, tok.ID)
		if tok.Secret != "" {
			t.Errorf("ListTokens returns the secret of %s", tok.ID)
		}
	}
	if diff := cmp.Diff([]string{"tok-1", "tok-2"}, sorted(listed)); diff != "" {
		t.Errorf("ListTokens (-want +got):\n%s", diff)
	}

	mustOK(t, s.RevokeToken(ctx, "tok-1"), "RevokeToken")
	got, err = s.FindTokenByHash(ctx, digestOf("secret-1"))
	mustOK(t, err, "FindTokenByHash(revoked)")
	if got.RevokedAt == nil || time.Since(*got.RevokedAt) > time.Minute {
		t.Errorf("revoked token has RevokedAt %v, want about now", got.RevokedAt)
	}
	if got, _ := s.FindTokenByHash(ctx, digestOf("secret-2")); got == nil || got.RevokedAt != nil {
		t.Errorf("revoking tok-1 revoked tok-2: %+v", got)
	}
	wantCode(t, s.RevokeToken(ctx, "tok-1"), atelier.ENOTFOUND, "RevokeToken(twice)")
	wantCode(t, s.RevokeToken(ctx, "tok-9"), atelier.ENOTFOUND, "RevokeToken(unknown)")
}
