package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/spf13/cobra"
)

func newDatasetCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Register versioned datasets of datastore files",
		Long: `A dataset is a registered, versioned reference to files in datastores (Azure ML v1's
Dataset): a file dataset names files, a tabular one files read as a table (delimited text,
parquet or JSON lines). The files stay where they are. Runs record the versions they consume.
NAME:VERSION picks a version; NAME alone is the latest.`}
	cmd.AddCommand(datasetListCmd(cfg), datasetShowCmd(cfg), datasetRegisterCmd(cfg), datasetDeleteCmd(cfg))
	return cmd
}

// datasetArg reads NAME or NAME:VERSION (version 0: the latest).
func datasetArg(s string) (string, int, error) { return versionedArg("dataset", s) }

// versionedArg reads NAME[:VERSION] of a versioned record (a dataset, an environment): version
// 0 when none is given.
func versionedArg(kind, s string) (string, int, error) {
	name, ver, ok := strings.Cut(s, ":")
	if err := atelier.ValidateDatasetName(name); err != nil {
		return "", 0, usagef("invalid %s name %q: %s", kind, name, atelier.ErrorMessage(err))
	}
	if !ok {
		return name, 0, nil
	}
	v, err := api.ParseDatasetVersion(ver)
	if err != nil {
		return "", 0, usagef("%s", atelier.ErrorMessage(err))
	}
	return name, v, nil
}

// versionedDeleteCmd deletes a version of a versioned record, or every version.
func versionedDeleteCmd(cfg *clientConfig, kind, short string, del func(ctx context.Context, c *api.Client, ws, name string, version int) error) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME[:VERSION]", Short: short, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, v, err := versionedArg(kind, args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if err := del(cmd.Context(), c, cfg.workspace, name, v); err != nil {
				return err
			}
			if v > 0 {
				cfg.done("deleted %s %s version %d", kind, name, v)
			} else {
				cfg.done("deleted %s %s (every version)", kind, name)
			}
			return nil
		},
	}
}

func datasetPaths(d *atelier.Dataset) string {
	var ps []string
	for _, p := range d.Paths {
		ps = append(ps, p.Datastore+":"+p.Path)
	}
	return strings.Join(ps, " ")
}

func datasetListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the workspace's datasets (the latest version of each)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListDatasets(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "VERSION", "TYPE", "PATHS", "CREATED")
			for _, d := range list {
				t.row(d.Name, d.Version, d.Type, datasetPaths(d), d.CreatedAt)
			}
			return t.flush()
		},
	}
}

func datasetShowCmd(cfg *clientConfig) *cobra.Command {
	var versions bool
	cmd := &cobra.Command{
		Use: "show NAME[:VERSION]", Short: "Show a dataset version and the runs that consumed it", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, v, err := datasetArg(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if versions {
				list, err := c.ListDatasetVersions(cmd.Context(), cfg.workspace, name)
				if err != nil {
					return err
				}
				if cfg.output == "json" {
					return printJSON(cmd.OutOrStdout(), list)
				}
				t := newTable(cmd.OutOrStdout(), "VERSION", "TYPE", "PATHS", "CREATED", "CREATED BY")
				for _, d := range list {
					t.row(d.Version, d.Type, datasetPaths(d), d.CreatedAt, d.CreatedBy)
				}
				return t.flush()
			}
			d, err := c.FindDataset(cmd.Context(), cfg.workspace, name, v)
			if err != nil {
				return err
			}
			runs, err := c.DatasetRuns(cmd.Context(), cfg.workspace, name, d.Version, "")
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), struct {
					*atelier.Dataset
					Runs []*atelier.DatasetRun `json:"runs"`
				}{d, runs})
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", d.Name)
			t.row("version", d.Version)
			t.row("type", d.Type)
			for _, p := range d.Paths {
				t.row("path", p.Datastore+":"+p.Path)
			}
			if d.Format != nil {
				f := d.Format.Kind
				if d.Format.Separator != "" {
					f += " separator " + strconv.Quote(d.Format.Separator)
				}
				if d.Format.Header != nil && !*d.Format.Header {
					f += " no header"
				}
				t.row("format", f)
			}
			if len(d.Transforms) > 0 {
				t.row("transforms", string(d.Transforms))
			}
			if d.Description != "" {
				t.row("description", d.Description)
			}
			for k, val := range d.Tags {
				t.row("tag", k+"="+val)
			}
			t.row("created", d.CreatedAt)
			t.row("created by", d.CreatedBy)
			for _, r := range runs {
				t.row("consumed by", r.RunID+" "+r.Input)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&versions, "versions", false, "list every version")
	return cmd
}

func datasetRegisterCmd(cfg *clientConfig) *cobra.Command {
	var req atelier.DatasetRegister
	var paths, tags []string
	var format, separator, encoding string
	var noHeader bool
	cmd := &cobra.Command{
		Use:   "register NAME --path DATASTORE:PATH... [--format delimited|parquet|json_lines]",
		Short: "Register a dataset (or, with --new-version, a new version of one)",
		Long: `Register a dataset of datastore files. --path names a file, a folder or a glob of a
datastore (repeat it for several); each must exist. With --format the dataset is tabular, else
it is a file dataset. A name that exists needs --new-version; a definition equal to the latest
version's gives that version back.`,
		Example: `  atelier dataset register iris --path default:iris/*.csv --format delimited
  atelier dataset register images --path default:images/ --new-version`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			req.Type = atelier.DatasetFile
			if format != "" {
				req.Type = atelier.DatasetTabular
				req.Format = &atelier.DatasetFormat{Kind: format, Separator: separator, Encoding: encoding}
				if format == atelier.FormatDelimited {
					h := !noHeader
					req.Format.Header = &h
					if req.Format.Separator == "" {
						req.Format.Separator = ","
					}
				}
			}
			for _, p := range paths {
				ds, path, ok := strings.Cut(p, ":")
				if !ok {
					return usagef("--path %q: give DATASTORE:PATH (default:data/*.csv)", p)
				}
				req.Paths = append(req.Paths, atelier.DatasetPath{Datastore: ds, Path: path})
			}
			var err error
			if req.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			if err := req.Validate(); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			d, err := c.RegisterDataset(cmd.Context(), cfg.workspace, req)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", d.Name, d.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&paths, "path", nil, "DATASTORE:PATH, a file, folder or glob (repeatable)")
	f.StringVar(&format, "format", "", "tabular: delimited, parquet or json_lines")
	f.StringVar(&separator, "separator", "", "delimited: the separator (default ',')")
	f.BoolVar(&noHeader, "no-header", false, "delimited: the files have no header row")
	f.StringVar(&encoding, "encoding", "", "delimited, json_lines: the files' encoding (default utf-8)")
	f.StringVar(&req.Description, "description", "", "a description")
	f.StringArrayVar(&tags, "tag", nil, "a tag KEY=VALUE (repeatable)")
	f.BoolVar(&req.CreateNewVersion, "new-version", false, "add a version to an existing dataset")
	return cmd
}

func datasetDeleteCmd(cfg *clientConfig) *cobra.Command {
	return versionedDeleteCmd(cfg, "dataset", "Delete a dataset version, or every version (the files stay)",
		func(ctx context.Context, c *api.Client, ws, name string, v int) error {
			return c.DeleteDataset(ctx, ws, name, v)
		})
}
