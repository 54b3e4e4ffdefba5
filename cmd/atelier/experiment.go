package main

import (
	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newExperimentCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "experiment", Aliases: []string{"exp"}, Short: "List and manage experiments"}
	var all bool
	list := &cobra.Command{
		Use: "list", Short: "List experiments", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListExperiments(cmd.Context(), cfg.workspace, atelier.ExperimentFilter{IncludeArchived: all})
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			return printExperiments(cmd, list)
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include archived experiments")
	show := &cobra.Command{
		Use: "show NAME", Short: "Show an experiment", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			e, err := c.FindExperiment(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), e)
			}
			return printExperiments(cmd, []*atelier.Experiment{e})
		},
	}
	update := func(use, short string, nargs int, upd func(args []string) atelier.ExperimentUpdate) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(nargs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cfg.client()
				if err != nil {
					return err
				}
				e, err := c.UpdateExperiment(cmd.Context(), cfg.workspace, args[0], upd(args))
				if err != nil {
					return err
				}
				if cfg.output == "json" {
					return printJSON(cmd.OutOrStdout(), e)
				}
				return printExperiments(cmd, []*atelier.Experiment{e})
			},
		}
	}
	yes, no := true, false
	cmd.AddCommand(list, show,
		update("rename NAME NEW_NAME", "Rename an experiment", 2, func(a []string) atelier.ExperimentUpdate { return atelier.ExperimentUpdate{Name: &a[1]} }),
		update("archive NAME", "Archive an experiment (hidden from lists, runs kept)", 1, func([]string) atelier.ExperimentUpdate { return atelier.ExperimentUpdate{Archived: &yes} }),
		update("restore NAME", "Restore an archived experiment", 1, func([]string) atelier.ExperimentUpdate { return atelier.ExperimentUpdate{Archived: &no} }))
	return cmd
}

func printExperiments(cmd *cobra.Command, list []*atelier.Experiment) error {
	t := newTable(cmd.OutOrStdout(), "NAME", "RUNS", "LAST RUN", "ARCHIVED", "CREATED")
	for _, e := range list {
		t.row(e.Name, e.RunCount, e.LastRunAt, e.Archived, e.CreatedAt)
	}
	return t.flush()
}
