package api

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// slowMetricBatch is the reference: encoding/json, strict.
func slowMetricBatch(data []byte) (*atelier.MetricBatch, error) {
	var b atelier.MetricBatch
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, jsonError(err)
	}
	if err := expectEOF(dec); err != nil {
		return nil, err
	}
	return &b, nil
}

// decodeMetricBatch is the handler's decoding without the document's checks: the fast path
// when it applies, else the reference.
func decodeMetricBatch(data []byte) (*atelier.MetricBatch, error) {
	if b, err := fastMetricBatch(data); err == nil {
		return b, nil
	}
	return slowMetricBatch(data)
}

var metricBatchSeeds = []string{
	`{"metrics":[{"name":"loss","step":1,"timestamp":2,"value":0.5}]}`,
	`{"metrics":[{"name":"loss","value":0.5},{"name":"loss","step":2,"value":"NaN"},{"name":"acc","step":3,"value":"-Infinity"}]}`,
	` { "metrics" : [ { "value" : 1e3 , "name" : "a/b" , "timestamp" : 0 } ] } `,
	`{"metrics":[]}`,
	`{"metrics":null}`,
	`{}`,
	`{"metrics":[{"name":"x","step":01,"value":1}]}`,
	`{"metrics":[{"name":"x","step":1.5,"value":1}]}`,
	`{"metrics":[{"name":"x","value":+1}]}`,
	`{"metrics":[{"name":"x","value":1.}]}`,
	`{"metrics":[{"name":"x","value":1e400}]}`,
	`{"metrics":[{"name":"x","value":"nope"}]}`,
	`{"metrics":[{"name":"x\u00e9","value":1}]}`,
	`{"metrics":[{"name":"x","value":1,"extra":2}]}`,
	`{"metrics":[{"name":"x","value":1}]} trailing`,
	`{"metrics":[{"name":"x","value":1}],"records":[{"name":"l","kind":"list","value":[1,2]}]}`,
	`{"metrics":[{"name":"x","step":null,"value":1}]}`,
	`{"metrics":[{"name":"x","value":1},]}`,
	`{"metrics":[{"name":"x","step":9223372036854775808,"value":1}]}`,
	`[1,2]`,
	`{"metrics":[{"name":"x","value":1}]}}`,
	`{"metrics":[{"value":1}]}`,
	``,
}

// TestMetricBatchFastPath checks that the hand-written decoder gives exactly what encoding/json
// gives, including NaN values and errors.
func TestMetricBatchFastPath(t *testing.T) {
	for _, seed := range metricBatchSeeds {
		t.Run(seed, func(t *testing.T) { compareDecoders(t, []byte(seed)) })
	}
	// The fast path must really be taken for the common shape.
	if _, err := fastMetricBatch([]byte(metricBatchSeeds[0])); err != nil {
		t.Fatalf("the common shape missed the fast path: %v", err)
	}
}

func compareDecoders(t *testing.T, data []byte) {
	got, gotErr := decodeMetricBatch(data)
	want, wantErr := slowMetricBatch(data)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("decode(%q): error %v, encoding/json says %v", data, gotErr, wantErr)
	}
	if gotErr != nil {
		if atelier.ErrorCode(gotErr) != atelier.EINVALID || atelier.ErrorMessage(gotErr) != atelier.ErrorMessage(wantErr) {
			t.Fatalf("decode(%q): error %v, want %v", data, gotErr, wantErr)
		}
		return
	}
	floatEq := cmp.Comparer(func(a, b atelier.Float) bool {
		return a == b || (math.IsNaN(float64(a)) && math.IsNaN(float64(b)))
	})
	if diff := cmp.Diff(want, got, floatEq); diff != "" {
		t.Fatalf("decode(%q) differs from encoding/json (-want +got):\n%s", data, diff)
	}
}

func FuzzMetricBatch(f *testing.F) {
	for _, seed := range metricBatchSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(compareDecoders)
}

func BenchmarkDecodeMetricBatch(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"metrics":[`)
	for i := 0; i < 1000; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"name":"loss","step":`)
		buf.WriteString(json.Number(itoa(i)).String())
		buf.WriteString(`,"timestamp":1795576888229,"value":0.123456789}`)
	}
	buf.WriteString(`]}`)
	data := buf.Bytes()
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := fastMetricBatch(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := slowMetricBatch(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}
