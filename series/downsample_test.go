package series

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// downsampleRef is the definition Downsample implements, written plainly: point i goes to bucket
// floor((step−first)·m / (last−first+1)), computed exactly with big integers.
func downsampleRef(p Points, m int) Downsampled {
	var d Downsampled
	n := p.Len()
	first, last := p.Steps[0], p.Steps[n-1]
	span := new(big.Int).Sub(big.NewInt(last), big.NewInt(first))
	span.Add(span, big.NewInt(1))
	bucket := func(s int64) int64 {
		off := new(big.Int).Sub(big.NewInt(s), big.NewInt(first))
		off.Mul(off, big.NewInt(int64(m)))
		return off.Div(off, span).Int64()
	}
	for i := 0; i < n; {
		b := bucket(p.Steps[i])
		mn, mx := math.NaN(), math.NaN()
		j := i
		for ; j < n && bucket(p.Steps[j]) == b; j++ {
			if v := p.Values[j]; !math.IsNaN(v) {
				if math.IsNaN(mn) || v < mn {
					mn = v
				}
				if math.IsNaN(mx) || v > mx {
					mx = v
				}
			}
		}
		d.Steps = append(d.Steps, p.Steps[j-1])
		d.Timestamps = append(d.Timestamps, p.Timestamps[j-1])
		d.Last = append(d.Last, p.Values[j-1])
		d.Min = append(d.Min, mn)
		d.Max = append(d.Max, mx)
		i = j
	}
	return d
}

func withValues(p Points, values ...float64) Points {
	p.Values = values
	return p
}

func TestDownsample(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		p    Points
		m    int
		want Downsampled
	}{
		{"empty", Points{}, 10, Downsampled{Steps: []int64{}, Timestamps: []int64{}, Last: []float64{}, Min: []float64{}, Max: []float64{}}},
		{"fewer points than buckets", points(1, 5, 9), 3, Downsampled{
			Steps: []int64{1, 5, 9}, Timestamps: []int64{1000, 1001, 1002},
			Last: []float64{0, 1, 2}, Min: []float64{0, 1, 2}, Max: []float64{0, 1, 2},
		}},
		{"no limit", points(1, 5, 9), 0, Downsampled{
			Steps: []int64{1, 5, 9}, Timestamps: []int64{1000, 1001, 1002},
			Last: []float64{0, 1, 2}, Min: []float64{0, 1, 2}, Max: []float64{0, 1, 2},
		}},
		{"even buckets", withValues(points(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), 5, 1, 2, 8, 0, 0, 3, 3, 9, -1), 5, Downsampled{
			Steps: []int64{1, 3, 5, 7, 9}, Timestamps: []int64{1001, 1003, 1005, 1007, 1009},
			Last: []float64{1, 8, 0, 3, -1}, Min: []float64{1, 2, 0, 3, -1}, Max: []float64{5, 8, 0, 3, 9},
		}},
		{
			// 11 steps in 5 buckets: bucket = floor(off·5/11), so the first takes 0..2.
			"uneven buckets", points(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 5, Downsampled{
				Steps: []int64{2, 4, 6, 8, 10}, Timestamps: []int64{1002, 1004, 1006, 1008, 1010},
				Last: []float64{2, 4, 6, 8, 10}, Min: []float64{0, 3, 5, 7, 9}, Max: []float64{2, 4, 6, 8, 10},
			},
		},
		{"empty buckets are skipped", points(0, 1, 2, 1000), 2, Downsampled{
			Steps: []int64{2, 1000}, Timestamps: []int64{1002, 1003},
			Last: []float64{2, 3}, Min: []float64{0, 3}, Max: []float64{2, 3},
		}},
		{"repeated step keeps the last logged", withValues(points(5, 5, 5), 3, 1, 2), 1, Downsampled{
			Steps: []int64{5}, Timestamps: []int64{1002}, Last: []float64{2}, Min: []float64{1}, Max: []float64{3},
		}},
		{"NaN is ignored for min and max", withValues(points(0, 1, 2, 3, 4, 5), nan, 2, nan, nan, 7, nan), 3, Downsampled{
			Steps: []int64{1, 3, 5}, Timestamps: []int64{1001, 1003, 1005},
			Last: []float64{2, nan, nan}, Min: []float64{2, nan, 7}, Max: []float64{2, nan, 7},
		}},
		{"infinities count", withValues(points(0, 1, 2, 3), math.Inf(-1), 1, 2, math.Inf(1)), 1, Downsampled{
			Steps: []int64{3}, Timestamps: []int64{1003}, Last: []float64{math.Inf(1)}, Min: []float64{math.Inf(-1)}, Max: []float64{math.Inf(1)},
		}},
		{
			// The span is 2⁶⁴ steps: it does not fit in a uint64.
			"whole int64 range", points(math.MinInt64, 0, math.MaxInt64), 2, Downsampled{
				Steps: []int64{math.MinInt64, math.MaxInt64}, Timestamps: []int64{1000, 1002},
				Last: []float64{0, 2}, Min: []float64{0, 1}, Max: []float64{0, 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Downsample(tt.p, tt.m)
			if diff := cmp.Diff(tt.want, got, bitsEqualNaN); diff != "" {
				t.Errorf("Downsample (-want +got):\n%s", diff)
			}
		})
	}
}

// bitsEqualNaN treats any two NaNs as equal: which NaN Min and Max report is not specified.
var bitsEqualNaN = cmp.Comparer(func(a, b float64) bool {
	return math.IsNaN(a) && math.IsNaN(b) || math.Float64bits(a) == math.Float64bits(b)
})

func TestDownsampleRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 300 {
		p := hostile(r, 1+r.IntN(500))
		if r.IntN(2) == 0 { // dense steps as well as wild ones
			for i := range p.Steps {
				p.Steps[i] = int64(r.IntN(1000))
			}
		}
		p = Merge([]Points{p})
		m := 1 + r.IntN(50)
		if p.Len() <= m {
			continue
		}
		got := Downsample(p, m)
		if got.Len() > m {
			t.Fatalf("%d buckets, want at most %d", got.Len(), m)
		}
		if diff := cmp.Diff(downsampleRef(p, m), got, bitsEqualNaN); diff != "" {
			t.Fatalf("Downsample(%d points, %d) differs from the reference (-want +got):\n%s", p.Len(), m, diff)
		}
	}
}

func TestDownsampleSpike(t *testing.T) {
	p := sequential(1_000_000)
	at := 777_777
	p.Values[at] = 1e9
	d := Downsample(p, 1000)
	if d.Len() != 1000 {
		t.Errorf("%d buckets, want 1000", d.Len())
	}
	i, _ := slices.BinarySearch(d.Steps, int64(at))
	if d.Max[i] != 1e9 {
		t.Errorf("the bucket of step %d (ending at step %d) has max %g, want the spike 1e9", at, d.Steps[i], d.Max[i])
	}
	if slices.Max(d.Last) == 1e9 {
		t.Errorf("the spike is a bucket's last value; move it so the test shows Max keeps it")
	}
}

func TestDownsampleUnsorted(t *testing.T) {
	// Unsorted input is a caller's bug, but must not hang or overflow the bucket count.
	r := rand.New(rand.NewPCG(15, 16))
	for range 100 {
		p := hostile(r, 2+r.IntN(500))
		m := 1 + r.IntN(20)
		if d := Downsample(p, m); d.Len() > max(m, p.Len()) {
			t.Fatalf("%d buckets, want at most %d", d.Len(), m)
		}
	}
}

func BenchmarkDownsample(b *testing.B) {
	p := sequential(1_000_000)
	for b.Loop() {
		Downsample(p, 1000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}
