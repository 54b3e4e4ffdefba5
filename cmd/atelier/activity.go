package main

import (
	"encoding/json"
	"fmt"

	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newActivityCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "activity", Short: "Follow long-running operations"}
	var f atelier.ActivityFilter
	list := &cobra.Command{
		Use: "list", Short: "List activities, newest first", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListActivities(cmd.Context(), cfg.workspace, f)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "KIND", "TARGET", "STATUS", "PERCENT", "MESSAGE", "STARTED", "ENDED")
			for _, a := range list {
				t.row(a.ID, a.Kind, a.Target, a.Status, fmt.Sprintf("%.0f%%", a.Percent), a.Message, a.StartedAt, a.EndedAt)
			}
			return t.flush()
		},
	}
	list.Flags().StringVar(&f.Kind, "kind", "", "only this kind (run, ...)")
	list.Flags().BoolVar(&f.Active, "active", false, "only those not ended")
	list.Flags().IntVar(&f.Limit, "limit", 100, "at most this many")

	var runID string
	watch := &cobra.Command{
		Use: "watch", Short: "Print the workspace's events as they happen (run status, metrics, logs, activities)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if runID, err = resolveRun(cmd.Context(), c, cfg.workspace, runID); err != nil {
				return err
			}
			events, err := c.Subscribe(cmd.Context(), cfg.workspace, atelier.EventFilter{RunID: runID})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for e := range events {
				if cfg.output == "json" {
					b, _ := json.Marshal(e)
					fmt.Fprintln(out, string(b))
					continue
				}
				fmt.Fprintf(out, "%s  %-12s %s  %s\n", e.Time.Local().Format("15:04:05.000"), e.Type, e.RunID, summarizeEvent(e))
			}
			if cmd.Context().Err() == nil {
				return fmt.Errorf("the event stream ended")
			}
			return nil
		},
	}
	watch.Flags().StringVar(&runID, "run", "", "only events of this run")
	cmd.AddCommand(list, watch)
	return cmd
}

func summarizeEvent(e *atelier.Event) string {
	return printable(eventText(e))
}

func eventText(e *atelier.Event) string {
	switch e.Type {
	case atelier.EventRunStatus, atelier.EventRunCreated:
		var r atelier.Run
		json.Unmarshal(e.Data, &r)
		return string(r.Status)
	case atelier.EventActivity:
		var a atelier.Activity
		json.Unmarshal(e.Data, &a)
		return fmt.Sprintf("%s %s %s %.0f%% %s", a.Kind, a.Target, a.Status, a.Percent, a.Message)
	case atelier.EventLog:
		var l struct{ Path, Text string }
		json.Unmarshal(e.Data, &l)
		return l.Path + ": " + l.Text
	}
	return string(e.Data)
}
