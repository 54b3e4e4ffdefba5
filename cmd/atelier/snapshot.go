package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/archive"
	"github.com/spf13/cobra"
)

func newSnapshotCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Store source directories as snapshots"}
	var opt archive.Options
	create := &cobra.Command{
		Use:   "create DIR",
		Short: "Snapshot a directory (honouring .amlignore, else .gitignore) and print its id",
		Long: `Snapshot a directory: every file not excluded by .amlignore (or, when there is none,
.gitignore) is hashed, only the files the server does not hold yet are uploaded, and the
manifest is stored. The same directory snapshotted twice gives the same id.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			snap, err := uploadSnapshot(cmd.Context(), c, cfg.workspace, args[0], opt)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				snap.Entries = nil
				return printJSON(cmd.OutOrStdout(), snap)
			}
			fmt.Fprintln(cmd.OutOrStdout(), snap.ID)
			return nil
		},
	}
	snapshotFlags(create, &opt)
	download := &cobra.Command{
		Use: "download ID -d DIR", Short: "Extract a snapshot into a directory", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _ := cmd.Flags().GetString("dir")
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return extractSnapshot(cmd.Context(), dir, func(w io.Writer) error {
				return c.WriteSnapshotZip(cmd.Context(), cfg.workspace, args[0], w)
			})
		},
	}
	download.Flags().StringP("dir", "d", ".", "directory to extract into")
	cmd.AddCommand(create, download)
	return cmd
}

func snapshotFlags(cmd *cobra.Command, opt *archive.Options) {
	cmd.Flags().Int64Var(&opt.MaxBytes, "snapshot-max-bytes", atelier.DefaultSnapshotMaxBytes, "largest snapshot allowed, in bytes")
	cmd.Flags().IntVar(&opt.MaxFiles, "snapshot-max-files", atelier.DefaultSnapshotMaxFiles, "most files allowed in a snapshot")
}

// uploadSnapshot scans dir, uploads the files the server lacks (in parallel) and records the
// manifest. Limits are checked before anything is sent.
func uploadSnapshot(ctx context.Context, c *api.Client, workspace, dir string, opt archive.Options) (*atelier.Snapshot, error) {
	if cachePath, err := archive.CachePath(dir); err == nil {
		if cache, err := archive.LoadHashCache(cachePath); err == nil {
			opt.Cache = cache
			defer cache.Save()
		}
	}
	files, err := archive.Scan(ctx, dir, opt)
	if err != nil {
		return nil, err
	}
	entries := make([]atelier.SnapshotEntry, len(files))
	local := map[string]string{}
	digests := make([]string, 0, len(files))
	for i, f := range files {
		entries[i] = f.SnapshotEntry
		if _, ok := local[f.Digest]; !ok {
			local[f.Digest] = f.LocalPath
			digests = append(digests, f.Digest)
		}
	}
	missing, err := c.MissingObjects(ctx, workspace, digests)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, d := range missing {
		if fi, err := os.Stat(local[d]); err == nil {
			total += fi.Size()
		}
	}
	bar := newProgress(os.Stderr, "uploading snapshot", progressThreshold(total))
	if err := parallel(ctx, 8, missing, func(ctx context.Context, d string) error {
		f, err := os.Open(local[d])
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = c.UploadObject(ctx, workspace, bar.reader(f), d)
		if err != nil {
			return fmt.Errorf("uploading %s: %w", local[d], err)
		}
		return nil
	}); err != nil {
		bar.done()
		return nil, err
	}
	bar.done()
	return c.CreateSnapshot(ctx, workspace, entries)
}

// parallel runs fn over items with at most n at once and returns the first error.
func parallel[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	work := make(chan T)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				if err := fn(ctx, item); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for _, item := range items {
		select {
		case work <- item:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
		if first != nil && first == context.Canceled {
			first = nil
		}
	}
	return first
}

// extractSnapshot downloads a zip to a temporary file and extracts it safely into dir.
func extractSnapshot(ctx context.Context, dir string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp("", "atelier-snapshot-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return archive.ExtractZip(tmp.Name(), dir, archive.Options{MaxBytes: 1 << 40, MaxFiles: 1 << 20})
}

// progress prints a transfer's progress: a bar redrawn in place on a terminal, a line every
// few seconds otherwise (so logs stay readable).
type progress struct {
	out   *os.File
	label string
	total int64
	sent  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}
