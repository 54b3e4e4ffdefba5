package sqlite

import (
	"container/list"
	"strconv"
	"sync"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/series"
)

// seriesCache keeps recently read series decoded and merged, so re-reading one (a chart
// refreshing, zooming or downsampling) costs no database read, and recent downsampled answers,
// so re-reading a series too large to keep whole (a chart of 5,000,000 points refreshing) costs
// neither a read nor a pass over its points. An entry is valid while the series' point count
// is unchanged: series only grow, so a new point changes the count.
type seriesCache struct {
	mu      sync.Mutex
	max     int64 // bytes
	size    int64
	order   *list.List // front: most recently used
	entries map[string]*list.Element
}

// seriesEntry holds either a whole series (points) or one downsampled answer (view).
type seriesEntry struct {
	key    string
	count  int64
	points series.Points
	view   *atelier.Series
	bytes  int64
}

// pointBytes is the memory of a decoded point: a step, a timestamp and a value.
const pointBytes = 24

func newSeriesCache(maxBytes int64) *seriesCache {
	return &seriesCache{max: maxBytes, order: list.New(), entries: map[string]*list.Element{}}
}

// fits tells whether a series of count points may be cached whole: one series may not push
// everything else out.
func (c *seriesCache) fits(count int64) bool { return count*pointBytes <= c.max/4 }

func (c *seriesCache) lookup(key string, count int64) (*seriesEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*seriesEntry)
	if e.count != count {
		c.removeLocked(el)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e, true
}

func (c *seriesCache) get(key string, count int64) (series.Points, bool) {
	e, ok := c.lookup(key, count)
	if !ok || e.view != nil {
		return series.Points{}, false
	}
	return e.points, true
}

// put caches a series; callers must not modify p afterwards (readers share it).
func (c *seriesCache) put(key string, count int64, p series.Points) {
	c.add(&seriesEntry{key: key, count: count, points: p, bytes: int64(p.Len()) * pointBytes})
}

// viewKey is the key of the answer to q (a downsampling query) on the series at key.
func viewKey(key string, q atelier.HistoryQuery) string {
	b := append([]byte(key), 0)
	for _, bound := range []*int64{q.MinStep, q.MaxStep} {
		if bound == nil {
			b = append(b, '*')
		} else {
			b = strconv.AppendInt(b, *bound, 10)
		}
		b = append(b, 0)
	}
	return string(strconv.AppendInt(b, int64(q.MaxPoints), 10))
}

// getView returns a copy of a cached answer, which the caller may modify.
func (c *seriesCache) getView(key string, count int64) (*atelier.Series, bool) {
	e, ok := c.lookup(key, count)
	if !ok || e.view == nil {
		return nil, false
	}
	return cloneSeries(e.view), true
}

// putView caches a copy of the answer s.
func (c *seriesCache) putView(key string, count int64, s *atelier.Series) {
	n := int64(len(s.Steps))
	c.add(&seriesEntry{key: key, count: count, view: cloneSeries(s), bytes: 256 + int64(len(key)) + n*(8+8+3*8)})
}

func (c *seriesCache) add(e *seriesEntry) {
	if e.bytes > c.max/4 {
		return // one series may not push everything else out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.removeLocked(el)
	}
	c.entries[e.key] = c.order.PushFront(e)
	c.size += e.bytes
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

func cloneSeries(s *atelier.Series) *atelier.Series {
	c := *s
	c.Steps = clone(s.Steps)
	c.Timestamps = clone(s.Timestamps)
	c.Values, c.Min, c.Max = clone(s.Values), clone(s.Min), clone(s.Max)
	return &c
}

// clone copies xs, keeping nil nil and empty empty (they encode differently).
func clone[T any](xs []T) []T {
	if xs == nil {
		return nil
	}
	return append(make([]T, 0, len(xs)), xs...)
}
