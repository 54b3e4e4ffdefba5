package build

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWithoutAzureMLSDK(t *testing.T) {
	req := "# serving\nazureml-defaults>=1.40\nscikit-learn==1.5.2\nAzureML_Core[x] ; python_version > '3'\n" +
		"--index-url https://example.invalid/simple\n-r other.txt\nazureml_inference_server_http\nazure-storage-blob\nnumpy\n"
	kept, left := withoutAzureMLSDK([]byte(req))
	if want := []string{"azureml-defaults>=1.40", "AzureML_Core[x] ; python_version > '3'", "azureml_inference_server_http"}; !slices.Equal(left, want) {
		t.Errorf("left out %q, want %q", left, want)
	}
	if want := "# serving\nscikit-learn==1.5.2\n--index-url https://example.invalid/simple\n-r other.txt\nazure-storage-blob\nnumpy\n"; string(kept) != want {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if kept, left := withoutAzureMLSDK([]byte("numpy\n")); left != nil || string(kept) != "numpy\n" {
		t.Errorf("a file without them: %q, %q", kept, left)
	}
	for req, want := range map[string]bool{"": false, "# only a comment\n\n": false, "--index-url x\n": false,
		"numpy\n": true, "-r other.txt\n": true, "--editable ./pkg\n": true} {
		if hasRequirement([]byte(req)) != want {
			t.Errorf("hasRequirement(%q) = %v", req, !want)
		}
	}
}

// An environment written for Azure (azureml-defaults beside the model's packages) builds: the
// Azure ML SDK is left out, saying so, and the rest is installed; with nothing else, the image
// has no dependency layer at all.
func TestBuildLeavesOutTheAzureMLSDK(t *testing.T) {
	f := newFixture(t)
	mustWrite(t, f.spec.Requirements, "azureml-defaults\ngreet==1.0\n")
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	if !strings.Contains(res.Log, "left out of the requirements: azureml-defaults") || !strings.Contains(res.Log, "greet") {
		t.Errorf("the build log does not say azureml-defaults was left out and greet installed:\n%s", res.Log)
	}
	mustWrite(t, f.spec.Requirements, "azureml-defaults\n")
	f.spec.CacheDir = filepath.Join(t.TempDir(), "cache")
	out := filepath.Join(t.TempDir(), "out")
	res, err = Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	m, err := readLayout(t, out, "1").Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 4 { // base, runtime, models, source
		t.Errorf("%d layers, want 4 (no dependencies)", len(m.Layers))
	}
}
