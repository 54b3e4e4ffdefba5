package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/archive"
	"github.com/spf13/cobra"
)

func sortStrings(s []string) { sort.Strings(s) }

// parseKeyValues turns k=v flags into a map.
func parseKeyValues(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func newRunCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "run", Short: "Create, log to, query and download runs",
		Long: `Create, log to, query and download runs.

A RUN argument is a run's id or a unique prefix of it, as git takes a commit's (ids begin with
their creation time, so the part that tells runs made together apart is at the end: give more
than the first 12 characters), or its name when no other run of the workspace has it. An
ambiguous prefix or name is refused (exit 2) with the runs it names.`}
	cmd.AddCommand(runSubmitCmd(cfg), runCreateCmd(cfg), runLogCmd(cfg), runKVCmd(cfg, "param", "Set a param (immutable once set)"),
		runKVCmd(cfg, "tag", "Set a tag"), runKVCmd(cfg, "property", "Set a property (immutable once set)"),
		runUploadCmd(cfg), runEndCmd(cfg, "complete", atelier.StatusCompleted), runEndCmd(cfg, "fail", atelier.StatusFailed),
		runCancelCmd(cfg),
		runListCmd(cfg), runShowCmd(cfg), runMetricsCmd(cfg), runLogsCmd(cfg), runDownloadCmd(cfg), runChildrenCmd(cfg),
		runCompareCmd(cfg), runFilesCmd(cfg), runUntagCmd(cfg), runRerunCmd(cfg))
	resolveRunPrefixes(cfg, cmd)
	return cmd
}

func runCreateCmd(cfg *clientConfig) *cobra.Command {
	var c atelier.RunCreate
	var params, tags []string
	var source, status string
	var opt archive.Options
	cmd := &cobra.Command{
		Use:   "create --experiment E",
		Short: "Create a run (an interactive run: log to it, then complete or fail it)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if c.Params, err = parseKeyValues("param", params); err != nil {
				return err
			}
			if c.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			c.Status = atelier.RunStatus(status)
			if c.Experiment == "" && c.ParentID == "" {
				return usagef("--experiment is required (or --parent for a child run)")
			}
			client, err := cfg.client()
			if err != nil {
				return err
			}
			if c.ParentID, err = resolveRun(cmd.Context(), client, cfg.workspace, c.ParentID); err != nil {
				return err
			}
			if source != "" {
				snap, err := uploadSnapshot(cmd.Context(), client, cfg.workspace, source, opt)
				if err != nil {
					return err
				}
				c.SnapshotID = snap.ID
				c.Git = gitInfo(source)
			}
			run, err := client.CreateRun(cmd.Context(), cfg.workspace, c)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), run)
			}
			fmt.Fprintln(cmd.OutOrStdout(), run.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&c.Experiment, "experiment", "e", "", "experiment name (created on first use)")
	f.StringVar(&c.Name, "name", "", "display name")
	f.StringVar(&c.ParentID, "parent", "", "parent run id, or a unique prefix of it (makes a child run)")
	f.StringVar(&status, "status", string(atelier.StatusRunning), "initial status")
	f.StringArrayVar(&params, "param", nil, "param KEY=VALUE (repeatable)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.StringVar(&source, "source", "", "snapshot this directory and attach it to the run")
	snapshotFlags(cmd, &opt)
	return cmd
}

func runLogCmd(cfg *clientConfig) *cobra.Command {
	var step int64 = -1
	cmd := &cobra.Command{
		Use: "log RUN NAME VALUE", Short: "Log a metric value", Args: exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := atelier.ParseFloatJSON([]byte(args[2]))
			if err != nil {
				if f, ok := parseSpecialFloat(args[2]); ok {
					v = f
				} else {
					return usagef("metric value %q is not a number", args[2])
				}
			}
			p := atelier.MetricPoint{Name: args[1], Value: atelier.Float(v), Timestamp: time.Now().UnixMilli()}
			if cmd.Flags().Changed("step") {
				p.Step = &step
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if err := c.LogMetrics(cmd.Context(), cfg.workspace, args[0], &atelier.MetricBatch{Points: []atelier.MetricPoint{p}}); err != nil {
				return err
			}
			cfg.done("logged %s = %s to run %s", args[1], args[2], args[0])
			return nil
		},
	}
	cmd.Flags().Int64Var(&step, "step", 0, "step (default: the one after the last logged)")
	return cmd
}

func parseSpecialFloat(s string) (float64, bool) {
	v, err := atelier.ParseFloatJSON([]byte(strconv.Quote(s)))
	return v, err == nil
}

func runKVCmd(cfg *clientConfig, kind, short string) *cobra.Command {
	return &cobra.Command{
		Use: kind + " RUN KEY VALUE", Short: short, Args: exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			kv := map[string]string{args[1]: args[2]}
			switch kind {
			case "param":
				err = c.LogParams(cmd.Context(), cfg.workspace, args[0], kv)
			case "tag":
				err = c.SetTags(cmd.Context(), cfg.workspace, args[0], kv)
			default:
				err = c.AddProperties(cmd.Context(), cfg.workspace, args[0], kv)
			}
			if err == nil {
				cfg.done("set %s %s = %s on run %s", kind, args[1], args[2], args[0])
			}
			return err
		},
	}
}

func runUploadCmd(cfg *clientConfig) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use: "upload RUN FILE", Short: "Upload a file to a run (default path outputs/<file name>)", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				path = "outputs/" + filepath.Base(args[1])
			}
			if err := atelier.ValidatePath(path); err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			file, err := uploadFile(cmd.Context(), c, cfg.workspace, args[0], args[1], path)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), file)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n", printable(file.Path), humanBytes(file.Size))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "path in the run")
	return cmd
}

// uploadFile streams a local file to a run with a progress bar.
func uploadFile(ctx context.Context, c *api.Client, workspace, runID, local, path string) (*atelier.File, error) {
	f, err := os.Open(local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, usagef("%s is a directory: upload files one at a time", local)
	}
	bar := newProgress(os.Stderr, "uploading "+filepath.Base(local), progressThreshold(fi.Size()))
	defer bar.done()
	return c.UploadFile(ctx, workspace, runID, path, bar.reader(f), "")
}

// progressThreshold hides the bar for small transfers.
func progressThreshold(size int64) int64 {
	if size < 8<<20 {
		return 0
	}
	return size
}

func runEndCmd(cfg *clientConfig, verb string, status atelier.RunStatus) *cobra.Command {
	var msg string
	cmd := &cobra.Command{
		Use: verb + " RUN", Short: "Mark a run " + string(status), Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			run, err := c.UpdateRunStatus(cmd.Context(), cfg.workspace, args[0], atelier.RunStatusUpdate{Status: status, Error: msg})
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), run)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", run.ID, run.Status)
			return nil
		},
	}
	if status == atelier.StatusFailed {
		cmd.Flags().StringVar(&msg, "error", "", "why the run failed")
	}
	return cmd
}

func runListCmd(cfg *clientConfig) *cobra.Command {
	var q atelier.RunQuery
	var all, withDeleted bool
	var columns string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List and search runs (see docs/filter.md for the filter language)",
		Long: `List and search runs (see docs/filter.md for the filter language).

The table shows metrics to 6 significant digits (-o json gives them whole), each child run
indented under its parent when both are listed, and a column for every field the runs are
ordered by. --columns chooses the columns.`,
		Example: `  atelier run list --experiment diabetes --filter "metrics.rmse < 60 and params.alpha = '0.1'" --order-by "metrics.rmse asc"
  atelier run list -e diabetes --columns name,status,params.alpha,metrics.rmse,tags.team`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cols, err := parseRunColumns(columns)
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if !withDeleted {
				q.Lifecycle = atelier.LifecycleActive
			}
			var runs []*atelier.Run
			more := false
			for {
				page, err := c.ListRuns(cmd.Context(), cfg.workspace, q)
				if err != nil {
					return err
				}
				runs = append(runs, page.Runs...)
				if !all || page.NextPageToken == "" {
					more = page.NextPageToken != ""
					q.PageToken = page.NextPageToken
					break
				}
				q.PageToken = page.NextPageToken
			}
			if more && cfg.output != "json" {
				rest := countMoreRuns(cmd.Context(), c, cfg.workspace, q)
				defer fmt.Fprintf(os.Stderr, "(%d %s shown; %s: --all lists them all, --limit N more at once)\n", len(runs), plural(len(runs), "run", "runs"), rest)
			}
			if len(runs) == 0 && q.Experiment != "" {
				// No run, or no such experiment (a typo)? Say which.
				if _, err := c.FindExperiment(cmd.Context(), cfg.workspace, q.Experiment); atelier.ErrorCode(err) == atelier.ENOTFOUND {
					return atelier.Errorf(atelier.ENOTFOUND, "workspace %s has no experiment %q (see 'atelier experiment list')", cfg.workspace, q.Experiment)
				}
			}
			if cfg.output == "json" {
				if runs == nil {
					runs = []*atelier.Run{} // [], not null: scripts iterate it
				}
				return printJSON(cmd.OutOrStdout(), runs)
			}
			return printRuns(cmd.OutOrStdout(), runs, withOrderColumns(cols, q.OrderBy))
		},
	}
	f := cmd.Flags()
	f.StringVar(&columns, "columns", "", columnsHelp)
	f.StringVarP(&q.Experiment, "experiment", "e", "", "only runs of this experiment")
	f.StringVar(&q.Filter, "filter", "", "filter expression")
	f.StringVar(&q.OrderBy, "order-by", "", "ordering, e.g. 'metrics.rmse asc'")
	f.IntVar(&q.Limit, "limit", atelier.DefaultPageSize, "page size")
	f.BoolVar(&all, "all", false, "fetch every page")
	f.BoolVar(&q.RootOnly, "root", false, "only runs without a parent")
	f.BoolVar(&withDeleted, "include-deleted", false, "list deleted runs too (deleted through the MLflow API; shown as deleted)")
	return cmd
}

// moreRunsCounted is how many of the runs a list left out run list counts, reading on.
const moreRunsCounted = 1000

// countMoreRuns says how many runs match after the page q.PageToken starts: "12 more match",
// "1 more matches", or "more than 1000 more match" when there are more than it counts (it asks
// for one more page, of up to 1000 runs). A failure to count says only that more match.
func countMoreRuns(ctx context.Context, c *api.Client, workspace string, q atelier.RunQuery) string {
	q.Limit = moreRunsCounted
	page, err := c.ListRuns(ctx, workspace, q)
	switch {
	case err != nil || len(page.Runs) == 0:
		return "more match"
	case page.NextPageToken != "":
		return fmt.Sprintf("more than %d more match", len(page.Runs))
	}
	return fmt.Sprintf("%d more %s", len(page.Runs), plural(len(page.Runs), "matches", "match"))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func runShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show RUN", Short: "Show a run", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			r, err := c.FindRun(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			models, err := runModels(cmd.Context(), c, cfg.workspace, r.ID)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), runView{Run: r, Models: models})
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("id", r.ID)
			t.row("experiment", r.Experiment)
			t.row("name", r.Name)
			t.row("status", r.Status)
			t.row("parent", r.ParentID)
			t.row("children", r.ChildCount)
			t.row("created", r.CreatedAt)
			t.row("created by", r.CreatedBy)
			t.row("started", r.StartedAt)
			t.row("ended", r.EndedAt)
			t.row("duration", r.Duration(time.Now()))
			t.row("compute", r.Compute)
			t.row("snapshot", r.SnapshotID)
			if r.Git != nil {
				t.row("git", fmt.Sprintf("%s (%s) dirty=%v", r.Git.Commit, r.Git.Branch, r.Git.Dirty))
			}
			if r.ExitCode != nil {
				t.row("exit code", *r.ExitCode)
			}
			t.row("error", r.Error)
			t.row("params", kvString(r.Params))
			t.row("tags", kvString(r.Tags))
			t.row("properties", kvString(r.Properties))
			t.row("metrics", kvString(r.Metrics))
			refs := make([]string, len(models))
			for i, v := range models {
				refs[i] = v.Ref().String()
			}
			t.row("models", strings.Join(refs, ", "))
			return t.flush()
		},
	}
}

// runView is a run as `run show -o json` prints it: the run's fields and, for lineage, the model
// versions registered from it.
type runView struct {
	*atelier.Run
	Models []*atelier.ModelVersion `json:"models"`
}

// runModels lists every model version registered from a run, oldest first.
func runModels(ctx context.Context, c *api.Client, workspace, runID string) ([]*atelier.ModelVersion, error) {
	models := []*atelier.ModelVersion{}
	q := atelier.ModelQuery{OrderBy: "created_at asc", Limit: atelier.MaxPageSize}
	for {
		page, err := c.ListRunModels(ctx, workspace, runID, q)
		if err != nil {
			return nil, err
		}
		models = append(models, page.Versions...)
		if page.NextPageToken == "" {
			return models, nil
		}
		q.PageToken = page.NextPageToken
	}
}

func runMetricsCmd(cfg *clientConfig) *cobra.Command {
	var name string
	var maxPoints int
	cmd := &cobra.Command{
		Use: "metrics RUN", Short: "Show a run's metrics (latest values, or one metric's series with --name)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if name == "" {
				list, err := c.ListMetrics(cmd.Context(), cfg.workspace, args[0])
				if err != nil {
					return err
				}
				if cfg.output == "json" {
					return printJSON(out, list)
				}
				t := newTable(out, "NAME", "KIND", "STEP", "VALUE", "COUNT")
				for _, m := range list {
					v := any(float64(m.Value))
					if m.Kind != atelier.MetricScalar {
						v = truncate(string(m.Last), 60)
					}
					t.row(m.Name, m.Kind, m.Step, v, m.Count)
				}
				return t.flush()
			}
			s, err := c.MetricHistory(cmd.Context(), cfg.workspace, args[0], name, atelier.HistoryQuery{MaxPoints: maxPoints})
			if atelier.ErrorCode(err) == atelier.EINVALID && recordsMetric(cmd.Context(), c, cfg.workspace, args[0], name) {
				recs, err := c.MetricRecords(cmd.Context(), cfg.workspace, args[0], name)
				if err != nil {
					return err
				}
				if cfg.output == "json" {
					return printJSON(out, recs)
				}
				t := newTable(out, "KIND", "TIME", "VALUE")
				for _, r := range recs {
					t.row(r.Kind, time.UnixMilli(r.Timestamp), truncate(string(r.Value), 100))
				}
				return t.flush()
			} else if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(out, s)
			}
			t := newTable(out, "STEP", "TIME", "VALUE")
			for i := range s.Steps {
				t.row(s.Steps[i], time.UnixMilli(s.Timestamps[i]), float64(s.Values[i]))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "show this metric's series")
	cmd.Flags().IntVar(&maxPoints, "max-points", 0, "downsample the series to at most this many points")
	return cmd
}

// recordsMetric tells whether the run's metric is one of records (a list, a table, an image),
// which has no series: by its kind, as the run's metrics list it.
func recordsMetric(ctx context.Context, c *api.Client, workspace, run, name string) bool {
	list, err := c.ListMetrics(ctx, workspace, run)
	if err != nil {
		return false
	}
	for _, m := range list {
		if m.Name == name {
			return m.Kind != atelier.MetricScalar
		}
	}
	return false
}

func runLogsCmd(cfg *clientConfig) *cobra.Command {
	var follow bool
	var path string
	cmd := &cobra.Command{
		Use: "logs RUN", Short: "Print a run's logs (--follow to stream them until the run ends)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			paths := []string{path}
			if path == "" {
				files, err := c.ListFiles(ctx, cfg.workspace, args[0], "logs")
				if err != nil {
					return err
				}
				paths = paths[:0]
				for _, f := range files {
					if f.Log {
						paths = append(paths, f.Path)
					}
				}
				if len(paths) == 0 {
					if !follow {
						return nil
					}
					paths = []string{DefaultLogPath}
				}
			}
			for _, p := range paths {
				if len(paths) > 1 {
					fmt.Fprintf(out, "==> %s <==\n", printable(p))
				}
				rc, err := c.FollowLog(ctx, cfg.workspace, args[0], p, 0, follow && len(paths) == 1)
				if err != nil {
					return err
				}
				_, err = io.Copy(out, rc)
				rc.Close()
				if err != nil && ctx.Err() == nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the run ends")
	cmd.Flags().StringVar(&path, "path", "", "one log file (default: every log of the run)")
	return cmd
}

// DefaultLogPath is where a run's standard output and error are captured.
const DefaultLogPath = "logs/std_log.txt"

// PrepareLogPath is where a run's preparation (data, environment build) logs.
const PrepareLogPath = "logs/prepare_log.txt"

func runDownloadCmd(cfg *clientConfig) *cobra.Command {
	var outputs, snapshot bool
	var dir, prefix string
	cmd := &cobra.Command{
		Use:   "download RUN (--outputs | --snapshot | --prefix P) -d DIR",
		Short: "Download a run's files (kept under their run paths, e.g. DIR/outputs/model.pkl) or its snapshot",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, b := range []bool{outputs, snapshot, prefix != ""} {
				if b {
					n++
				}
			}
			if n != 1 {
				return usagef("give exactly one of --outputs, --snapshot or --prefix")
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if snapshot {
				return extractSnapshot(ctx, dir, func(w io.Writer) error { return c.WriteRunSnapshotZip(ctx, cfg.workspace, args[0], w) })
			}
			if outputs {
				prefix = "outputs"
			}
			files, err := c.ListFiles(ctx, cfg.workspace, args[0], prefix)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return atelier.Errorf(atelier.ENOTFOUND, "run %s has no files under %s/ (see 'atelier run files %s')", args[0], strings.TrimSuffix(prefix, "/"), args[0])
			}
			var total int64
			for _, f := range files {
				total += f.Size
			}
			bar := newProgress(os.Stderr, "downloading", progressThreshold(total))
			err = parallel(ctx, 8, files, func(ctx context.Context, f *atelier.File) error {
				return downloadFile(ctx, c, cfg.workspace, args[0], f.Path, dir, bar)
			})
			bar.done()
			if err == nil {
				cfg.done("downloaded %d %s (%s) to %s", len(files), plural(len(files), "file", "files"), humanBytes(total), filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(prefix, "/"))))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&outputs, "outputs", false, "the files under outputs/")
	f.BoolVar(&snapshot, "snapshot", false, "the run's source snapshot, extracted")
	f.StringVar(&prefix, "prefix", "", "the files under this directory of the run")
	f.StringVarP(&dir, "dir", "d", ".", "destination directory")
	return cmd
}

// downloadFile writes a run file under dir, through a temporary file renamed into place.
func downloadFile(ctx context.Context, c *api.Client, workspace, runID, path, dir string, bar *progress) error {
	if err := atelier.ValidatePath(path); err != nil {
		return err
	}
	dest := filepath.Join(dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	_, rc, err := c.OpenFile(ctx, workspace, runID, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bar.reader(rc)); err != nil {
		tmp.Close()
		return fmt.Errorf("downloading %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

func runChildrenCmd(cfg *clientConfig) *cobra.Command {
	var columns string
	cmd := &cobra.Command{
		Use: "children RUN", Short: "List a run's child runs", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cols, err := parseRunColumns(columns)
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if _, err := c.FindRun(cmd.Context(), cfg.workspace, args[0]); err != nil {
				return err
			}
			page, err := c.ListRuns(cmd.Context(), cfg.workspace, atelier.RunQuery{ParentID: args[0], OrderBy: "created_at asc", Limit: atelier.MaxPageSize})
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), page.Runs)
			}
			return printRuns(cmd.OutOrStdout(), page.Runs, cols)
		},
	}
	cmd.Flags().StringVar(&columns, "columns", "", columnsHelp)
	return cmd
}

// gitInfo reads the commit, branch and dirtiness of a source directory that is a git checkout.
func gitInfo(dir string) *atelier.GitInfo {
	run := func(args ...string) (string, bool) {
		out, err := execCommand(dir, "git", args...)
		return strings.TrimSpace(out), err == nil
	}
	commit, ok := run("rev-parse", "HEAD")
	if !ok {
		return nil
	}
	branch, _ := run("rev-parse", "--abbrev-ref", "HEAD")
	status, _ := run("status", "--porcelain")
	remote, _ := run("config", "--get", "remote.origin.url")
	return &atelier.GitInfo{Commit: commit, Branch: branch, Dirty: status != "", Remote: remote}
}

func runCancelCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "cancel RUN", Short: "Cancel a run (a queued one at once; a running script gets SIGTERM, then SIGKILL)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			run, err := c.CancelRun(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), run)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", run.ID, run.Status)
			return nil
		},
	}
}
