package series

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

func MustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestAppendJSON(t *testing.T) {
	nan, inf := atelier.Float(math.NaN()), atelier.Float(math.Inf(1))
	tests := []struct {
		name string
		s    atelier.Series
	}{
		{"zero", atelier.Series{}},
		{"empty columns", atelier.Series{Name: "loss", Steps: []int64{}, Timestamps: []int64{}, Values: []atelier.Float{}, Min: []atelier.Float{}, Max: []atelier.Float{}}},
		{"plain", atelier.Series{Name: "loss", Steps: []int64{0, 1}, Timestamps: []int64{1_700_000_000_000, 1_700_000_000_010}, Values: []atelier.Float{0.5, 1e21}, Total: 2}},
		{"not numbers", atelier.Series{Name: "x", Steps: []int64{-1, math.MaxInt64, math.MinInt64}, Timestamps: []int64{0, 0, 0},
			Values: []atelier.Float{nan, inf, -inf}, Downsampled: true,
			Min: []atelier.Float{atelier.Float(math.Copysign(0, -1)), 1e-7, 123456789}, Max: []atelier.Float{nan, 5e-324, math.MaxFloat64}, Total: 9}},
		{"name to escape", atelier.Series{Name: "a\"b\\c\n\r\t\b\f\x00\x1f<>&\u2028\u2029é\xff\xc3 ok 日本"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := MustMarshal(t, &tt.s)
			got := AppendJSON([]byte("x"), &tt.s)
			if diff := cmp.Diff(string(want), string(got[1:])); diff != "" || got[0] != 'x' {
				t.Errorf("AppendJSON differs from encoding/json (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	floats := func(n int) []atelier.Float {
		if n < 0 {
			return nil
		}
		fs := make([]atelier.Float, n)
		for i := range fs {
			fs[i] = atelier.Float(hostileFloat(r))
		}
		return fs
	}
	for range 500 {
		p := hostile(r, r.IntN(20))
		name := make([]byte, r.IntN(12))
		for i := range name {
			name[i] = byte(r.Uint32())
		}
		s := atelier.Series{
			Name: string(name), Steps: p.Steps, Timestamps: p.Timestamps, Values: floats(p.Len()),
			Downsampled: r.IntN(2) == 0, Min: floats(r.IntN(4) - 1), Max: floats(r.IntN(4) - 1), Total: int64(r.Uint64()),
		}
		if want, got := MustMarshal(t, &s), AppendJSON(nil, &s); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	}
}

func TestToSeries(t *testing.T) {
	p := sequential(100)
	tests := []struct {
		name            string
		q               atelier.HistoryQuery
		wantLen         int
		wantTotal       int64
		wantDownsampled bool
		wantFirst       int64
	}{
		{"everything", atelier.HistoryQuery{}, 100, 100, false, 0},
		{"window", atelier.HistoryQuery{MinStep: ptr(10), MaxStep: ptr(19)}, 10, 10, false, 10},
		{"max points not reached", atelier.HistoryQuery{MinStep: ptr(10), MaxStep: ptr(19), MaxPoints: 10}, 10, 10, false, 10},
		{"downsampled window", atelier.HistoryQuery{MinStep: ptr(50), MaxPoints: 10}, 10, 50, true, 54},
		{"empty window", atelier.HistoryQuery{MinStep: ptr(500)}, 0, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ToSeries("loss", p, tt.q)
			if s.Name != "loss" || len(s.Steps) != tt.wantLen || len(s.Timestamps) != tt.wantLen || len(s.Values) != tt.wantLen ||
				s.Total != tt.wantTotal || s.Downsampled != tt.wantDownsampled {
				t.Fatalf("got name %q, %d/%d/%d points, total %d, downsampled %v; want %d points, total %d, downsampled %v",
					s.Name, len(s.Steps), len(s.Timestamps), len(s.Values), s.Total, s.Downsampled, tt.wantLen, tt.wantTotal, tt.wantDownsampled)
			}
			if s.Steps == nil || s.Timestamps == nil || s.Values == nil {
				t.Error("nil column: it would encode as null")
			}
			wantMinMax := 0
			if tt.wantDownsampled {
				wantMinMax = tt.wantLen
			}
			if len(s.Min) != wantMinMax || len(s.Max) != wantMinMax {
				t.Errorf("min/max have %d/%d values", len(s.Min), len(s.Max))
			}
			if tt.wantLen > 0 && s.Steps[0] != tt.wantFirst {
				t.Errorf("first step %d, want %d", s.Steps[0], tt.wantFirst)
			}
			if !tt.wantDownsampled && tt.wantLen > 0 {
				i := s.Steps[0]
				if s.Timestamps[0] != p.Timestamps[i] || float64(s.Values[0]) != p.Values[i] {
					t.Errorf("first point does not match the input")
				}
			}
		})
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	s := ToSeries("loss", sequential(1_000_000), atelier.HistoryQuery{})
	buf := AppendJSON(nil, s)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = AppendJSON(buf[:0], s)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}

func BenchmarkMarshalJSON(b *testing.B) { // encoding/json, for comparison
	s := ToSeries("loss", sequential(1_000_000), atelier.HistoryQuery{})
	for b.Loop() {
		MustMarshal(b, s)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}

// BenchmarkRead is a full read as the API serves it: merge the decoded chunks of a
// 1,000,000-point series, build the Series and encode its JSON.
func BenchmarkRead(b *testing.B) {
	all := sequential(1_000_000)
	var blobs [][]byte
	for i := 0; i < all.Len(); i += 10_000 {
		blobs = append(blobs, Encode(nil, all.slice(i, i+10_000)))
	}
	var buf []byte
	for b.Loop() {
		chunks := make([]Points, len(blobs))
		for i, blob := range blobs {
			if err := Decode(blob, &chunks[i]); err != nil {
				b.Fatal(err)
			}
		}
		buf = AppendJSON(buf[:0], ToSeries("loss", Merge(chunks), atelier.HistoryQuery{}))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}
