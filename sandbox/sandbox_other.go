//go:build !linux

package sandbox

import "os/exec"

// Elsewhere than Linux there is no confinement: the isolation is "none".
func probe() Capabilities { return Capabilities{} }

func prepare(cmd *exec.Cmd, caps Capabilities) error { return nil }

// Main returns at once: no Launcher starts confined processes here.
func Main() {}
