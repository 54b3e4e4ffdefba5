package series

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		p    Points
	}{
		{"empty", Points{}},
		{"one", Points{[]int64{7}, []int64{1_700_000_000_000}, []float64{0.5}}},
		{"extremes", Points{
			[]int64{math.MinInt64, math.MaxInt64, math.MinInt64, 0, -1},
			[]int64{math.MaxInt64, math.MinInt64, 0, math.MaxInt64, 1},
			[]float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), math.SmallestNonzeroFloat64},
		}},
		{"nan payloads", Points{
			[]int64{0, 1, 2},
			[]int64{0, 0, 0},
			[]float64{
				math.Float64frombits(0x7FF0_0000_0000_0001), // signalling NaN
				math.Float64frombits(0xFFF8_DEAD_BEEF_0001), // negative quiet NaN with a payload
				math.Float64frombits(0x7FFF_FFFF_FFFF_FFFF),
			},
		}},
		{"out of order", Points{[]int64{5, 3, 9, 1, 1, 100}, []int64{10, 9, 8, 7, 7, 6}, []float64{1, 2, 3, 4, 5, 6}}},
		{"sequential", sequential(10_000)},
		{"hostile", hostile(r, 10_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Encode(nil, tt.p)
			var got Points
			if err := Decode(b, &got); err != nil {
				t.Fatal(err)
			}
			MustEqualPoints(t, got, tt.p)
		})
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		p := hostile(r, r.IntN(300))
		var got Points
		if err := Decode(Encode(nil, p), &got); err != nil {
			t.Fatal(err)
		}
		MustEqualPoints(t, got, p)
	}
}

func TestEncodeAppends(t *testing.T) {
	prefix := []byte("prefix")
	p := sequential(10)
	b := Encode(bytes.Clone(prefix), p)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("Encode overwrote dst: %q", b[:len(prefix)])
	}
	if want := Encode(nil, p); !bytes.Equal(b[len(prefix):], want) {
		t.Fatal("Encode after a prefix differs from Encode into nil")
	}
}

func TestSequentialSize(t *testing.T) {
	// The common case must stay compact: 1-byte steps, 1-byte timestamps, 8-byte values.
	p := sequential(1000)
	if got, limit := len(Encode(nil, p)), 1000*(1+1+8)+16; got > limit {
		t.Errorf("1000 sequential points take %d bytes, want at most %d", got, limit)
	}
}

func TestDecodeAppends(t *testing.T) {
	a, b := sequential(5), hostile(rand.New(rand.NewPCG(7, 8)), 5)
	var got Points
	for _, p := range []Points{a, b} {
		if err := Decode(Encode(nil, p), &got); err != nil {
			t.Fatal(err)
		}
	}
	MustEqualPoints(t, got, concat(a, b))
}

func TestDecodeCorrupt(t *testing.T) {
	good := Encode(nil, Points{[]int64{1, 2}, []int64{10, 20}, []float64{1, 2}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"no count", []byte{version}},
		{"overlong count", append([]byte{version}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"count too large for the bytes", binary.AppendUvarint([]byte{version}, 1<<40)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(bytes.Clone(good), 0)},
		{"unterminated varint", append([]byte{version, 1}, bytes.Repeat([]byte{0x80}, 12)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			into := Points{[]int64{42}, []int64{43}, []float64{44}}
			err := Decode(tt.b, &into)
			if err == nil {
				t.Fatal("Decode of corrupt input succeeded")
			}
			if code := atelier.ErrorCode(err); code != atelier.EINTERNAL {
				t.Errorf("error code %q, want %q", code, atelier.EINTERNAL)
			}
			MustEqualPoints(t, into, Points{[]int64{42}, []int64{43}, []float64{44}})
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(Encode(nil, sequential(3)))
	f.Add(Encode(nil, hostile(rand.New(rand.NewPCG(9, 10)), 5)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Points
		if err := Decode(b, &p); err != nil {
			return
		}
		// Whatever decodes must re-encode to the same points (not necessarily the same bytes:
		// a varint may be written with redundant continuation bytes).
		var again Points
		if err := Decode(Encode(nil, p), &again); err != nil {
			t.Fatal(err)
		}
		MustEqualPoints(t, again, p)
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, int64(0), int64(0))
	f.Add(bytes.Repeat([]byte{0xff}, 24), int64(math.MaxInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, raw []byte, step, ts int64) {
		// Each 24 bytes are one point's step delta, timestamp delta and value bits.
		var p Points
		for ; len(raw) >= 24; raw = raw[24:] {
			step += int64(binary.LittleEndian.Uint64(raw))
			ts += int64(binary.LittleEndian.Uint64(raw[8:]))
			p.Append(step, ts, math.Float64frombits(binary.LittleEndian.Uint64(raw[16:])))
		}
		var got Points
		if err := Decode(Encode(nil, p), &got); err != nil {
			t.Fatal(err)
		}
		MustEqualPoints(t, got, p)
	})
}

func BenchmarkEncode(b *testing.B) {
	p := sequential(1_000_000)
	buf := Encode(nil, p)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = Encode(buf[:0], p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}

func BenchmarkDecode(b *testing.B) {
	buf := Encode(nil, sequential(1_000_000))
	b.SetBytes(int64(len(buf)))
	var p Points
	for b.Loop() {
		p = Points{p.Steps[:0], p.Timestamps[:0], p.Values[:0]}
		if err := Decode(buf, &p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}

func BenchmarkDecodeFresh(b *testing.B) { // as the store reads: into new memory each time
	buf := Encode(nil, sequential(1_000_000))
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		var p Points
		if err := Decode(buf, &p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/point")
}
