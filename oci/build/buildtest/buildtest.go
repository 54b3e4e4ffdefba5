// Package buildtest makes small base images for tests of image builds: one layer with
// /etc/os-release and a config declaring the platform and a Python (labels ai.atelier.python
// and ai.atelier.python.version), with no Python in it. The builder resolves dependencies and
// checks entry scripts with the host's python3, so such a base is enough to build on.
package buildtest

import (
	"archive/tar"
	"bytes"
	"io"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The labels a base declares its Python with (build.LabelPython and build.LabelPythonVersion;
// spelled out here so package build's own tests can use this package).
const (
	labelPython        = "ai.atelier.python"
	labelPythonVersion = "ai.atelier.python.version"
)

// Platform is this machine's platform, linux/GOARCH (what the builder builds for by default).
func Platform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// Image returns the base image for platform, declaring Python pyVersion ("" declares none).
func Image(platform v1.Platform, pyVersion string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("ID=atelier-test\n")
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = platform.OS, platform.Architecture
	cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cfg.Config.Labels = map[string]string{labelPythonVersion: pyVersion, labelPython: "/usr/bin/python3"}
	return mutate.ConfigFile(img, cfg)
}

// WriteLayout writes the base image for platform and pyVersion as an OCI image layout in dir
// (created if need be), what `atelier server --image-base DIR` takes.
func WriteLayout(dir string, platform v1.Platform, pyVersion string) error {
	img, err := Image(platform, pyVersion)
	if err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}
