package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/spf13/cobra"
)

func newEnvironmentCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "environment", Short: "List and register versioned run environments",
		Long: `An environment is a registered, versioned definition of what a run needs (Azure ML v1's
Environment, as the azureml SDK registers it: python, pip_requirements, docker,
environment_variables). Each version keeps the hash of its definition: registering the latest
definition again gives its version back. NAME:VERSION picks a version; NAME alone is the latest.
Names starting with AzureML- are reserved.`}
	cmd.AddCommand(environmentListCmd(cfg), environmentShowCmd(cfg), environmentRegisterCmd(cfg), environmentDeleteCmd(cfg))
	return cmd
}

func environmentArg(s string) (string, int, error) { return versionedArg("environment", s) }

func environmentListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the workspace's environments (the latest version of each)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListEnvironments(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "VERSION", "HASH", "CREATED")
			for _, e := range list {
				t.row(e.Name, e.Version, shortHash(e.SpecHash), e.CreatedAt)
			}
			return t.flush()
		},
	}
}

func shortHash(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

func environmentShowCmd(cfg *clientConfig) *cobra.Command {
	var versions bool
	cmd := &cobra.Command{
		Use: "show NAME[:VERSION]", Short: "Show an environment version (or --versions: every version)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, v, err := environmentArg(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if versions {
				list, err := c.ListEnvironmentVersions(cmd.Context(), cfg.workspace, name)
				if err != nil {
					return err
				}
				if cfg.output == "json" {
					return printJSON(cmd.OutOrStdout(), list)
				}
				t := newTable(cmd.OutOrStdout(), "VERSION", "HASH", "CREATED", "CREATED BY")
				for _, e := range list {
					t.row(e.Version, shortHash(e.SpecHash), e.CreatedAt, e.CreatedBy)
				}
				return t.flush()
			}
			e, err := c.FindEnvironment(cmd.Context(), cfg.workspace, name, v)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), e)
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", e.Name)
			t.row("version", e.Version)
			t.row("hash", e.SpecHash)
			t.row("spec", string(e.Spec))
			if e.Description != "" {
				t.row("description", e.Description)
			}
			t.row("created", e.CreatedAt)
			t.row("created by", e.CreatedBy)
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&versions, "versions", false, "list every version")
	return cmd
}

func environmentRegisterCmd(cfg *clientConfig) *cobra.Command {
	var req atelier.EnvironmentRegister
	var specFile string
	var tags []string
	cmd := &cobra.Command{
		Use:   "register NAME --spec FILE.json",
		Short: "Register an environment definition (a new version unless it is the latest's)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if specFile == "" {
				return usagef("--spec FILE.json is required: the environment's definition, a JSON object")
			}
			b, err := os.ReadFile(specFile)
			if err != nil {
				return usagef("cannot read --spec: %v", err)
			}
			if !json.Valid(b) {
				return usagef("--spec %s: not JSON", specFile)
			}
			req.Spec = b
			if req.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			if _, err := req.Validate(); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			e, err := c.RegisterEnvironment(cmd.Context(), cfg.workspace, req)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", e.Name, e.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&specFile, "spec", "", "a JSON file holding the definition")
	f.StringVar(&req.Description, "description", "", "a description")
	f.StringArrayVar(&tags, "tag", nil, "a tag KEY=VALUE (repeatable)")
	return cmd
}

func environmentDeleteCmd(cfg *clientConfig) *cobra.Command {
	return versionedDeleteCmd(cfg, "environment", "Delete an environment version, or every version",
		func(ctx context.Context, c *api.Client, ws, name string, v int) error {
			return c.DeleteEnvironment(ctx, ws, name, v)
		})
}
