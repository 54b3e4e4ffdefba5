// Package series is the storage format of scalar metric series.
//
// A run's series is stored as a list of chunks (one per logging batch) rather than one row per
// point: a chunk encodes thousands of points in one blob, so ingest is one insert per batch and a
// full read is a few blob reads and a decode at memory speed. The store keeps each chunk's
// Summary in columns, so a windowed query skips chunks outside its step range without decoding.
package series

import "sort"

// Points is a run of metric points in columns; the three columns always have the same length.
type Points struct {
	Steps      []int64
	Timestamps []int64 // milliseconds since the epoch
	Values     []float64
}

// Len returns the number of points.
func (p *Points) Len() int { return len(p.Steps) }

// Append adds one point.
func (p *Points) Append(step, timestamp int64, value float64) {
	p.Steps = append(p.Steps, step)
	p.Timestamps = append(p.Timestamps, timestamp)
	p.Values = append(p.Values, value)
}

// slice returns points [i, j), sharing p's memory.
func (p Points) slice(i, j int) Points {
	return Points{p.Steps[i:j:j], p.Timestamps[i:j:j], p.Values[i:j:j]}
}

// Summary describes a chunk, so the store can keep it in columns: the step range lets a windowed
// query skip chunks, and the last point gives a metric's latest value without decoding.
type Summary struct {
	Count            int
	MinStep, MaxStep int64
	// FirstTimestamp and LastTimestamp are those of the first and last points in logging order.
	FirstTimestamp, LastTimestamp int64
	// LastStep and LastValue are those of the last point in logging order.
	LastStep  int64
	LastValue float64
}

// Summarize returns p's summary; it is the zero Summary for no points.
func Summarize(p Points) Summary {
	n := p.Len()
	if n == 0 {
		return Summary{}
	}
	s := Summary{
		Count:          n,
		MinStep:        p.Steps[0],
		MaxStep:        p.Steps[0],
		FirstTimestamp: p.Timestamps[0],
		LastTimestamp:  p.Timestamps[n-1],
		LastStep:       p.Steps[n-1],
		LastValue:      p.Values[n-1],
	}
	for _, st := range p.Steps[1:] {
		s.MinStep = min(s.MinStep, st)
		s.MaxStep = max(s.MaxStep, st)
	}
	return s
}

// Merge concatenates chunks given in logging order and returns the points sorted by step. The sort
// is stable: a point logged later with the same step comes after the earlier one, so "last value
// of a step" means the last one logged. A single already-sorted chunk is returned as is (sharing
// its memory); otherwise the result is newly allocated. So a reader that Decodes every chunk into
// one Points and merges that as a single chunk copies nothing in the common case.
func Merge(chunks []Points) Points {
	if len(chunks) == 1 && isSorted(chunks[0].Steps) {
		return chunks[0]
	}
	n := 0
	for _, c := range chunks {
		n += c.Len()
	}
	out := Points{
		Steps:      make([]int64, 0, n),
		Timestamps: make([]int64, 0, n),
		Values:     make([]float64, 0, n),
	}
	for _, c := range chunks {
		out.Steps = append(out.Steps, c.Steps...)
		out.Timestamps = append(out.Timestamps, c.Timestamps...)
		out.Values = append(out.Values, c.Values...)
	}
	// Steps are logged in order almost always; checking is one pass, sorting is many.
	if isSorted(out.Steps) {
		return out
	}
	return sortStable(out)
}

func isSorted(steps []int64) bool {
	for i := 1; i < len(steps); i++ {
		if steps[i] < steps[i-1] {
			return false
		}
	}
	return true
}

// sortStable sorts p by step, keeping logging order within a step. It is a natural merge sort:
// an unsorted series is usually a few sorted runs (a run resumed from a checkpoint logs its
// steps again), so merging the runs pairwise takes a pass or two where sorting from scratch
// would take many. p's memory is reused.
func sortStable(p Points) Points {
	n := p.Len()
	bounds := []int{0} // run k is [bounds[k], bounds[k+1])
	for i := 1; i < n; i++ {
		if p.Steps[i] < p.Steps[i-1] {
			bounds = append(bounds, i)
		}
	}
	bounds = append(bounds, n)
	src, dst := p, Points{make([]int64, n), make([]int64, n), make([]float64, n)}
	for len(bounds) > 2 {
		merged := bounds[:0] // in place: entry k/2 is written after entries up to k+2 are read
		for k := 0; k < len(bounds)-1; k += 2 {
			lo, mid, hi := bounds[k], bounds[k+1], bounds[min(k+2, len(bounds)-1)]
			mergeRuns(dst, src, lo, mid, hi)
			merged = append(merged, lo)
		}
		bounds = append(merged, n)
		src, dst = dst, src
	}
	return src
}

// mergeRuns merges the sorted runs src[lo:mid] and src[mid:hi] into dst[lo:hi], taking from the
// first run on equal steps so the merge is stable.
func mergeRuns(dst, src Points, lo, mid, hi int) {
	i, j, k := lo, mid, lo
	for ; i < mid && j < hi; k++ {
		from := i
		if src.Steps[j] < src.Steps[i] {
			from = j
			j++
		} else {
			i++
		}
		dst.Steps[k] = src.Steps[from]
		dst.Timestamps[k] = src.Timestamps[from]
		dst.Values[k] = src.Values[from]
	}
	// One run is used up: copy the rest of the other in bulk.
	rest := src.slice(i, mid)
	if i == mid {
		rest = src.slice(j, hi)
	}
	copy(dst.Steps[k:], rest.Steps)
	copy(dst.Timestamps[k:], rest.Timestamps)
	copy(dst.Values[k:], rest.Values)
}

// Window returns the points of p (sorted by step) with minStep ≤ step ≤ maxStep; a nil bound
// is open. The result shares p's memory.
func Window(p Points, minStep, maxStep *int64) Points {
	lo, hi := 0, p.Len()
	if minStep != nil {
		lo = sort.Search(hi, func(i int) bool { return p.Steps[i] >= *minStep })
	}
	if maxStep != nil {
		hi = lo + sort.Search(hi-lo, func(i int) bool { return p.Steps[lo+i] > *maxStep })
	}
	return p.slice(lo, hi)
}
