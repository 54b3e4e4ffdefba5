package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

// comparedField is one row of run compare: a param, metric (its latest value) or tag, with the
// value of each run in the order given (nil where a run has none).
type comparedField struct {
	Field   string `json:"field"` // params.alpha, metrics.rmse, tags.model
	Values  []any  `json:"values"`
	Differs bool   `json:"differs"`
}

// comparison is what run compare -o json prints.
type comparison struct {
	Runs   []*atelier.Run  `json:"runs"`
	Fields []comparedField `json:"fields"`
}

func runCompareCmd(cfg *clientConfig) *cobra.Command {
	var differing bool
	cmd := &cobra.Command{
		Use:   "compare RUN RUN [RUN...]",
		Short: "Show runs' params, metrics (latest values) and tags side by side; * marks rows that differ",
		Example: `  atelier run compare 01a24c8f 01a24c90
  atelier run compare A B C --differing -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("%s takes two runs or more, got %d; see '%s --help'", cmd.CommandPath(), len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			runs := make([]*atelier.Run, len(args))
			for i, id := range args {
				if runs[i], err = c.FindRun(cmd.Context(), cfg.workspace, id); err != nil {
					return err
				}
			}
			cmp := comparison{Runs: runs, Fields: compareRuns(runs)}
			if differing {
				kept := cmp.Fields[:0]
				for _, f := range cmp.Fields {
					if f.Differs {
						kept = append(kept, f)
					}
				}
				cmp.Fields = kept
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), cmp)
			}
			header := []string{"FIELD"}
			for _, r := range runs {
				header = append(header, r.ID)
			}
			t := newTable(cmd.OutOrStdout(), header...)
			now := time.Now()
			attr := func(name string, value func(r *atelier.Run) any) {
				row := []any{"  " + name}
				for _, r := range runs {
					row = append(row, value(r))
				}
				t.row(row...)
			}
			attr("experiment", func(r *atelier.Run) any { return r.Experiment })
			attr("name", func(r *atelier.Run) any { return r.Name })
			attr("status", func(r *atelier.Run) any { return r.Status })
			attr("duration", func(r *atelier.Run) any { return r.Duration(now) })
			for _, f := range cmp.Fields {
				mark := "  "
				if f.Differs {
					mark = "* "
				}
				row := []any{mark + f.Field}
				for _, v := range f.Values {
					row = append(row, v) // a metric at the tables' precision (cell)
				}
				t.row(row...)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&differing, "differing", false, "only the params, metrics and tags whose values differ")
	return cmd
}

// compareRuns lines up the params, then the metrics, then the tags of runs, each group sorted
// by name.
func compareRuns(runs []*atelier.Run) []comparedField {
	var fields []comparedField
	group := func(prefix string, keys func(r *atelier.Run) []string, value func(r *atelier.Run, k string) (any, bool)) {
		seen := map[string]bool{}
		for _, r := range runs {
			for _, k := range keys(r) {
				seen[k] = true
			}
		}
		names := make([]string, 0, len(seen))
		for k := range seen {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			f := comparedField{Field: prefix + k, Values: make([]any, len(runs))}
			var first string
			for i, r := range runs {
				v, ok := value(r, k)
				if ok {
					f.Values[i] = v
				}
				// Compared as printed in JSON, so 0.1 and a missing value differ and NaN equals NaN.
				b, _ := json.Marshal(f.Values[i])
				if i == 0 {
					first = string(b)
				} else if string(b) != first {
					f.Differs = true
				}
			}
			fields = append(fields, f)
		}
	}
	group("params.", func(r *atelier.Run) []string { return keysOf(r.Params) },
		func(r *atelier.Run, k string) (any, bool) { v, ok := r.Params[k]; return v, ok })
	group("metrics.", func(r *atelier.Run) []string { return keysOf(r.Metrics) },
		func(r *atelier.Run, k string) (any, bool) { v, ok := r.Metrics[k]; return v, ok })
	group("tags.", func(r *atelier.Run) []string { return keysOf(r.Tags) },
		func(r *atelier.Run, k string) (any, bool) { v, ok := r.Tags[k]; return v, ok })
	return fields
}

func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func runFilesCmd(cfg *clientConfig) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "files RUN [--prefix DIR]",
		Short: "List a run's files (outputs, logs) with their sizes",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			files, err := c.ListFiles(cmd.Context(), cfg.workspace, args[0], prefix)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				if files == nil {
					files = []*atelier.File{}
				}
				return printJSON(cmd.OutOrStdout(), files)
			}
			t := newTable(cmd.OutOrStdout(), "PATH", "SIZE", "CREATED")
			var total int64
			for _, f := range files {
				size := humanBytes(f.Size)
				if f.Log && f.Digest == "" {
					size += " (growing)"
				}
				t.row(f.Path, size, f.CreatedAt)
				total += f.Size
			}
			if err := t.flush(); err != nil {
				return err
			}
			cfg.done("%d %s, %s", len(files), plural(len(files), "file", "files"), humanBytes(total))
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only the files under this directory of the run (e.g. outputs)")
	return cmd
}

func runUntagCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "untag RUN KEY [KEY...]", Short: "Remove tags from a run",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("%s takes a run and at least one tag key, got %d %s; see '%s --help'", cmd.CommandPath(), len(args), plural(len(args), "argument", "arguments"), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			for _, key := range args[1:] {
				if err := c.DeleteTag(cmd.Context(), cfg.workspace, args[0], key); err != nil {
					return err
				}
				cfg.done("removed tag %s from run %s", key, args[0])
			}
			return nil
		},
	}
}

func runRerunCmd(cfg *clientConfig) *cobra.Command {
	var wait bool
	var name string
	var tags []string
	cmd := &cobra.Command{
		Use:   "rerun RUN",
		Short: "Submit a run again: the same snapshot and run configuration, as a new run (property rerun_of names the original)",
		Long: `Submit a run again: a new run of the same experiment, from the same snapshot of the source
and the same run configuration (script, arguments, environment, compute target, data, secrets).
The new run's property rerun_of holds the original's id.

With --wait the command streams the new run's status and output until it ends and exits 0
only when it Completed (7 when it Failed or was Canceled), as run submit --wait does.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tagMap, err := parseKeyValues("tag", tags)
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			orig, err := c.FindRun(ctx, cfg.workspace, args[0])
			if err != nil {
				return err
			}
			if orig.SnapshotID == "" || len(orig.Config) == 0 || orig.Compute == "" {
				return atelier.Errorf(atelier.EINVALID, "run %s was not submitted (it has no snapshot and run configuration to run again): only runs of 'atelier run submit' can be rerun", orig.ID)
			}
			var rc atelier.RunConfig
			if err := json.Unmarshal(orig.Config, &rc); err != nil {
				return fmt.Errorf("run %s: reading its run configuration: %w", orig.ID, err)
			}
			sub := atelier.RunSubmit{Experiment: orig.Experiment, Name: orig.Name, SnapshotID: orig.SnapshotID,
				Config: rc, Git: orig.Git, Tags: tagMap}
			if cmd.Flags().Changed("name") {
				sub.Name = name
			}
			run, err := c.SubmitRun(ctx, cfg.workspace, sub)
			if err != nil {
				return err
			}
			// Properties are immutable: the link cannot be changed afterwards.
			if err := c.AddProperties(ctx, cfg.workspace, run.ID, map[string]string{RerunOfProperty: orig.ID}); err != nil {
				return fmt.Errorf("run %s was submitted, but linking it to %s failed: %w", run.ID, orig.ID, err)
			}
			if run.Properties == nil {
				run.Properties = map[string]string{}
			}
			run.Properties[RerunOfProperty] = orig.ID
			if !wait {
				cfg.done("submitted run %s again as run %s", orig.ID, run.ID)
			}
			return followSubmitted(cmd, cfg, c, run, wait)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "stream status and output until the run ends; exit 0 only if it Completed")
	f.StringVar(&name, "name", "", "display name of the new run (default: the original's)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE of the new run (repeatable)")
	return cmd
}

// RerunOfProperty is the property of a run made by run rerun that names the run it repeats.
const RerunOfProperty = "rerun_of"
