package sqlite_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/atelier-ml/atelier/storetest"
	"github.com/atelier-ml/atelier/testdisk"
)

// A store whose disk fills: writes fail with ENOSPACE (concurrent ones too, which share a
// transaction), none is stored in part, and once space is freed writes succeed again and
// everything stored before is intact.
func TestDiskFull(t *testing.T) {
	dir := testdisk.MustSmall(t, "8m")
	path := filepath.Join(dir, "atelier.db")
	db := MustOpen(t, path)
	ctx := storetest.Context(t)
	storetest.MustCreateWorkspace(t, db, "ws")
	run := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "e", Params: map[string]string{"lr": "0.1"}})
	storetest.MustLogMetrics(t, db, "ws", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Value: 0.5}}})
	var stored bytes.Buffer // the log as it must read back
	appendLog := func(data []byte) error {
		_, err := db.AppendLog(ctx, "ws", run.ID, "logs/out.txt", data)
		if err == nil {
			stored.Write(data)
		}
		return err
	}
	if err := appendLog([]byte("before the disk filled\n")); err != nil {
		t.Fatal(err)
	}

	filler := testdisk.Fill(t, dir)
	// The WAL may still have room for a while: write until a write is refused.
	chunk := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("%06d", i)), 64<<10/6) }
	var err error
	for i := 0; err == nil; i++ {
		if i == 200 {
			t.Fatalf("200 appends of 64 KiB on a full 8 MiB disk succeeded")
		}
		err = appendLog(chunk(i))
	}
	if atelier.ErrorCode(err) != atelier.ENOSPACE || atelier.ErrorMessage(err) != atelier.StorageFullMessage {
		t.Fatalf("append on a full disk: %v (code %q), want ENOSPACE", err, atelier.ErrorCode(err))
	}
	// Concurrent writes share the writer's transactions: each ends stored whole or refused
	// with ENOSPACE, never in part.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			data := chunk(1000 + i)
			_, err := db.AppendLog(ctx, "ws", run.ID, "logs/out.txt", data)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored.Write(data) // the order of concurrent appends is the store's: checked below by content
			case atelier.ErrorCode(err) != atelier.ENOSPACE:
				t.Errorf("concurrent append on a full disk: %v (code %q), want ENOSPACE", err, atelier.ErrorCode(err))
			}
		})
	}
	wg.Wait()
	if err := db.LogMetrics(ctx, "ws", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "acc", Value: 1}}}); err != nil &&
		atelier.ErrorCode(err) != atelier.ENOSPACE {
		t.Errorf("LogMetrics on a full disk: %v, want ENOSPACE", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := appendLog([]byte("after space was freed\n")); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	storetest.MustLogMetrics(t, db, "ws", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Value: 0.25}}})

	// Everything acknowledged is there, and nothing else, in this store and after a reopen.
	check := func(db *sqlite.DB) {
		t.Helper()
		chunk, err := db.ReadLog(ctx, "ws", run.ID, "logs/out.txt", 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if !sameChunks(chunk.Data, stored.Bytes()) {
			t.Errorf("the log holds %d bytes, want the %d acknowledged", len(chunk.Data), stored.Len())
		}
		if got := storetest.MustFindRun(t, db, "ws", run.ID); got.Params["lr"] != "0.1" {
			t.Errorf("params after the full disk: %v", got.Params)
		}
		s := storetest.MustHistory(t, db, "ws", run.ID, "loss", atelier.HistoryQuery{})
		if len(s.Values) != 2 || s.Values[0] != 0.5 || s.Values[1] != 0.25 {
			t.Errorf("loss after the full disk: %v, want [0.5 0.25]", s.Values)
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check(MustOpen(t, path))
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var integrity string
	if err := raw.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q, %v", integrity, err)
	}
}

// sameChunks reports whether got holds the same 64 KiB chunks and lines as want, in any order
// (concurrent appends commit in the store's order).
func sameChunks(got, want []byte) bool {
	if len(got) != len(want) {
		return false
	}
	count := func(b []byte) map[string]int {
		m := map[string]int{}
		for len(b) > 0 {
			n := bytes.IndexByte(b, '\n') + 1
			if n == 0 || n > 64<<10 {
				n = min(len(b), 64<<10/6*6)
			}
			m[string(b[:n])]++
			b = b[n:]
		}
		return m
	}
	g, w := count(got), count(want)
	if len(g) != len(w) {
		return false
	}
	for k, n := range w {
		if g[k] != n {
			return false
		}
	}
	return true
}
