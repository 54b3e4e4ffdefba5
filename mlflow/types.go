package mlflow

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The JSON shapes of MLflow's protos, as its server writes them (int64 as numbers).

// Experiment is MLflow's Experiment message.
type Experiment struct {
	ExperimentID     string   `json:"experiment_id"`
	Name             string   `json:"name"`
	ArtifactLocation string   `json:"artifact_location"`
	LifecycleStage   string   `json:"lifecycle_stage"`
	LastUpdateTime   int64    `json:"last_update_time"`
	CreationTime     int64    `json:"creation_time"`
	Tags             []KeyVal `json:"tags,omitempty"`
}

// KeyVal is a param, a run tag or an experiment tag.
type KeyVal struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Metric is one metric point.
type Metric struct {
	Key       string        `json:"key"`
	Value     atelier.Float `json:"value"`
	Timestamp int64         `json:"timestamp"`
	Step      int64         `json:"step"`
	RunID     string        `json:"run_id,omitempty"`
	// MLflow 3: the logged model the value was measured on, and the data set.
	ModelID       string `json:"model_id,omitempty"`
	DatasetName   string `json:"dataset_name,omitempty"`
	DatasetDigest string `json:"dataset_digest,omitempty"`
}

// RunInfo is MLflow's RunInfo message.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        *int64 `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// RunData holds a run's latest metrics, params and tags.
type RunData struct {
	Metrics []Metric `json:"metrics"`
	Params  []KeyVal `json:"params"`
	Tags    []KeyVal `json:"tags"`
}

// Run is MLflow's Run message.
type Run struct {
	Info    RunInfo         `json:"info"`
	Data    RunData         `json:"data"`
	Inputs  json.RawMessage `json:"inputs"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
}

// FileInfo is an artifact listing entry.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize *int64 `json:"file_size,omitempty"`
}

// jint is an int64 that reads from a JSON number or a string (proto JSON writes int64 as strings).
type jint struct {
	V   int64
	Set bool
}

func (n *jint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return invalidParam("invalid integer %s", b)
		}
		v = int64(f)
	}
	n.V, n.Set = v, true
	return nil
}

// jfloat is a metric value: a number, or a string such as "NaN" or "Infinity" (or a number
// written as a string, as query parameters are).
type jfloat struct {
	V   float64
	Set bool
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v, err := atelier.ParseFloatJSON(b)
	if err != nil && len(b) > 1 && b[0] == '"' {
		v, err = strconv.ParseFloat(string(b[1:len(b)-1]), 64)
	}
	if err != nil {
		return invalidParam("invalid metric value %s", b)
	}
	f.V, f.Set = v, true
	return nil
}

// jstring is a string that also reads a JSON number or boolean (for values sent untyped).
type jstring string

func (s *jstring) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jstring(v)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	// As MLflow's server (protobuf's JSON parsing): a number or anything else where a string
	// belongs is refused, not read as its text.
	v := string(b)
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return &json.UnmarshalTypeError{Value: v, Type: reflect.TypeOf(jstring(""))}
}

// jlist is a list of strings that also reads a single string (a query parameter given once).
type jlist []string

func (l *jlist) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = jlist{v}
		return nil
	}
	var v []string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = v
	return nil
}

// jbool reads true/false or their strings.
type jbool bool

func (v *jbool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	x, err := strconv.ParseBool(s)
	if err != nil {
		return invalidParam("invalid boolean %s", b)
	}
	*v = jbool(x)
	return nil
}

// inKeyVal is a key/value pair as received.
type inKeyVal struct {
	Key   jstring `json:"key"`
	Value jstring `json:"value"`
}

// inMetric is a metric point as received.
type inMetric struct {
	Key       jstring `json:"key"`
	Value     jfloat  `json:"value"`
	Timestamp jint    `json:"timestamp"`
	Step      jint    `json:"step"`
	// MLflow 3: the metric is also measured on a logged model, on a data set.
	ModelID       jstring `json:"model_id"`
	DatasetName   jstring `json:"dataset_name"`
	DatasetDigest jstring `json:"dataset_digest"`
}
