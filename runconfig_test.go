package atelier_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestRunConfigData(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []atelier.DataReference
		err  string // empty: valid
	}{
		{name: "download folder", data: []atelier.DataReference{{Name: "train", Datastore: "lake", Path: "diabetes/"}}},
		{name: "file and root", data: []atelier.DataReference{{Name: "a_1", Datastore: "lake", Path: "x/y.csv"},
			{Name: "B", Datastore: "default", Mode: "upload"}}},
		{name: "bad name", data: []atelier.DataReference{{Name: "tr-ain", Datastore: "lake"}}, err: "data name"},
		{name: "same variable", data: []atelier.DataReference{{Name: "train", Datastore: "lake"}, {Name: "TRAIN", Datastore: "lake"}},
			err: "ATELIER_DATA_TRAIN"},
		{name: "no datastore", data: []atelier.DataReference{{Name: "x"}}, err: "datastore is required"},
		{name: "bad datastore", data: []atelier.DataReference{{Name: "x", Datastore: "a b"}}, err: "datastore"},
		{name: "escaping path", data: []atelier.DataReference{{Name: "x", Datastore: "lake", Path: "../etc/"}}, err: "invalid path"},
		{name: "absolute path", data: []atelier.DataReference{{Name: "x", Datastore: "lake", Path: "/etc"}}, err: "invalid path"},
		{name: "unknown mode", data: []atelier.DataReference{{Name: "x", Datastore: "lake", Mode: "stream"}}, err: "unknown mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := atelier.RunConfig{Script: "train.py", Data: tc.data}
			err := c.Validate(nil)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range c.Data {
					if r.Mode != atelier.DataDownload && r.Mode != atelier.DataUpload {
						t.Errorf("%s: mode %q after Validate", r.Name, r.Mode)
					}
				}
				return
			}
			if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.err) {
				t.Errorf("Validate = %v, want EINVALID containing %q", err, tc.err)
			}
		})
	}
}

// A run's resources out of range are refused naming the setting and its range.
func TestRunConfigResources(t *testing.T) {
	for _, tc := range []struct {
		c   atelier.RunConfig
		err string
	}{
		{atelier.RunConfig{Script: "t.py", NodeCount: -1}, "node_count -1 is out of range"},
		{atelier.RunConfig{Script: "t.py", GPUs: 65}, "gpus 65 is out of range"},
		{atelier.RunConfig{Script: "t.py", ProcessCountPerNode: -2}, "process_count_per_node -2 is out of range (1 to 256; 0 for 1)"},
		{atelier.RunConfig{Script: "t.py", ProcessCountPerNode: 257}, "process_count_per_node 257 is out of range"},
	} {
		if err := tc.c.Validate(nil); atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.err) {
			t.Errorf("Validate(%+v) = %v, want EINVALID containing %q", tc.c, err, tc.err)
		}
	}
	if c := (atelier.RunConfig{NodeCount: 2, ProcessCountPerNode: 4}); c.Processes() != 8 {
		t.Errorf("2 nodes × 4 processes = %d processes", c.Processes())
	}
	if c := (atelier.RunConfig{}); c.Processes() != 1 {
		t.Errorf("an empty configuration starts %d processes", c.Processes())
	}
}
