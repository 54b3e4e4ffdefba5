package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMeasureRealRequirements installs scikit-learn from the configured package index for a
// Python 3.11 linux image and logs how long the dependencies layer and a rebuild take. It needs
// the index, so it runs only with ATELIER_TEST_PIP_INDEX=1.
func TestMeasureRealRequirements(t *testing.T) {
	if os.Getenv("ATELIER_TEST_PIP_INDEX") != "1" {
		t.Skip("set ATELIER_TEST_PIP_INDEX=1 to install scikit-learn from the package index")
	}
	f := newFixture(t)
	mustWrite(t, f.spec.Requirements, "scikit-learn==1.5.2\n")
	mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), "def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
	f.spec.PipArgs = nil
	out := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	t.Logf("cold build with scikit-learn: %s, image %d bytes", time.Since(start), res.Size)
	for _, l := range res.Layers {
		t.Logf("layer %s: %d bytes in %s", l.Name, l.Size, l.Duration)
	}
	mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), "def init():\n    pass\n\n\ndef run(raw):\n    return raw + raw\n")
	start = time.Now()
	if res, err = Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "2"}); err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	t.Logf("rebuild after a score.py change: %s", time.Since(start))
	readLayout(t, out, "2")
}
