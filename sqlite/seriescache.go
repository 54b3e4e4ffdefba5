package sqlite

import (
	"container/list"
	"sync"

	"github.com/atelier-ml/atelier/series"
)

// maxCachedSeriesPoints is the largest series kept decoded in memory.
const maxCachedSeriesPoints = 10_000_000

// seriesCache keeps recently read series decoded and merged, so re-reading one (a chart
// refreshing, zooming or downsampling) costs no database read. An entry is valid while the
// series' point count is unchanged: series only grow, so a new point changes the count.
type seriesCache struct {
	mu      sync.Mutex
	max     int64 // bytes
	size    int64
	order   *list.List // front: most recently used
	entries map[string]*list.Element
}

type seriesEntry struct {
	key    string
	count  int64
	points series.Points
	bytes  int64
}

func newSeriesCache(maxBytes int64) *seriesCache {
	return &seriesCache{max: maxBytes, order: list.New(), entries: map[string]*list.Element{}}
}

func (c *seriesCache) get(key string, count int64) (series.Points, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return series.Points{}, false
	}
	e := el.Value.(*seriesEntry)
	if e.count != count {
		c.removeLocked(el)
		return series.Points{}, false
	}
	c.order.MoveToFront(el)
	return e.points, true
}

// put caches a series; callers must not modify p afterwards (readers share it).
func (c *seriesCache) put(key string, count int64, p series.Points) {
	bytes := int64(p.Len()) * 24
	if bytes > c.max/4 {
		return // one series may not push everything else out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
	c.entries[key] = c.order.PushFront(&seriesEntry{key: key, count: count, points: p, bytes: bytes})
	c.size += bytes
	for c.size > c.max && c.order.Len() > 0 {
		c.removeLocked(c.order.Back())
	}
}

func (c *seriesCache) removeLocked(el *list.Element) {
	e := el.Value.(*seriesEntry)
	c.order.Remove(el)
	delete(c.entries, e.key)
	c.size -= e.bytes
}
