package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/spf13/cobra"
)

// runIDLength is the length of a run id (32 hex digits); a shorter run argument made of hex
// digits is taken as the start of one, as git takes a commit's.
const runIDLength = 32

// maxPrefixCandidates is how many of the runs an ambiguous prefix matches are named.
const maxPrefixCandidates = 10

// resolveRun turns a unique prefix of a run id into the id, asking the server for the runs whose
// id starts with it. Anything else (a whole id, a name, an MLflow id of another form) is returned
// as it is, for the server to find or not.
func resolveRun(ctx context.Context, c *api.Client, workspace, arg string) (string, error) {
	if arg == "" || len(arg) >= runIDLength || strings.Trim(strings.ToLower(arg), "0123456789abcdef") != "" {
		return arg, nil
	}
	prefix := strings.ToLower(arg)
	page, err := c.ListRuns(ctx, workspace, atelier.RunQuery{Filter: "id like '" + prefix + "%'",
		OrderBy: "created_at desc", Limit: maxPrefixCandidates + 1})
	if err != nil {
		return "", err
	}
	switch len(page.Runs) {
	case 0:
		return "", atelier.Errorf(atelier.ENOTFOUND, "no run of workspace %s has an id starting with %s (see 'atelier run list')", workspace, prefix)
	case 1:
		return page.Runs[0].ID, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run id prefix %s is ambiguous: give more of the id. The runs whose ids start with it:", prefix)
	for i, r := range page.Runs {
		if i == maxPrefixCandidates {
			b.WriteString("\n  ... and more")
			break
		}
		fmt.Fprintf(&b, "\n  %s  %s  %s  %s", r.ID, r.Experiment, cell(r.Name), r.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return "", atelier.Errorf(atelier.EINVALID, "%s", b.String())
}

// resolveRunPrefixes makes every subcommand of group that takes runs as arguments (RUN in its
// usage line) accept a unique prefix of a run id for each: the prefixes are resolved before the
// command runs, so it sees whole ids.
func resolveRunPrefixes(cfg *clientConfig, group *cobra.Command) {
	for _, sub := range group.Commands() {
		first, all := runArgPositions(sub.Use)
		if first < 0 || sub.RunE == nil {
			continue
		}
		inner := sub.RunE
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			var c *api.Client
			for i := first; i < len(args) && (i == first || all); i++ {
				if len(args[i]) >= runIDLength {
					continue
				}
				if c == nil {
					var err error
					if c, err = cfg.client(); err != nil {
						return err
					}
				}
				id, err := resolveRun(cmd.Context(), c, cfg.workspace, args[i])
				if err != nil {
					return err
				}
				args[i] = id
			}
			return inner(cmd, args)
		}
	}
}

// runArgPositions reads a usage line ("show RUN", "compare RUN RUN [RUN...]"): the index of
// the first argument that is a run (-1: none), and whether every argument from there is one.
func runArgPositions(use string) (first int, all bool) {
	fields := strings.Fields(use)
	first = -1
	for i, f := range fields[1:] {
		if strings.Trim(f, "[].") != "RUN" {
			continue
		}
		if first < 0 {
			first = i
		} else {
			all = true
		}
	}
	return first, all
}
