package datastore

import (
	"testing"
	"time"
)

func TestDigestCache(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewDigestCache(2)
	c.now = func() time.Time { return now }
	old := fileID{size: 10, mod: now.Add(-time.Hour), ino: 7, changed: now.Add(-time.Hour).UnixNano()}
	c.put("d\x00a", old, "sum-a")
	if got := c.get("d\x00a", old); got != "sum-a" {
		t.Errorf("get = %q, want the cached digest", got)
	}
	for name, id := range map[string]fileID{
		"size":     {size: 11, mod: old.mod, ino: 7, changed: old.changed},
		"mod time": {size: 10, mod: old.mod.Add(time.Nanosecond), ino: 7, changed: old.changed},
		"inode":    {size: 10, mod: old.mod, ino: 8, changed: old.changed},
		"changed":  {size: 10, mod: old.mod, ino: 7, changed: old.changed + 1},
	} {
		if got := c.get("d\x00a", id); got != "" {
			t.Errorf("another %s: get = %q, want nothing", name, got)
		}
	}
	// A file changed within the racy window is not cached: a rewrite in the same tick would
	// keep every timestamp.
	for name, id := range map[string]fileID{
		"modified": {size: 1, mod: now.Add(-time.Second)},
		"changed":  {size: 1, mod: now.Add(-time.Hour), changed: now.Add(-time.Second).UnixNano()},
	} {
		c.put("d\x00"+name, id, "sum")
		if got := c.get("d\x00"+name, id); got != "" {
			t.Errorf("recently %s: cached %q", name, got)
		}
	}
	// Bounded: a third entry evicts one.
	c.put("d\x00b", old, "sum-b")
	c.put("d\x00c", old, "sum-c")
	if len(c.m) != 2 || c.get("d\x00c", old) != "sum-c" {
		t.Errorf("after 3 puts into a cache of 2: %d entries, c=%q", len(c.m), c.get("d\x00c", old))
	}
	var none *DigestCache
	none.put("x", old, "s")
	if none.get("x", old) != "" {
		t.Error("a nil cache returned a digest")
	}
}
