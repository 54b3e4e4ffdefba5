package atelier

import (
	"strings"
	"testing"
)

func TestParseModelRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ModelRef
		ok   bool
	}{
		{"diabetes", ModelRef{Name: "diabetes"}, true},
		{"diabetes:3", ModelRef{Name: "diabetes", Version: 3}, true},
		{"diabetes:latest", ModelRef{Name: "diabetes"}, true},
		{"diabetes@production", ModelRef{Name: "diabetes", Alias: "production"}, true},
		{"my.model_v2-x:12", ModelRef{Name: "my.model_v2-x", Version: 12}, true},
		{strings.Repeat("a", 255), ModelRef{Name: strings.Repeat("a", 255)}, true},
		{strings.Repeat("a", 256), ModelRef{}, false},
		{"", ModelRef{}, false},
		{"diabetes:", ModelRef{}, false},
		{"diabetes:0", ModelRef{}, false},
		{"diabetes:-1", ModelRef{}, false},
		{"diabetes:x", ModelRef{}, false},
		{"diabetes:3x", ModelRef{}, false},
		{"diabetes@", ModelRef{}, false},
		{"diabetes@1prod", ModelRef{}, false},
		{"diabetes@latest", ModelRef{}, false},
		{"a b", ModelRef{Name: "a b"}, true},
		{"diabetes ridge (v2)", ModelRef{}, false},
		{"my model:2", ModelRef{Name: "my model", Version: 2}, true},
		{"a ", ModelRef{}, false},
		{" a", ModelRef{}, false},
		{"-x", ModelRef{}, false},
		{"a/b:1", ModelRef{}, false},
	} {
		got, err := ParseModelRef(tc.in)
		if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
			t.Errorf("ParseModelRef(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ParseModelRef(%q): code %s, want invalid", tc.in, ErrorCode(err))
		}
		if tc.ok {
			if back, err := ParseModelRef(got.String()); err != nil || back != got {
				t.Errorf("ParseModelRef(%q.String()) = %+v, %v", tc.in, back, err)
			}
		}
	}
}

func TestValidateModelFiles(t *testing.T) {
	d := strings.Repeat("a", 64)
	ok := []ModelFile{{Path: "m/b", Digest: d}, {Path: "m/a", Digest: d}, {Path: "m-x", Digest: d}}
	if err := ValidateModelFiles(ok); err != nil || ok[0].Path != "m-x" {
		t.Errorf("ValidateModelFiles = %v, sorted %v", err, ok)
	}
	for _, bad := range [][]ModelFile{
		{{Path: "m", Digest: d}, {Path: "m-x", Digest: d}, {Path: "m/a", Digest: d}},
		{{Path: "a", Digest: d}, {Path: "a", Digest: d}},
		{{Path: "/a", Digest: d}},
		{{Path: "a", Digest: "x"}},
		{{Path: "a", Digest: d, Size: -1}},
	} {
		if err := ValidateModelFiles(bad); ErrorCode(err) != EINVALID {
			t.Errorf("ValidateModelFiles(%v) = %v, want invalid", bad, err)
		}
	}
}

func TestModelReferenceRegister(t *testing.T) {
	for _, tc := range []struct {
		req ModelRegister
		ok  bool
	}{
		{ModelRegister{Name: "m", Source: "s3://bucket/path/model"}, true},
		{ModelRegister{Name: "m", Source: "gs://bucket/path/model", RunID: "r"}, true},
		{ModelRegister{Name: "m", Source: "dbfs:/databricks/mlflow/model"}, true},
		{ModelRegister{Name: "m", Source: "https://example.com/m.tar.gz?x=1"}, true},
		{ModelRegister{Name: "m", Source: "runs:/0123/no-files"}, true},
		{ModelRegister{Name: "m", Source: "/tmp/model"}, false},
		{ModelRegister{Name: "m", Source: "model"}, false},
		{ModelRegister{Name: "m", Source: `C:\models\m`}, false},
		{ModelRegister{Name: "m", Source: "file:///tmp/model"}, false},
		{ModelRegister{Name: "m", Source: "FILE:/tmp/model"}, false},
		{ModelRegister{Name: "m", Source: "s3://bucket/a/../../model"}, false},
		{ModelRegister{Name: "m", Source: "s3://bucket/a\nb"}, false},
		{ModelRegister{Name: "m", Source: "s3://bucket/" + strings.Repeat("a", MaxModelSourceLength)}, false},
		{ModelRegister{Name: "m", Source: "s3://bucket/m", RunID: "r", Path: "outputs/m"}, false},
		{ModelRegister{Name: "m", Source: "s3://bucket/m", Files: []ModelFile{{Path: "a", Digest: strings.Repeat("0", 64)}}}, false},
		{ModelRegister{Name: "m"}, false},
	} {
		err := tc.req.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.req, err, tc.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("Validate(%+v): code %s", tc.req, ErrorCode(err))
		}
	}
	v := &ModelVersion{Name: "m", Version: 3, Source: "s3://b/k"}
	if !v.IsReference() || ErrorMessage(v.NotStored()) != "model m:3 is a reference to s3://b/k; its files are not stored in atelier" {
		t.Errorf("NotStored = %v", v.NotStored())
	}
}
