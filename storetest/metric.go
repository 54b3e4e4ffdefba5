package storetest

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// points builds a batch of one metric: steps[i] < 0 means an auto step.
func points(name string, steps []int64, values ...float64) []atelier.MetricPoint {
	out := make([]atelier.MetricPoint, len(values))
	for i, v := range values {
		out[i] = atelier.MetricPoint{Name: name, Value: atelier.Float(v), Timestamp: 1700000000000 + int64(i)}
		if steps[i] >= 0 {
			out[i].Step = step(steps[i])
		}
	}
	return out
}

func summaries(t *testing.T, s atelier.Store, ws, id string) map[string]*atelier.MetricSummary {
	t.Helper()
	list, err := s.ListMetrics(Context(t), ws, id)
	mustOK(t, err, "ListMetrics")
	m := map[string]*atelier.MetricSummary{}
	for _, sum := range list {
		if m[sum.Name] != nil {
			t.Errorf("ListMetrics lists %q twice", sum.Name)
		}
		m[sum.Name] = sum
	}
	return m
}

func testMetrics(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	newRun := func(t *testing.T) string {
		t.Helper()
		return MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "metrics", Status: atelier.StatusRunning}).ID
	}

	t.Run("Steps", func(t *testing.T) {
		id := newRun(t)
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("loss", []int64{0, 5}, 1, 2)})
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("loss", []int64{-1, -1}, 3, 4)})
		// An out-of-order explicit step, then an auto step: it continues after the largest step (7).
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("loss", []int64{3, -1}, 5, 6)})
		// Within one batch an auto step follows the largest step logged before it.
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("acc", []int64{-1, -1, 20, -1, 2, -1}, 1, 2, 3, 4, 5, 6)})
		for _, tc := range []struct {
			name   string
			steps  []int64
			values []atelier.Float
		}{
			{"loss", []int64{0, 3, 5, 6, 7, 8}, []atelier.Float{1, 5, 2, 3, 4, 6}},
			{"acc", []int64{0, 1, 2, 20, 21, 22}, []atelier.Float{1, 2, 5, 3, 4, 6}},
		} {
			ser := MustHistory(t, s, "ws", id, tc.name, atelier.HistoryQuery{})
			if diff := cmp.Diff(tc.steps, ser.Steps); diff != "" {
				t.Errorf("%s steps (-want +got):\n%s", tc.name, diff)
			}
			if diff := cmp.Diff(tc.values, ser.Values); diff != "" {
				t.Errorf("%s values (-want +got):\n%s", tc.name, diff)
			}
			if ser.Name != tc.name || ser.Total != int64(len(tc.steps)) || ser.Downsampled || len(ser.Timestamps) != len(tc.steps) {
				t.Errorf("%s series: name %q, total %d, downsampled %v, %d timestamps", tc.name, ser.Name, ser.Total, ser.Downsampled, len(ser.Timestamps))
			}
		}
		sums := summaries(t, s, "ws", id)
		if l := sums["loss"]; l == nil || l.Step != 8 || l.Value != 6 || l.Count != 6 || l.Kind != atelier.MetricScalar {
			t.Errorf("loss summary = %+v, want step 8, value 6, count 6, scalar", l)
		}
		if a := sums["acc"]; a == nil || a.Step != 22 || a.Value != 6 || a.Count != 6 {
			t.Errorf("acc summary = %+v, want step 22, value 6, count 6", a)
		}
	})

	t.Run("Timestamps", func(t *testing.T) {
		id := newRun(t)
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: []atelier.MetricPoint{
			{Name: "m", Step: step(0), Timestamp: 1714521600123, Value: 1},
			{Name: "m", Step: step(1), Value: 2}, // no timestamp: the store's clock
		}})
		ser := MustHistory(t, s, "ws", id, "m", atelier.HistoryQuery{})
		if len(ser.Timestamps) != 2 || ser.Timestamps[0] != 1714521600123 || ser.Timestamps[1] < 1714521600123 {
			t.Errorf("timestamps = %v, want the given one, then about now", ser.Timestamps)
		}
		if sum := summaries(t, s, "ws", id)["m"]; sum == nil || sum.Timestamp != ser.Timestamps[1] {
			t.Errorf("summary %+v, want the timestamp of the latest point %v", sum, ser.Timestamps)
		}
	})

	t.Run("SpecialValues", func(t *testing.T) {
		id := newRun(t)
		nan, inf, ninf := math.NaN(), math.Inf(1), math.Inf(-1)
		values := []float64{1.5, nan, inf, ninf, -2.25e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, nan}
		steps := make([]int64, len(values))
		for i := range steps {
			steps[i] = int64(i)
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("v", steps, values...)})
		for _, last := range []struct {
			name string
			v    float64
		}{{"nan", nan}, {"inf", inf}, {"ninf", ninf}, {"tiny", math.SmallestNonzeroFloat64}} {
			MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points(last.name, []int64{0, 1}, 7, last.v)})
		}
		ser := MustHistory(t, s, "ws", id, "v", atelier.HistoryQuery{})
		if diff := cmp.Diff(bits(values), bits(ser.Values)); diff != "" {
			t.Errorf("history bits (-want +got):\n%s", diff)
		}
		sums := summaries(t, s, "ws", id)
		run := MustFindRun(t, s, "ws", id)
		for name, want := range map[string]float64{"v": nan, "nan": nan, "inf": inf, "ninf": ninf, "tiny": math.SmallestNonzeroFloat64} {
			sum := sums[name]
			if sum == nil {
				t.Errorf("ListMetrics has no %q", name)
				continue
			}
			if math.Float64bits(float64(sum.Value)) != math.Float64bits(want) {
				t.Errorf("ListMetrics %s = %v, want %v", name, sum.Value, want)
			}
			got, ok := run.Metrics[name]
			if !ok || math.Float64bits(float64(got)) != math.Float64bits(want) {
				t.Errorf("Run.Metrics[%s] = %v (present %v), want %v", name, got, ok, want)
			}
		}
		// Through the API's JSON as well.
		b, err := json.Marshal(run.Metrics)
		mustOK(t, err, "json.Marshal(Run.Metrics)")
		var back map[string]atelier.Float
		mustOK(t, json.Unmarshal(b, &back), "json.Unmarshal")
		if !math.IsNaN(float64(back["nan"])) || !math.IsInf(float64(back["ninf"]), -1) {
			t.Errorf("Run.Metrics JSON round trip = %s", b)
		}
	})

	t.Run("LatestIsLargestStep", func(t *testing.T) {
		id := newRun(t)
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("m", []int64{5, 2}, 1, 2)})
		if sum := summaries(t, s, "ws", id)["m"]; sum == nil || sum.Step != 5 || sum.Value != 1 {
			t.Errorf("latest = %+v, want step 5 value 1 (the largest step, not the last logged)", sum)
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("m", []int64{3}, 9)})
		if sum := summaries(t, s, "ws", id)["m"]; sum == nil || sum.Step != 5 || sum.Value != 1 {
			t.Errorf("after a smaller step, latest = %+v, want still step 5 value 1", sum)
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("m", []int64{5}, 3)})
		if sum := summaries(t, s, "ws", id)["m"]; sum == nil || sum.Step != 5 || sum.Value != 3 {
			t.Errorf("after the same step again, latest = %+v, want step 5 value 3 (later wins)", sum)
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("m", []int64{6, 6, 4}, 4, 5, 8)})
		sum := summaries(t, s, "ws", id)["m"]
		if sum == nil || sum.Step != 6 || sum.Value != 5 || sum.Count != 7 {
			t.Errorf("after a tie within one batch, latest = %+v, want step 6 value 5 count 7", sum)
		}
		if got := MustFindRun(t, s, "ws", id).Metrics["m"]; got != 5 {
			t.Errorf("Run.Metrics[m] = %v, want 5", got)
		}
		ser := MustHistory(t, s, "ws", id, "m", atelier.HistoryQuery{})
		if diff := cmp.Diff([]int64{2, 3, 4, 5, 5, 6, 6}, ser.Steps); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		// Points of one step keep their logging order.
		if diff := cmp.Diff([]atelier.Float{2, 9, 8, 1, 3, 4, 5}, ser.Values); diff != "" {
			t.Errorf("values (-want +got):\n%s", diff)
		}
	})

	t.Run("Window", func(t *testing.T) {
		id := newRun(t)
		// Three batches, so a window spans chunks.
		for b := range 3 {
			var ps []atelier.MetricPoint
			for i := range 10 {
				st := int64(b*10 + i)
				ps = append(ps, atelier.MetricPoint{Name: "w", Step: step(st), Value: atelier.Float(st * 10)})
			}
			MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: ps})
		}
		for _, tc := range []struct {
			name     string
			min, max *int64
			first    int64
			n        int
		}{
			{"all", nil, nil, 0, 30},
			{"min", step(25), nil, 25, 5},
			{"max", nil, step(4), 0, 5},
			{"across chunks", step(8), step(12), 8, 5},
			{"one", step(17), step(17), 17, 1},
			{"empty", step(100), nil, 0, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ser := MustHistory(t, s, "ws", id, "w", atelier.HistoryQuery{MinStep: tc.min, MaxStep: tc.max})
				var want []int64
				var wantV []atelier.Float
				for i := range tc.n {
					want = append(want, tc.first+int64(i))
					wantV = append(wantV, atelier.Float((tc.first+int64(i))*10))
				}
				if diff := cmp.Diff(want, ser.Steps, cmpEmpty); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantV, ser.Values, cmpEmptyFloat); diff != "" {
					t.Errorf("values (-want +got):\n%s", diff)
				}
				if ser.Total != int64(tc.n) {
					t.Errorf("Total = %d, want %d", ser.Total, tc.n)
				}
			})
		}
		_, err := s.MetricHistory(ctx, "ws", id, "w", atelier.HistoryQuery{MaxPoints: -1})
		wantCode(t, err, atelier.EINVALID, "MetricHistory(MaxPoints -1)")
	})

	t.Run("Downsample", func(t *testing.T) {
		id := newRun(t)
		var ps []atelier.MetricPoint
		for i := range 1000 {
			v := atelier.Float(math.Sin(float64(i) / 50))
			switch i {
			case 537:
				v = 100 // a spike in the middle of a bucket
			case 211:
				v = -100
			}
			ps = append(ps, atelier.MetricPoint{Name: "d", Step: step(int64(i)), Value: v})
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: ps})
		ser := MustHistory(t, s, "ws", id, "d", atelier.HistoryQuery{MaxPoints: 10})
		if !ser.Downsampled || len(ser.Steps) == 0 || len(ser.Steps) > 10 || ser.Total != 1000 {
			t.Fatalf("downsampled: %v, %d points, total %d; want at most 10 points of 1000", ser.Downsampled, len(ser.Steps), ser.Total)
		}
		if len(ser.Min) != len(ser.Steps) || len(ser.Max) != len(ser.Steps) || len(ser.Values) != len(ser.Steps) || len(ser.Timestamps) != len(ser.Steps) {
			t.Fatalf("column lengths: steps %d, values %d, timestamps %d, min %d, max %d",
				len(ser.Steps), len(ser.Values), len(ser.Timestamps), len(ser.Min), len(ser.Max))
		}
		maxV, minV := math.Inf(-1), math.Inf(1)
		for i := range ser.Steps {
			maxV, minV = max(maxV, float64(ser.Max[i])), min(minV, float64(ser.Min[i]))
			if ser.Min[i] > ser.Values[i] || ser.Max[i] < ser.Values[i] {
				t.Errorf("bucket %d: last %v outside [%v, %v]", i, ser.Values[i], ser.Min[i], ser.Max[i])
			}
		}
		if maxV != 100 || minV != -100 {
			t.Errorf("downsampled extremes [%v, %v], want the spikes [-100, 100] kept", minV, maxV)
		}
		if ser.Steps[len(ser.Steps)-1] != 999 {
			t.Errorf("last bucket ends at step %d, want 999", ser.Steps[len(ser.Steps)-1])
		}
		// A window and downsampling together; a window smaller than MaxPoints is not reduced.
		win := MustHistory(t, s, "ws", id, "d", atelier.HistoryQuery{MinStep: step(500), MaxStep: step(599), MaxPoints: 5})
		if win.Total != 100 || len(win.Steps) > 5 || win.Steps[0] < 500 || win.Steps[len(win.Steps)-1] != 599 {
			t.Errorf("window 500-599 by 5: total %d, steps %v", win.Total, win.Steps)
		}
		full := MustHistory(t, s, "ws", id, "d", atelier.HistoryQuery{MinStep: step(500), MaxStep: step(509), MaxPoints: 50})
		if len(full.Steps) != 10 {
			t.Errorf("window of 10 points by 50: %d points, want all 10", len(full.Steps))
		}
	})

	t.Run("AtomicBatch", func(t *testing.T) {
		id := newRun(t)
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: points("kept", []int64{0}, 1)})
		for _, tc := range []struct {
			name  string
			batch atelier.MetricBatch
			code  string
		}{
			{"invalid name", atelier.MetricBatch{Points: append(points("x", []int64{0, 1, 2}, 1, 2, 3),
				atelier.MetricPoint{Name: "", Value: 1})}, atelier.EINVALID},
			{"negative step", atelier.MetricBatch{Points: append(points("x", []int64{0, 1}, 1, 2),
				atelier.MetricPoint{Name: "y", Step: step(-2), Value: 1})}, atelier.EINVALID},
			{"invalid record", atelier.MetricBatch{Points: points("x", []int64{0}, 1),
				Records: []atelier.MetricRecord{{Name: "r", Kind: atelier.MetricList, Value: []byte("[1,")}}}, atelier.EINVALID},
			// Fails in the store, not in validation: the points before it must not stay.
			{"kind conflict", atelier.MetricBatch{Points: append(points("x", []int64{0, 1}, 1, 2), points("kept", []int64{1}, 2)...),
				Records: []atelier.MetricRecord{{Name: "kept", Kind: atelier.MetricRow, Value: []byte(`{"a": 1}`)}}}, atelier.ECONFLICT},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, s.LogMetrics(ctx, "ws", id, &tc.batch), tc.code, "LogMetrics(%s)", tc.name)
				sums := summaries(t, s, "ws", id)
				if len(sums) != 1 || sums["kept"] == nil || sums["kept"].Count != 1 || sums["kept"].Value != 1 {
					t.Errorf("after a refused batch, metrics = %v, want only kept with its one point", keys(sums))
				}
				_, err := s.MetricHistory(ctx, "ws", id, "x", atelier.HistoryQuery{})
				wantCode(t, err, atelier.ENOTFOUND, "MetricHistory(x) after a refused batch")
				if ser := MustHistory(t, s, "ws", id, "kept", atelier.HistoryQuery{}); len(ser.Steps) != 1 {
					t.Errorf("kept has %d points after a refused batch, want 1", len(ser.Steps))
				}
				if got := MustFindRun(t, s, "ws", id).Metrics; len(got) != 1 {
					t.Errorf("Run.Metrics after a refused batch = %v", got)
				}
			})
		}
	})

	t.Run("Records", func(t *testing.T) {
		id := newRun(t)
		recs := []atelier.MetricRecord{
			{Name: "preds", Kind: atelier.MetricList, Value: json.RawMessage(`[1, 2.5, "x"]`), Timestamp: 1700000000001},
			{Name: "table", Kind: atelier.MetricRow, Value: json.RawMessage(`{"epoch": 1, "acc": 0.5}`), Timestamp: 1700000000002},
			{Name: "table", Kind: atelier.MetricRow, Value: json.RawMessage(`{"epoch": 2, "acc": 0.7}`), Timestamp: 1700000000003},
			{Name: "confusion", Kind: atelier.MetricTable, Value: json.RawMessage(`{"tp": [1, 2], "fp": [3, 4]}`), Timestamp: 1700000000004},
			{Name: "sample", Kind: atelier.MetricImage, Path: "outputs/sample.png", Timestamp: 1700000000005},
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Records: recs[:2], Points: points("loss", []int64{0}, 1)})
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Records: recs[2:]})
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Records: []atelier.MetricRecord{
			{Name: "table", Kind: atelier.MetricRow, Value: json.RawMessage(`{"epoch": 3, "acc": 0.9}`), Timestamp: 1700000000006}}})
		recs = append(recs, atelier.MetricRecord{Name: "table", Kind: atelier.MetricRow, Value: json.RawMessage(`{"epoch": 3, "acc": 0.9}`), Timestamp: 1700000000006})

		for _, name := range []string{"preds", "table", "confusion", "sample"} {
			var want []*atelier.MetricRecord
			for i := range recs {
				if recs[i].Name == name {
					want = append(want, &recs[i])
				}
			}
			got, err := s.MetricRecords(ctx, "ws", id, name)
			mustOK(t, err, "MetricRecords(%s)", name)
			opts := cmp.Options{cmp.Comparer(func(a, b json.RawMessage) bool {
				return len(a) == 0 || len(b) == 0 || jsonEqual(a, b) // an image's value is the store's to fill
			})}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("MetricRecords(%s) (-want +got):\n%s", name, diff)
			}
		}
		sums := summaries(t, s, "ws", id)
		for _, tc := range []struct {
			name  string
			kind  atelier.MetricKind
			count int64
			last  string
		}{
			{"preds", atelier.MetricList, 1, `[1, 2.5, "x"]`},
			{"table", atelier.MetricRow, 3, `{"epoch": 3, "acc": 0.9}`},
			{"confusion", atelier.MetricTable, 1, `{"tp": [1, 2], "fp": [3, 4]}`},
			{"sample", atelier.MetricImage, 1, ""},
			{"loss", atelier.MetricScalar, 1, ""},
		} {
			sum := sums[tc.name]
			if sum == nil || sum.Kind != tc.kind || sum.Count != tc.count || (tc.last != "" && !jsonEqual(sum.Last, []byte(tc.last))) {
				t.Errorf("ListMetrics %s = %+v, want kind %s, count %d, last %s", tc.name, sum, tc.kind, tc.count, tc.last)
			}
		}
		if got := MustFindRun(t, s, "ws", id).Metrics; !cmp.Equal(got, map[string]atelier.Float{"loss": 1}) {
			t.Errorf("Run.Metrics = %v, want only the scalar loss", got)
		}

		for _, tc := range []struct {
			name  string
			batch atelier.MetricBatch
		}{
			{"list then scalar", atelier.MetricBatch{Points: points("preds", []int64{1}, 1)}},
			{"scalar then list", atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "loss", Kind: atelier.MetricList, Value: []byte(`[1]`)}}}},
			{"row then table", atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "table", Kind: atelier.MetricTable, Value: []byte(`{"a": [1]}`)}}}},
			{"image then list", atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "sample", Kind: atelier.MetricList, Value: []byte(`[1]`)}}}},
			{"new name, both kinds in one batch", atelier.MetricBatch{Points: points("both", []int64{0}, 1),
				Records: []atelier.MetricRecord{{Name: "both", Kind: atelier.MetricList, Value: []byte(`[1]`)}}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, s.LogMetrics(ctx, "ws", id, &tc.batch), atelier.ECONFLICT, "LogMetrics(%s)", tc.name)
			})
		}
		if got, err := s.MetricRecords(ctx, "ws", id, "table"); err != nil || len(got) != 3 {
			t.Errorf("after refused batches table has %d records (%v), want 3", len(got), err)
		}
		if sums := summaries(t, s, "ws", id); len(sums) != 5 || sums["loss"].Count != 1 {
			t.Errorf("after refused batches metrics = %v, loss %+v", keys(sums), sums["loss"])
		}

		_, err := s.MetricHistory(ctx, "ws", id, "missing", atelier.HistoryQuery{})
		wantCode(t, err, atelier.ENOTFOUND, "MetricHistory(missing)")
		_, err = s.MetricHistory(ctx, "ws", id, "table", atelier.HistoryQuery{})
		wantCode(t, err, atelier.EINVALID, "MetricHistory(row metric)")
		_, err = s.MetricRecords(ctx, "ws", id, "missing")
		wantCode(t, err, atelier.ENOTFOUND, "MetricRecords(missing)")
	})

	t.Run("LargeBatch", func(t *testing.T) {
		id := newRun(t)
		ps := make([]atelier.MetricPoint, atelier.MaxPointsPerBatch)
		for i := range ps {
			ps[i] = atelier.MetricPoint{Name: "big", Step: step(int64(i)), Timestamp: 1700000000000 + int64(i), Value: atelier.Float(float64(i) * 0.5)}
		}
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Points: ps})
		ser := MustHistory(t, s, "ws", id, "big", atelier.HistoryQuery{})
		if len(ser.Steps) != len(ps) || ser.Total != int64(len(ps)) {
			t.Fatalf("history of %d points: %d steps, total %d", len(ps), len(ser.Steps), ser.Total)
		}
		for _, i := range []int{0, 1, 4242, 50000, len(ps) - 1} {
			if ser.Steps[i] != int64(i) || ser.Values[i] != atelier.Float(float64(i)*0.5) || ser.Timestamps[i] != 1700000000000+int64(i) {
				t.Errorf("point %d = (%d, %d, %v)", i, ser.Steps[i], ser.Timestamps[i], ser.Values[i])
			}
		}
		if sum := summaries(t, s, "ws", id)["big"]; sum == nil || sum.Count != int64(len(ps)) || sum.Step != int64(len(ps)-1) {
			t.Errorf("summary = %+v", sum)
		}
		down := MustHistory(t, s, "ws", id, "big", atelier.HistoryQuery{MaxPoints: 500})
		if len(down.Steps) > 500 || !down.Downsampled || down.Max[len(down.Max)-1] != atelier.Float(float64(len(ps)-1)*0.5) {
			t.Errorf("downsampled to %d points, downsampled %v", len(down.Steps), down.Downsampled)
		}
		tooMany := &atelier.MetricBatch{Points: append(ps, atelier.MetricPoint{Name: "big", Value: 1})}
		wantCode(t, s.LogMetrics(ctx, "ws", id, tooMany), atelier.EINVALID, "LogMetrics(%d points)", len(tooMany.Points))
	})

	t.Run("RunPageSummaries", func(t *testing.T) {
		exp := "summaries"
		a := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: exp}).ID
		b := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: exp}).ID
		none := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: exp}).ID
		MustLogMetrics(t, s, "ws", a, &atelier.MetricBatch{Points: append(points("loss", []int64{0, 1}, 2, 1), points("acc", []int64{0}, math.NaN())...),
			Records: []atelier.MetricRecord{{Name: "table", Kind: atelier.MetricTable, Value: json.RawMessage(`{"x":[1]}`)}}})
		MustLogMetrics(t, s, "ws", b, &atelier.MetricBatch{Points: points("loss", []int64{4}, 7)})

		page, err := s.ListRuns(ctx, "ws", atelier.RunQuery{Experiment: exp, Summaries: true})
		mustOK(t, err, "ListRuns(summaries)")
		if len(page.Runs) != 3 {
			t.Fatalf("ListRuns = %d runs, want 3", len(page.Runs))
		}
		// Each run's list is what ListMetrics says of it; runs without metrics are left out.
		want := map[string][]*atelier.MetricSummary{}
		for _, id := range []string{a, b} {
			list, err := s.ListMetrics(ctx, "ws", id)
			mustOK(t, err, "ListMetrics")
			want[id] = list
		}
		nanEqual := cmp.Comparer(func(x, y atelier.Float) bool { return x == y || (math.IsNaN(float64(x)) && math.IsNaN(float64(y))) })
		if diff := cmp.Diff(want, page.Summaries, nanEqual); diff != "" {
			t.Errorf("RunPage.Summaries (-want +got):\n%s", diff)
		}
		if len(want[a]) != 3 {
			t.Errorf("ListMetrics(a) = %d metrics, want 3 (acc, loss, table)", len(want[a]))
		}
		if _, ok := page.Summaries[none]; ok {
			t.Errorf("a run without metrics has summaries %v", page.Summaries[none])
		}
		// The runs' latest scalar values are there as without summaries.
		plain, err := s.ListRuns(ctx, "ws", atelier.RunQuery{Experiment: exp})
		mustOK(t, err, "ListRuns")
		if diff := cmp.Diff(plain.Runs, page.Runs, nanEqual); diff != "" {
			t.Errorf("runs with summaries differ (-without +with):\n%s", diff)
		}
		if plain.Summaries != nil {
			t.Errorf("summaries not asked for: %v", plain.Summaries)
		}
	})

	t.Run("LogBatch", func(t *testing.T) {
		id := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "metrics", Params: map[string]string{"lr": "0.1"}, Tags: map[string]string{"stage": "dev"}}).ID
		mustOK(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{Params: map[string]string{"lr": "0.1", "epochs": "3"},
			Tags: map[string]string{"stage": "prod"}, Metrics: atelier.MetricBatch{Points: points("loss", []int64{0, 1}, 2, 1)}}), "LogBatch")
		// Whatever fails stores nothing of its batch: a changed param, a bad tag, a bad point, a
		// scalar logged under a table's name.
		MustLogMetrics(t, s, "ws", id, &atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "table", Kind: atelier.MetricTable, Value: json.RawMessage(`{"x":[1]}`)}}})
		for _, tc := range []struct {
			name string
			b    atelier.RunBatch
			code string
		}{
			{"changed param", atelier.RunBatch{Params: map[string]string{"lr": "0.2", "new": "x"}}, atelier.ECONFLICT},
			{"bad tag", atelier.RunBatch{Params: map[string]string{"new": "x"}, Tags: map[string]string{" x": "1"}}, atelier.EINVALID},
			{"bad param", atelier.RunBatch{Params: map[string]string{"": "x"}, Tags: map[string]string{"new": "x"}}, atelier.EINVALID},
			{"negative step", atelier.RunBatch{Tags: map[string]string{"new": "x"}, Metrics: atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Step: step(-2), Value: 1}}}}, atelier.EINVALID},
			{"scalar on a table", atelier.RunBatch{Params: map[string]string{"new": "x"}, Tags: map[string]string{"new": "x"},
				Metrics: atelier.MetricBatch{Points: append(points("loss", []int64{2}, 0.5), points("table", []int64{0}, 1)...)}}, atelier.ECONFLICT},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, s.LogBatch(ctx, "ws", id, &tc.b), tc.code, "LogBatch(%s)", tc.name)
			})
		}
		run := MustFindRun(t, s, "ws", id)
		if diff := cmp.Diff(map[string]string{"lr": "0.1", "epochs": "3"}, run.Params); diff != "" {
			t.Errorf("params (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"stage": "prod"}, run.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		if sum := summaries(t, s, "ws", id)["loss"]; sum == nil || sum.Count != 2 || sum.Step != 1 || sum.Value != 1 {
			t.Errorf("loss summary = %+v, want 2 points, latest 1 at step 1", sum)
		}
		wantCode(t, s.LogBatch(ctx, "ws", "0123456789abcdef0123456789abcdef", &atelier.RunBatch{Tags: map[string]string{"a": "b"}}),
			atelier.ENOTFOUND, "LogBatch(missing run)")
	})

	t.Run("LogBatchSkipDuplicates", func(t *testing.T) {
		id := newRun(t)
		first := append(points("loss", []int64{0, 1, 2}, 3, 2, math.NaN()), points("acc", []int64{0}, 0.5)...)
		mustOK(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{SkipDuplicates: true, Metrics: atelier.MetricBatch{Points: first}}), "LogBatch")
		// A retry of the same batch, with a new point, a repeat within the batch and a point that
		// differs from a stored one only in its value.
		again := points("loss", []int64{3}, 1)
		retry := append(append(first, again...), again...)
		retry = append(retry, atelier.MetricPoint{Name: "acc", Step: step(0), Timestamp: first[3].Timestamp, Value: 0.6})
		mustOK(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{SkipDuplicates: true, Metrics: atelier.MetricBatch{Points: retry}}), "LogBatch(retry)")
		loss := MustHistory(t, s, "ws", id, "loss", atelier.HistoryQuery{})
		if len(loss.Steps) != 4 || loss.Steps[3] != 3 || !math.IsNaN(float64(loss.Values[2])) {
			t.Errorf("loss after the retry: steps %v values %v, want 0..3 once each", loss.Steps, loss.Values)
		}
		if acc := MustHistory(t, s, "ws", id, "acc", atelier.HistoryQuery{}); len(acc.Steps) != 2 {
			t.Errorf("acc after the retry: %d points, want 2 (another value at the same step and time is another point)", len(acc.Steps))
		}
		// Without SkipDuplicates, points are stored as given.
		mustOK(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{Metrics: atelier.MetricBatch{Points: points("acc", []int64{0}, 0.5)}}), "LogBatch(no skip)")
		if acc := MustHistory(t, s, "ws", id, "acc", atelier.HistoryQuery{}); len(acc.Steps) != 3 {
			t.Errorf("acc: %d points, want 3", len(acc.Steps))
		}
	})

	t.Run("LogBatchDeletedRun", func(t *testing.T) {
		id := newRun(t)
		mustOK(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{Tags: map[string]string{"state": "active"}}), "LogBatch(active run)")
		_, err := s.SetRunLifecycle(ctx, "ws", id, atelier.LifecycleDeleted)
		mustOK(t, err, "SetRunLifecycle(deleted)")
		wantCode(t, s.LogBatch(ctx, "ws", id, &atelier.RunBatch{Params: map[string]string{"p": "1"},
			Metrics: atelier.MetricBatch{Points: points("loss", []int64{0}, 1)}}), atelier.ECONFLICT, "LogBatch(deleted run)")
		if run := MustFindRun(t, s, "ws", id); len(run.Params) != 0 || len(run.Metrics) != 0 {
			t.Errorf("a refused batch stored params %v, metrics %v", run.Params, run.Metrics)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

var cmpEmptyFloat = cmp.Comparer(func(a, b []atelier.Float) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(float64(a[i])) != math.Float64bits(float64(b[i])) {
			return false
		}
	}
	return true
})
