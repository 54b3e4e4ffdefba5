package edge

import (
	"log/slog"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.StorageMonitor = (*StorageCondition)(nil)

// StorageCondition follows whether the server's storage is full, from how the writes the front
// doors serve end: it turns full at the first write refused for lack of space (ENOSPACE), and
// back to ok at a write that stored once none was refused for Quiet (so a disk on the edge,
// where small writes pass and large ones fail, is one episode, not one a request). It logs
// each change once; the health check reports it.
type StorageCondition struct {
	log *slog.Logger
	// Now is the clock; tests pin it.
	Now func() time.Time
	// Quiet is how long no write must have been refused before a stored one ends the episode.
	Quiet time.Duration

	mu       sync.Mutex
	full     bool
	since    time.Time // when the episode began
	lastFail time.Time // the last refused write
	refused  int       // writes refused in the episode
}

// NewStorageCondition returns a condition that logs its changes to log.
func NewStorageCondition(log *slog.Logger) *StorageCondition {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StorageCondition{log: log, Now: time.Now, Quiet: 10 * time.Second}
}

// Observe takes how a write ended: nil when it stored, its error otherwise (errors other than
// ENOSPACE say nothing about the storage).
func (c *StorageCondition) Observe(err error) {
	if err != nil && atelier.ErrorCode(err) != atelier.ENOSPACE {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	switch {
	case err != nil && !c.full:
		c.full, c.since, c.lastFail, c.refused = true, now, now, 1
		// The cause (which file or database, what the system said) is told here only.
		c.log.Error("the server's storage is full: writes fail until space is freed", "err", err)
	case err != nil:
		c.lastFail = now
		c.refused++
	case c.full && now.Sub(c.lastFail) >= c.Quiet:
		c.full = false
		c.log.Info("the server's storage is no longer full: writes succeed again",
			"full_for", now.Sub(c.since).Round(time.Second), "refused_writes", c.refused)
	}
}

// Full reports whether the storage is full, and since when.
func (c *StorageCondition) Full() (bool, time.Time) {
	if c == nil {
		return false, time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.full, c.since
}
