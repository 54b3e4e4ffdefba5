package series

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr(v int64) *int64 { return &v }

// points builds Points from steps; each value is its index, so order is visible in failures.
func points(steps ...int64) Points {
	var p Points
	for i, s := range steps {
		p.Append(s, 1000+int64(i), float64(i))
	}
	return p
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		p    Points
		want Summary
	}{
		{"empty", Points{}, Summary{}},
		{"one", Points{[]int64{4}, []int64{40}, []float64{0.5}}, Summary{Count: 1, MinStep: 4, MaxStep: 4, FirstTimestamp: 40, LastTimestamp: 40, LastStep: 4, LastValue: 0.5}},
		{"out of order", Points{[]int64{5, -2, 9, 3}, []int64{10, 11, 12, 13}, []float64{1, 2, 3, 4}},
			Summary{Count: 4, MinStep: -2, MaxStep: 9, FirstTimestamp: 10, LastTimestamp: 13, LastStep: 3, LastValue: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summarize(tt.p)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name   string
		chunks []Points
		want   Points
	}{
		{"none", nil, Points{}},
		{"one sorted", []Points{points(1, 2, 2, 3)}, points(1, 2, 2, 3)},
		{"sorted chunks", []Points{points(1, 2), points(3, 4)}, concat(points(1, 2), points(3, 4))},
		{"empty chunks", []Points{{}, points(1, 2), {}}, points(1, 2)},
		{
			// A resumed run logs steps 2 and 3 again: the later values follow the earlier ones.
			"resumed run",
			[]Points{points(1, 2, 3), points(2, 3, 4)},
			Points{
				Steps:      []int64{1, 2, 2, 3, 3, 4},
				Timestamps: []int64{1000, 1001, 1000, 1002, 1001, 1002},
				Values:     []float64{0, 1, 0, 2, 1, 2},
			},
		},
		{
			"one unsorted chunk",
			[]Points{points(3, 1, 3, 2, 1)},
			Points{
				Steps:      []int64{1, 1, 2, 3, 3},
				Timestamps: []int64{1001, 1004, 1003, 1000, 1002},
				Values:     []float64{1, 4, 3, 0, 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			MustEqualPoints(t, Merge(tt.chunks), tt.want)
		})
	}
}

func TestMergeRandom(t *testing.T) {
	// Compare with a reference: concatenate, then sort.SliceStable on (step) over row indices.
	r := rand.New(rand.NewPCG(11, 12))
	for range 100 {
		var chunks []Points
		for range r.IntN(5) {
			p := hostile(r, r.IntN(50))
			for i := range p.Steps {
				p.Steps[i] %= 10 // many equal steps, so stability is tested
			}
			chunks = append(chunks, p)
		}
		all := concat(chunks...)
		idx := make([]int, all.Len())
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return all.Steps[idx[a]] < all.Steps[idx[b]] })
		var want Points
		for _, i := range idx {
			want.Append(all.Steps[i], all.Timestamps[i], all.Values[i])
		}
		MustEqualPoints(t, Merge(chunks), want)
	}
}

func TestWindow(t *testing.T) {
	p := points(1, 2, 2, 3, 5, 5, 8)
	tests := []struct {
		name     string
		min, max *int64
		want     []int64
	}{
		{"open", nil, nil, []int64{1, 2, 2, 3, 5, 5, 8}},
		{"min only", ptr(3), nil, []int64{3, 5, 5, 8}},
		{"max only", nil, ptr(2), []int64{1, 2, 2}},
		{"inclusive both ends", ptr(2), ptr(5), []int64{2, 2, 3, 5, 5}},
		{"bounds between steps", ptr(4), ptr(7), []int64{5, 5}},
		{"single step", ptr(5), ptr(5), []int64{5, 5}},
		{"min equals first", ptr(1), ptr(1), []int64{1}},
		{"max equals last", ptr(8), ptr(8), []int64{8}},
		{"below all", nil, ptr(0), nil},
		{"above all", ptr(9), nil, nil},
		{"min above max", ptr(5), ptr(2), nil},
		{"int64 extremes", ptr(math.MinInt64), ptr(math.MaxInt64), []int64{1, 2, 2, 3, 5, 5, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Window(p, tt.min, tt.max)
			if diff := cmp.Diff(tt.want, w.Steps, cmpEmpty); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if w.Len() != len(w.Timestamps) || w.Len() != len(w.Values) {
				t.Errorf("columns of different lengths: %d %d %d", w.Len(), len(w.Timestamps), len(w.Values))
			}
			if w.Len() > 0 && w.Values[0] != float64(sort.Search(p.Len(), func(i int) bool { return p.Steps[i] >= w.Steps[0] })) {
				t.Errorf("window starts at the wrong point")
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		if w := Window(Points{}, ptr(1), ptr(2)); w.Len() != 0 {
			t.Errorf("window of no points has %d", w.Len())
		}
	})
}

// cmpEmpty makes nil and empty slices equal.
var cmpEmpty = cmp.FilterValues(func(a, b []int64) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func BenchmarkMerge(b *testing.B) {
	all := sequential(1_000_000)
	chunks := make([]Points, 1000)
	for i := range chunks {
		chunks[i] = all.slice(i*1000, (i+1)*1000)
	}
	for b.Loop() {
		Merge(chunks)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}

func BenchmarkMergeResumed(b *testing.B) { // a run resumed at step 500,000 from step 900,000
	all := sequential(1_000_000)
	first, again := all.slice(0, 900_000), all.slice(500_000, 1_000_000)
	for b.Loop() {
		Merge([]Points{first, again})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1.4e6, "ns/point")
}

func BenchmarkMergeReversed(b *testing.B) { // the worst order for chunks: 1000 runs
	all := sequential(1_000_000)
	chunks := make([]Points, 1000)
	for i := range chunks {
		chunks[len(chunks)-1-i] = all.slice(i*1000, (i+1)*1000)
	}
	for b.Loop() {
		Merge(chunks)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}
