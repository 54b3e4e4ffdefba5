package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/atelier-ml/atelier"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPlatform is what images are built for unless a Spec says otherwise: this machine's.
func DefaultPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// ImportBase reads a base image from path: an OCI image layout directory, an OCI archive (that
// layout in a tar) or a docker archive (what `docker save` and `podman save` write). When the
// layout holds several images (or a multi-platform index), the one for want is taken; a base
// for another platform is EINVALID, naming the platforms it offers.
func ImportBase(ctx context.Context, path string, want v1.Platform) (v1.Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "base image %s: not found", path)
	}
	var seen []string
	var img v1.Image
	if fi.IsDir() {
		idx, err := layout.ImageIndexFromPath(path)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "base image %s: not an OCI image layout: %v", path, err)
		}
		img, err = pickImage(ctx, idx, want, &seen)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "base image %s: %v", path, err)
		}
	} else {
		a, err := openTarball(path)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "base image %s: not a tar archive: %v", path, err)
		}
		_, oci := a.files["oci-layout"]
		_, docker := a.files["manifest.json"]
		switch {
		case oci:
			if img, err = a.pick(ctx, "index.json", want, &seen); err != nil {
				return nil, atelier.Errorf(atelier.EINVALID, "base image %s: a damaged OCI archive: %v", path, err)
			}
		case docker:
			if img, err = tarball.ImageFromPath(path, nil); err != nil {
				return nil, atelier.Errorf(atelier.EINVALID, "base image %s: a damaged docker archive: %v", path, err)
			}
			if err := checkPlatform(img, want); err != nil {
				return nil, err
			}
			return img, nil
		default:
			return nil, atelier.Errorf(atelier.EINVALID, "base image %s: neither an OCI archive (no oci-layout) nor a docker archive (no manifest.json)", path)
		}
	}
	if img == nil {
		if len(seen) == 0 {
			return nil, atelier.Errorf(atelier.EINVALID, "base image %s: the layout holds no image", path)
		}
		return nil, wrongPlatform("base image %s is for %s, not %s", path, strings.Join(seen, ", "), platformString(&want))
	}
	return img, nil
}

// pickImage finds the image of idx (or of the indexes it lists) that runs on want.
func pickImage(ctx context.Context, idx v1.ImageIndex, want v1.Platform, seen *[]string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := pickImage(ctx, child, want, seen); img != nil || err != nil {
				return img, err
			}
			continue
		}
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		if matches(cfg.Platform(), want) {
			return img, nil
		}
		*seen = append(*seen, platformString(cfg.Platform()))
	}
	return nil, nil
}

func checkPlatform(img v1.Image, want v1.Platform) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "base image: unreadable config: %v", err)
	}
	if !matches(cfg.Platform(), want) {
		return wrongPlatform("base image is for %s, not %s", platformString(cfg.Platform()), platformString(&want))
	}
	return nil
}

// ErrWrongPlatform is the cause of the EINVALID error of a base image for another platform
// than the one this machine builds for.
var ErrWrongPlatform = errors.New("the image is for another platform")

func wrongPlatform(format string, args ...any) error {
	e := atelier.Errorf(atelier.EINVALID, format, args...)
	e.Cause = ErrWrongPlatform
	return e
}

// matches compares what an image declares with what is wanted; a variant is compared only when
// both name one.
func matches(got *v1.Platform, want v1.Platform) bool {
	if got == nil {
		return false
	}
	if got.OS != want.OS || got.Architecture != want.Architecture {
		return false
	}
	return got.Variant == "" || want.Variant == "" || got.Variant == want.Variant
}

func platformString(p *v1.Platform) string {
	if p == nil || p.OS == "" {
		return "an unknown platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
