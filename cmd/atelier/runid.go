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

// resolveRun turns a unique prefix of a run id, or a run's name that no other run of the
// workspace has, into the run's id, asking the server for the runs whose id starts with it (or
// that have that name). Anything else (a whole id, an MLflow id of another form, a name no run
// has) is returned as it is, for the server to find or not.
func resolveRun(ctx context.Context, c *api.Client, workspace, arg string) (string, error) {
	if arg == "" || isRunID(arg) {
		return arg, nil
	}
	hex := len(arg) < runIDLength && strings.Trim(strings.ToLower(arg), "0123456789abcdef") == ""
	if hex {
		prefix := strings.ToLower(arg)
		page, err := c.ListRuns(ctx, workspace, atelier.RunQuery{Filter: "id like '" + prefix + "%'",
			OrderBy: "created_at desc", Limit: maxPrefixCandidates + 1})
		if err != nil {
			return "", err
		}
		switch len(page.Runs) {
		case 0: // perhaps a name
		case 1:
			return page.Runs[0].ID, nil
		default:
			return "", ambiguousRuns(fmt.Sprintf("run id prefix %s is ambiguous: give more of the id. The runs whose ids start with it:", prefix), page.Runs)
		}
	}
	page, err := c.ListRuns(ctx, workspace, atelier.RunQuery{Filter: "name = '" + strings.ReplaceAll(arg, "'", "''") + "'",
		OrderBy: "created_at desc", Limit: maxPrefixCandidates + 1})
	switch {
	case err != nil && hex:
		return "", err
	case err != nil: // not a name the query language takes: the server judges the argument
		return arg, nil
	case len(page.Runs) == 1:
		return page.Runs[0].ID, nil
	case len(page.Runs) > 1:
		return "", ambiguousRuns(fmt.Sprintf("run name %q is ambiguous: give the id (or a unique prefix of it) of one of the runs with that name:", arg), page.Runs)
	case hex:
		return "", atelier.Errorf(atelier.ENOTFOUND, "no run of workspace %s has an id starting with %s, or that name (see 'atelier run list')", workspace, strings.ToLower(arg))
	}
	return arg, nil
}

// isRunID tells a whole run id (32 hex digits) from a prefix or a name.
func isRunID(s string) bool {
	return len(s) == runIDLength && strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

// ambiguousRuns is the usage error (exit 2) of a run argument that names several runs: the
// first of them, newest first.
func ambiguousRuns(head string, runs []*atelier.Run) error {
	var b strings.Builder
	b.WriteString(head)
	for i, r := range runs {
		if i == maxPrefixCandidates {
			b.WriteString("\n  ... and more")
			break
		}
		fmt.Fprintf(&b, "\n  %s  %s  %s  %s", r.ID, r.Experiment, cell(r.Name), r.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return atelier.Errorf(atelier.EINVALID, "%s", b.String())
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
				if isRunID(args[i]) {
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
