package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
)

// completionTimeout bounds what a completion asks the server: a shell waits for it.
const completionTimeout = 3 * time.Second

// completeFromServer registers dynamic shell completion (atelier completion bash|zsh|fish):
// the RUN arguments of every command (recent runs first, with their experiment, name and
// status), and the values of --experiment, --compute, --model, --datastore and -o, asked of the
// server the command would reach. A server that does not answer completes nothing.
func completeFromServer(cfg *clientConfig, root *cobra.Command) {
	client := func() (*api.Client, error) {
		if _, err := layer(root.PersistentFlags(), nil, os.Getenv); err != nil {
			return nil, err
		}
		return cfg.client()
	}
	names := func(list func(ctx context.Context, c *api.Client) ([]string, error)) cobra.CompletionFunc {
		return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			c, err := client()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
			defer cancel()
			all, err := list(ctx, c)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, n := range all {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, n)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	flagValues := map[string]cobra.CompletionFunc{
		"experiment": names(func(ctx context.Context, c *api.Client) ([]string, error) {
			list, err := c.ListExperiments(ctx, cfg.workspace, atelier.ExperimentFilter{})
			var out []string
			for _, e := range list {
				out = append(out, e.Name)
			}
			return out, err
		}),
		"compute": names(func(ctx context.Context, c *api.Client) ([]string, error) {
			list, err := c.ListComputeTargets(ctx, cfg.workspace)
			var out []string
			for _, t := range list {
				out = append(out, t.Name)
			}
			return out, err
		}),
		"model": names(func(ctx context.Context, c *api.Client) ([]string, error) {
			page, err := c.ListModels(ctx, cfg.workspace, atelier.ModelQuery{Limit: 1000})
			if err != nil {
				return nil, err
			}
			var out []string
			for _, m := range page.Models {
				out = append(out, m.Name)
			}
			return out, nil
		}),
		"datastore": names(func(ctx context.Context, c *api.Client) ([]string, error) {
			list, err := c.ListDatastores(ctx, cfg.workspace)
			var out []string
			for _, d := range list {
				out = append(out, d.Name)
			}
			return out, err
		}),
	}
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, fn := range flagValues {
			if f := c.LocalNonPersistentFlags().Lookup(name); f != nil && f.Value.Type() != "bool" {
				c.RegisterFlagCompletionFunc(name, fn)
			}
		}
		// The NAME (REF) of experiment show, compute detach, datastore ls, model show, ...: a name
		// the group has; the commands that make one (register, create, attach) take a new name.
		if c.HasParent() && c.ValidArgsFunction == nil && namesExisting(c.Use) && flagValues[c.Parent().Name()] != nil {
			fn := flagValues[c.Parent().Name()]
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveDefault
				}
				return fn(cmd, args, toComplete)
			}
		}
		if first, all := runArgPositions(c.Use); first >= 0 && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) < first || len(args) > first && !all {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return completeRuns(client, cfg.workspace, toComplete)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// namesExisting tells whether a usage line ("show NAME", "download REF -d DIR") takes the name
// of something that exists as its first argument.
func namesExisting(use string) bool {
	f := strings.Fields(use)
	if len(f) < 2 || f[1] != "NAME" && f[1] != "REF" {
		return false
	}
	switch f[0] {
	case "register", "create", "attach":
		return false
	}
	return true
}

// completeRuns lists the most recent runs whose id starts with prefix.
func completeRuns(client func() (*api.Client, error), workspace, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	q := atelier.RunQuery{OrderBy: "created_at desc", Limit: 50}
	if p := strings.ToLower(prefix); p != "" && strings.Trim(p, "0123456789abcdef") == "" {
		q.Filter = "id like '" + p + "%'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	page, err := c.ListRuns(ctx, workspace, q)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range page.Runs {
		if strings.HasPrefix(r.ID, prefix) {
			out = append(out, cobra.CompletionWithDesc(r.ID, fmt.Sprintf("%s %s %s", r.Experiment, cell(r.Name), r.Status)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
