package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `atelier version` says, and what the server's health check tells.
type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Time    string `json:"commit_time,omitempty"`
	Go      string `json:"go"`
}

// buildVersion reads the version Go recorded in the binary: the module's version when it was
// installed as a module, else the commit of the checkout it was built from.
func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if v.Version == "(devel)" && v.Commit != "" {
		v.Version = v.Commit[:min(12, len(v.Commit))]
		if dirty {
			v.Version += "+dirty"
		}
	}
	return v
}

func (v versionInfo) String() string {
	s := "atelier " + v.Version
	if v.Commit != "" && v.Version != v.Commit[:min(12, len(v.Commit))] {
		s += " (commit " + v.Commit[:min(12, len(v.Commit))] + ")"
	}
	return s + " " + v.Go
}

func newVersionCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print atelier's version (this binary's; the server's is in its health check)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintln(cmd.OutOrStdout(), printable(v.String()))
			return nil
		},
	}
}
