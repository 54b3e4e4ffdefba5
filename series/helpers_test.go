package series

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bitsEqual compares floats by their bits, so NaN payloads and -0 count.
var bitsEqual = cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })

// MustEqualPoints fails tb unless got and want hold the same points bit for bit.
func MustEqualPoints(tb testing.TB, got, want Points) {
	tb.Helper()
	if samePoints(got, want) {
		return // checked by hand first: cmp is slow, and fuzzing calls this a lot
	}
	if diff := cmp.Diff(want, got, bitsEqual); diff != "" {
		tb.Errorf("points differ (-want +got):\n%s", diff)
	}
}

// samePoints reports whether a and b hold the same points bit for bit; nil and empty are the same.
func samePoints(a, b Points) bool {
	if a.Len() != b.Len() || len(a.Timestamps) != len(b.Timestamps) || len(a.Values) != len(b.Values) {
		return false
	}
	for i := range a.Steps {
		if a.Steps[i] != b.Steps[i] || a.Timestamps[i] != b.Timestamps[i] ||
			math.Float64bits(a.Values[i]) != math.Float64bits(b.Values[i]) {
			return false
		}
	}
	return true
}

// sequential returns n points as a training loop logs them: steps 0.., a point every 10 ms.
func sequential(n int) Points {
	r := rand.New(rand.NewPCG(1, 2))
	p := Points{make([]int64, n), make([]int64, n), make([]float64, n)}
	loss := 2.5
	for i := range n {
		loss *= 0.99999
		p.Steps[i] = int64(i)
		p.Timestamps[i] = 1_700_000_000_000 + int64(i)*10 + r.Int64N(3)
		p.Values[i] = loss + r.NormFloat64()*0.01
	}
	return p
}

// hostile returns n points exercising every corner of the format: out-of-order steps, negative
// and huge deltas, the int64 extremes, NaN payloads, infinities and -0.
func hostile(r *rand.Rand, n int) Points {
	var p Points
	var step, ts int64
	for range n {
		switch r.IntN(8) {
		case 0:
			step -= r.Int64N(1000)
		case 1:
			step = int64(r.Uint64()) // anywhere: a huge jump either way
		case 2:
			step = []int64{math.MinInt64, math.MaxInt64, 0, -1}[r.IntN(4)]
		default:
			step++
		}
		switch r.IntN(4) {
		case 0:
			ts = int64(r.Uint64())
		case 1:
			ts -= r.Int64N(100)
		default:
			ts += r.Int64N(100)
		}
		p.Append(step, ts, hostileFloat(r))
	}
	return p
}

func hostileFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.Float64frombits(0x7FF0_0000_0000_0001 | r.Uint64()) // NaN with a random payload and sign
	case 1:
		return math.Inf(1 - 2*r.IntN(2))
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return math.Float64frombits(r.Uint64())
	default:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	}
}

// concat concatenates without sorting.
func concat(ps ...Points) Points {
	var out Points
	for _, p := range ps {
		for i := range p.Len() {
			out.Append(p.Steps[i], p.Timestamps[i], p.Values[i])
		}
	}
	return out
}
