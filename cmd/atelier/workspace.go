package main

import (
	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newWorkspaceCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Aliases: []string{"ws"}, Short: "Manage workspaces"}
	var description string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a workspace", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ws := &atelier.Workspace{Name: args[0], Description: description}
			if err := c.CreateWorkspace(cmd.Context(), ws); err != nil {
				return err
			}
			return cfg.printWorkspaces(cmd, ws)
		},
	}
	create.Flags().StringVar(&description, "description", "", "what the workspace is for")

	list := &cobra.Command{
		Use: "list", Short: "List workspaces", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListWorkspaces(cmd.Context())
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			return cfg.printWorkspaces(cmd, list...)
		},
	}
	show := &cobra.Command{
		Use: "show [NAME]", Short: "Show a workspace (the current one by default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			name := cfg.workspace
			if len(args) > 1 {
				return usagef("workspace show takes at most one name")
			} else if len(args) == 1 {
				name = args[0]
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ws, err := c.FindWorkspace(cmd.Context(), name)
			if err != nil {
				return err
			}
			return cfg.printWorkspaces(cmd, ws)
		},
	}
	var force bool
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a workspace (refused while it holds runs, unless --force)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.DeleteWorkspace(cmd.Context(), args[0], force)
		},
	}
	del.Flags().BoolVar(&force, "force", false, "also delete every run, experiment and file in it")
	cmd.AddCommand(create, list, show, del)
	cmd.AddCommand(memberCmds(cfg)...)
	return cmd
}

func (cfg *clientConfig) printWorkspaces(cmd *cobra.Command, list ...*atelier.Workspace) error {
	if cfg.output == "json" {
		return printJSON(cmd.OutOrStdout(), list[0])
	}
	t := newTable(cmd.OutOrStdout(), "NAME", "RUNS", "CREATED", "DESCRIPTION")
	for _, ws := range list {
		t.row(ws.Name, ws.RunCount, ws.CreatedAt, ws.Description)
	}
	return t.flush()
}
