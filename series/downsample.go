package series

import (
	"math"
	"math/bits"
)

// Downsampled is a series reduced to buckets of steps. For each non-empty bucket, Steps,
// Timestamps and Last are those of its last point, and Min and Max the extremes of its values
// ignoring NaN (NaN if all are NaN), so a spike survives however far the series is reduced.
type Downsampled struct {
	Steps, Timestamps []int64
	Last, Min, Max    []float64
}

// Len returns the number of buckets.
func (d *Downsampled) Len() int { return len(d.Steps) }

// Downsample reduces p, sorted by step, to at most maxPoints buckets: the step range
// [first, last] is split into maxPoints buckets of equal width, and each non-empty one yields a
// point. If p has no more than maxPoints points (or maxPoints ≤ 0), every point is its own bucket.
// It is one pass over p.
func Downsample(p Points, maxPoints int) (d Downsampled) {
	n := p.Len()
	if maxPoints <= 0 || n <= maxPoints {
		d = Downsampled{
			Steps:      make([]int64, n),
			Timestamps: make([]int64, n),
			Last:       make([]float64, n),
			Min:        make([]float64, n),
			Max:        make([]float64, n),
		}
		copy(d.Steps, p.Steps)
		copy(d.Timestamps, p.Timestamps)
		copy(d.Last, p.Values)
		copy(d.Min, p.Values)
		copy(d.Max, p.Values)
		return d
	}
	d = Downsampled{
		Steps:      make([]int64, 0, maxPoints),
		Timestamps: make([]int64, 0, maxPoints),
		Last:       make([]float64, 0, maxPoints),
		Min:        make([]float64, 0, maxPoints),
		Max:        make([]float64, 0, maxPoints),
	}

	// Point i is in bucket floor(off·m / span), where off = step − first and span = last − first + 1.
	// Rather than divide per point, walk the buckets: the point is past the current bucket b while
	// off·m ≥ (b+1)·span. Products are 128-bit, so any int64 step range works (span may be 2⁶⁴).
	first, last := p.Steps[0], p.Steps[n-1]
	m := uint64(maxPoints)
	spanLo, spanHi := bits.Add64(uint64(last-first), 1, 0)
	endLo, endHi := spanLo, spanHi // (b+1)·span for the current bucket b

	mn, mx := math.NaN(), math.NaN()
	flush := func(i int) { // emit the bucket whose last point is i
		d.Steps = append(d.Steps, p.Steps[i])
		d.Timestamps = append(d.Timestamps, p.Timestamps[i])
		d.Last = append(d.Last, p.Values[i])
		d.Min = append(d.Min, mn)
		d.Max = append(d.Max, mx)
		mn, mx = math.NaN(), math.NaN()
	}
	// b counts buckets up to the last, so unsorted input cannot walk past it (or loop for long):
	// its stray points just land in the current bucket.
	for i, b := 0, uint64(0); i < n; i++ {
		offHi, offLo := bits.Mul64(uint64(p.Steps[i]-first), m)
		if b < m-1 && (offHi > endHi || offHi == endHi && offLo >= endLo) {
			flush(i - 1)
			// Skip empty buckets; over the whole pass this is at most m steps.
			for b < m-1 && (offHi > endHi || offHi == endHi && offLo >= endLo) {
				var c uint64
				endLo, c = bits.Add64(endLo, spanLo, 0)
				endHi += spanHi + c
				b++
			}
		}
		v := p.Values[i]
		// Written so that NaN never replaces a number, but a number replaces the initial NaN.
		if v < mn || mn != mn {
			mn = v
		}
		if v > mx || mx != mx {
			mx = v
		}
	}
	flush(n - 1)
	return d
}
