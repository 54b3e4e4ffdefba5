package build

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
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

// TestMeasureWheelLayers writes the layers of the wheels in $ATELIER_TEST_WHEELS (a directory,
// e.g. filled by pip download) one at a time and logs where the time goes: unzip and tar alone,
// then the whole layer (tar, gzip, both digests, the file), wall and CPU time of the process.
func TestMeasureWheelLayers(t *testing.T) {
	dir := os.Getenv("ATELIER_TEST_WHEELS")
	if dir == "" {
		t.Skip("set ATELIER_TEST_WHEELS to a directory of wheels")
	}
	wheels, _ := filepath.Glob(filepath.Join(dir, "*.whl"))
	c := &cache{dir: t.TempDir()}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var tarWall, tarCPU, allWall, allCPU time.Duration
	var raw, gz int64
	for _, w := range wheels {
		f, err := os.Open(w)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		zr, err := zip.NewReader(f, fi.Size())
		if err != nil {
			t.Fatal(err)
		}
		zr.RegisterDecompressor(zip.Deflate, func(r io.Reader) io.ReadCloser { return kflate.NewReader(r) })
		ref := wheelRef{Name: filepath.Base(w), URL: "file://" + w}
		t0, c0 := time.Now(), cpu()
		files, index, err := planWheel(zr, ref, "/usr/bin/python3")
		if err != nil {
			t.Fatal(err)
		}
		cw := &countWriter{w: io.Discard}
		if err := files.writeTar(cw, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		tw, tc := time.Since(t0), cpu()-c0
		t1, c1 := time.Now(), cpu()
		files, index, _ = planWheel(zr, ref, "/usr/bin/python3")
		l, err := c.put(filepath.Base(w), index, func(out io.Writer) error { return files.writeTar(out, time.Unix(0, 0)) })
		if err != nil {
			t.Fatal(err)
		}
		aw, ac := time.Since(t1), cpu()-c1
		t.Logf("%s: %d MB tar, %d MB gzip; plan+unzip+tar %s (CPU %s); layer %s (CPU %s)", filepath.Base(w), cw.n>>20, l.meta.Size>>20, tw.Round(time.Millisecond), tc.Round(time.Millisecond), aw.Round(time.Millisecond), ac.Round(time.Millisecond))
		tarWall, tarCPU, allWall, allCPU, raw, gz = tarWall+tw, tarCPU+tc, allWall+aw, allCPU+ac, raw+cw.n, gz+l.meta.Size
		f.Close()
	}
	t.Logf("all: %d MB tar, %d MB gzip; plan+unzip+tar %s (CPU %s); layers %s (CPU %s)", raw>>20, gz>>20, tarWall.Round(time.Millisecond), tarCPU.Round(time.Millisecond), allWall.Round(time.Millisecond), allCPU.Round(time.Millisecond))
}
