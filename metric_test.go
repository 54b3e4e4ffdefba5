package atelier_test

import (
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestMetricNamesKeepTheirSpaces: Azure ML accepts metric names with leading or trailing
// spaces (issue 24); params and tags still refuse them, and a metric name stays non-empty
// UTF-8 without control characters.
func TestMetricNamesKeepTheirSpaces(t *testing.T) {
	for _, name := range []string{" lead", "trail ", " both ", " "} {
		b := atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: name, Value: 1}},
			Records: []atelier.MetricRecord{{Name: name + "rec", Kind: atelier.MetricList, Value: []byte(`[1]`)}}}
		if err := b.Validate(); err != nil {
			t.Errorf("metric name %q refused: %v", name, err)
		}
		if err := atelier.ValidateKey("tag", name); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("tag name %q: %v, want EINVALID", name, err)
		}
	}
	for _, name := range []string{"", "a\x01", "bad\xff", string(make([]byte, atelier.MaxKeyLength+1))} {
		b := atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: name, Value: 1}}}
		if err := b.Validate(); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("metric name %q: %v, want EINVALID", name, err)
		}
	}
}

// TestTextMetricRecord: a text record holds a JSON string and names no file (issue 24).
func TestTextMetricRecord(t *testing.T) {
	ok := atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "note", Kind: atelier.MetricText, Value: []byte(`"some text"`)},
		{Name: "empty", Kind: atelier.MetricText, Value: []byte(`""`)}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("text records refused: %v", err)
	}
	for _, r := range []atelier.MetricRecord{
		{Name: "n", Kind: atelier.MetricText, Value: []byte(`1`)},
		{Name: "n", Kind: atelier.MetricText, Value: []byte(`null`)},
		{Name: "n", Kind: atelier.MetricText},
		{Name: "n", Kind: atelier.MetricText, Value: []byte(`"unterminated`)},
		{Name: "n", Kind: atelier.MetricText, Value: []byte(`"a"`), Path: "outputs/a.txt"},
	} {
		b := atelier.MetricBatch{Records: []atelier.MetricRecord{r}}
		if err := b.Validate(); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("text record %s (path %q): %v, want EINVALID", r.Value, r.Path, err)
		}
	}
}
