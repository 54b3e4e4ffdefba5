//go:build !linux

package testdisk

import "errors"

func mount(dir, size string) error { return errors.New("tmpfs mounts are Linux's") }

func unmount(dir string) {}
