package edge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// recordingHandler keeps the messages logged to it.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (h *recordingHandler) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.msgs
	h.msgs = nil
	return m
}

// A full disk is one episode, logged when it begins and when it ends, however many writes
// fail in it; writes that store while others still fail (a disk on the edge) do not end it.
func TestStorageCondition(t *testing.T) {
	logs := &recordingHandler{}
	c := edge.NewStorageCondition(slog.New(logs))
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Now = func() time.Time { return now }
	full := atelier.StorageFull(fmt.Errorf("write object: %w", syscall.ENOSPC))
	step := func(d time.Duration, errs ...error) {
		t.Helper()
		now = now.Add(d)
		for _, err := range errs {
			c.Observe(err)
		}
	}
	check := func(want bool, wantSince time.Time, wantLogs ...string) {
		t.Helper()
		if got, since := c.Full(); got != want || !since.Equal(wantSince) {
			t.Errorf("Full() = %v, %v; want %v, %v", got, since, want, wantSince)
		}
		got := logs.take()
		if len(got) != len(wantLogs) {
			t.Fatalf("logged %q, want %q", got, wantLogs)
		}
		for i := range got {
			if !strings.Contains(got[i], wantLogs[i]) {
				t.Errorf("logged %q, want %q", got[i], wantLogs[i])
			}
		}
	}

	step(0, nil, atelier.Errorf(atelier.EINVALID, "bad"), errors.New("internal"))
	check(false, time.Time{})
	began := now.Add(time.Second)
	step(time.Second, full, full, full)
	check(true, began, "ERROR the server's storage is full")
	step(time.Second, nil, full, nil, full) // small writes pass, large ones fail: still full
	check(true, began)
	step(c.Quiet-time.Millisecond, nil) // too soon after the last refusal
	check(true, began)
	step(time.Millisecond, atelier.Errorf(atelier.ENOTFOUND, "gone")) // says nothing about the storage
	check(true, began)
	step(0, nil)
	check(false, began, "INFO the server's storage is no longer full")
	step(time.Hour, nil, nil)
	check(false, began)
	began2 := now.Add(time.Minute)
	step(time.Minute, full)
	check(true, began2, "ERROR the server's storage is full")

	var nilCond *edge.StorageCondition
	if full, _ := nilCond.Full(); full {
		t.Errorf("a nil condition is full")
	}
}
