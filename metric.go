package atelier

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
)

// Float is a metric value. JSON has no NaN or infinities, so they travel as the strings "NaN",
// "Infinity" and "-Infinity" (as MLflow's server writes them) and are stored faithfully.
type Float float64

func (f Float) MarshalJSON() ([]byte, error) { return AppendFloatJSON(nil, float64(f)), nil }

func (f *Float) UnmarshalJSON(b []byte) error {
	v, err := ParseFloatJSON(b)
	if err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// AppendFloatJSON appends v as a JSON number, or as a string for NaN and the infinities.
func AppendFloatJSON(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// ParseFloatJSON parses a JSON number or one of the strings AppendFloatJSON writes.
func ParseFloatJSON(b []byte) (float64, error) {
	if len(b) > 0 && b[0] == '"' {
		switch string(b) {
		case `"NaN"`, `"nan"`:
			return math.NaN(), nil
		case `"Infinity"`, `"inf"`, `"+Infinity"`:
			return math.Inf(1), nil
		case `"-Infinity"`, `"-inf"`:
			return math.Inf(-1), nil
		}
		return 0, Errorf(EINVALID, "metric value %s is not a number", b)
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, Errorf(EINVALID, "metric value %q is not a number", b)
	}
	return v, nil
}

// MetricKind says what a metric holds.
type MetricKind string

const (
	MetricScalar MetricKind = "scalar" // a series of (step, time, value)
	MetricList   MetricKind = "list"   // log_list: a vector of values
	MetricRow    MetricKind = "row"    // log_row: one row appended to a table
	MetricTable  MetricKind = "table"  // log_table: a dict of equal-length columns
	MetricImage  MetricKind = "image"  // log_image: an image stored as an output file
	MetricText   MetricKind = "text"   // log of a string: a text value (Azure ML v1's string metric)
)

// MetricPoint is one point of a scalar series. Timestamp is in milliseconds since the epoch.
// A nil Step means "the step after the last one logged for this name".
type MetricPoint struct {
	Name      string `json:"name"`
	Step      *int64 `json:"step,omitempty"`
	Timestamp int64  `json:"timestamp"`
	Value     Float  `json:"value"`
}

// MetricRecord is one value of a non-scalar metric (list, row, table, image or text).
type MetricRecord struct {
	Name      string          `json:"name"`
	Kind      MetricKind      `json:"kind"`
	Timestamp int64           `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
	// Path is the output file of an image metric.
	Path string `json:"path,omitempty"`
}

// MetricBatch is what one batch logging call carries.
type MetricBatch struct {
	Points  []MetricPoint  `json:"metrics"`
	Records []MetricRecord `json:"records,omitempty"`
}

// RunBatch is params, tags and metric points of one run logged together (MLflow's
// runs/log-batch): stored in one transaction, all of it or none of it.
type RunBatch struct {
	Params  map[string]string
	Tags    map[string]string
	Metrics MetricBatch
	// SkipDuplicates leaves out the points equal in name, step, timestamp and value to one
	// already stored or earlier in the batch, so that a retried batch logs nothing twice
	// (MLflow keeps one row per such point).
	SkipDuplicates bool
}

// Validate checks the whole batch before anything of it is stored.
func (b *RunBatch) Validate() error {
	if err := ValidateKeyValues("param", b.Params, MaxParamValue); err != nil {
		return err
	}
	if err := ValidateKeyValues("tag", b.Tags, MaxTagValue); err != nil {
		return err
	}
	return b.Metrics.Validate()
}

// Limits of a metric batch.
const (
	MaxPointsPerBatch  = 100000
	MaxRecordsPerBatch = 1000
	MaxRecordBytes     = 1 << 20
)

// Validate checks a batch before anything of it is stored, so a bad batch writes nothing.
func (b *MetricBatch) Validate() error {
	if len(b.Points) > MaxPointsPerBatch {
		return Errorf(EINVALID, "too many metric points in one batch: %d (limit %d)", len(b.Points), MaxPointsPerBatch)
	}
	if len(b.Records) > MaxRecordsPerBatch {
		return Errorf(EINVALID, "too many metric records in one batch: %d (limit %d)", len(b.Records), MaxRecordsPerBatch)
	}
	last := ""
	for i := range b.Points {
		p := &b.Points[i]
		if i == 0 || p.Name != last { // batches are usually runs of one name: validate each name once
			if err := ValidateMetricName(p.Name); err != nil {
				return Errorf(EINVALID, "metrics[%d]: %s", i, ErrorMessage(err))
			}
			last = p.Name
		}
		if p.Step != nil && *p.Step < 0 {
			return Errorf(EINVALID, "metrics[%d]: step %d is negative", i, *p.Step)
		}
		if p.Timestamp < 0 {
			return Errorf(EINVALID, "metrics[%d]: timestamp %d is negative", i, p.Timestamp)
		}
	}
	for i := range b.Records {
		r := &b.Records[i]
		if err := ValidateMetricName(r.Name); err != nil {
			return Errorf(EINVALID, "records[%d]: %s", i, ErrorMessage(err))
		}
		switch r.Kind {
		case MetricList, MetricRow, MetricTable:
			if len(r.Value) == 0 || !json.Valid(r.Value) || string(r.Value) == "null" {
				return Errorf(EINVALID, "records[%d]: value of %s metric %q is not valid JSON", i, r.Kind, r.Name)
			}
			if r.Path != "" {
				return Errorf(EINVALID, "records[%d]: %s metric %q has a path: only an image metric names a file", i, r.Kind, r.Name)
			}
		case MetricImage:
			if err := ValidatePath(r.Path); err != nil {
				return Errorf(EINVALID, "records[%d]: %s", i, ErrorMessage(err))
			}
		case MetricText:
			var text string
			if len(r.Value) == 0 || r.Value[0] != '"' || json.Unmarshal(r.Value, &text) != nil {
				return Errorf(EINVALID, "records[%d]: value of text metric %q is not a JSON string", i, r.Name)
			}
			if r.Path != "" {
				return Errorf(EINVALID, "records[%d]: text metric %q has a path: only an image metric names a file", i, r.Name)
			}
		default:
			return Errorf(EINVALID, "records[%d]: unknown metric kind %q (want list, row, table, image or text)", i, r.Kind)
		}
		if len(r.Value) > MaxRecordBytes {
			return Errorf(EINVALID, "records[%d]: value of metric %q is larger than %d bytes", i, r.Name, MaxRecordBytes)
		}
		if r.Timestamp < 0 {
			return Errorf(EINVALID, "records[%d]: timestamp %d is negative", i, r.Timestamp)
		}
	}
	return nil
}

// ValidateMetricName checks a metric's name: 1-MaxKeyLength bytes of UTF-8 without control
// characters. Unlike params and tags, leading and trailing spaces are kept, as Azure ML keeps them.
func ValidateMetricName(name string) error { return validateKeyText("metric", name) }

// MetricSummary is the latest value of one metric of a run.
type MetricSummary struct {
	Name      string     `json:"name"`
	Kind      MetricKind `json:"kind"`
	Step      int64      `json:"step"`
	Timestamp int64      `json:"timestamp"`
	Value     Float      `json:"value"`
	// Count is the number of points (scalars) or records logged under the name.
	Count int64 `json:"count"`
	// Last is the latest record of a non-scalar metric.
	Last json.RawMessage `json:"last,omitempty"`
}

// HistoryQuery selects a window of a series and optionally downsamples it.
type HistoryQuery struct {
	MinStep *int64 `json:"min_step,omitempty"`
	MaxStep *int64 `json:"max_step,omitempty"`
	// MaxPoints > 0 downsamples to at most that many buckets, each keeping its min, max and last.
	MaxPoints int `json:"max_points,omitempty"`
}

// Series is a scalar series in columns. When Downsampled is set, each index is one bucket of
// steps: Steps, Timestamps and Values are the bucket's last point, Min and Max its extremes
// (NaN points are ignored for Min and Max), so spikes survive downsampling.
type Series struct {
	Name        string  `json:"name"`
	Steps       []int64 `json:"steps"`
	Timestamps  []int64 `json:"timestamps"`
	Values      []Float `json:"values"`
	Downsampled bool    `json:"downsampled"`
	Min         []Float `json:"min,omitempty"`
	Max         []Float `json:"max,omitempty"`
	// Total is the number of points in the window before downsampling.
	Total int64 `json:"total"`
}

// MetricService logs and reads a run's metrics.
type MetricService interface {
	// LogMetrics stores a batch atomically: all of it or none of it.
	LogMetrics(ctx context.Context, workspace, runID string, batch *MetricBatch) error
	// ListMetrics returns the latest value of every metric of a run.
	ListMetrics(ctx context.Context, workspace, runID string) ([]*MetricSummary, error)
	MetricHistory(ctx context.Context, workspace, runID, name string, q HistoryQuery) (*Series, error)
	// MetricRecords returns every record of a non-scalar metric in logging order.
	MetricRecords(ctx context.Context, workspace, runID, name string) ([]*MetricRecord, error)
}
