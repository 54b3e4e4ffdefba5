package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newSecretCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Keep secrets that runs receive as environment variables",
		Long: `The workspace's key vault. A secret's value is encrypted with the server's master key and
never shown again: list shows names and dates only. A run configuration names the secrets
it needs (secrets: [NAME] in run.yaml, or --secret NAME on 'run submit'); the script finds
each in the environment variable of the same name, and its value is replaced by *** in the
run's captured output.

Contributors and Owners set and delete secrets; every member lists them. Anyone who may
submit runs can make a script reveal a secret: share Contributor roles accordingly.`}
	cmd.AddCommand(secretSetCmd(cfg), secretListCmd(cfg), secretDeleteCmd(cfg))
	return cmd
}

func secretSetCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME",
		Short: "Create or replace a secret; the value is read from a prompt, or from stdin when it is not a terminal",
		Long: `Create or replace a secret. At a terminal the value is read from a prompt without echo;
otherwise standard input is read whole (one trailing newline is dropped), so a value never
needs to appear on the command line, in the shell's history or in ps.

NAME becomes the run's environment variable: letters, digits and '_', not starting with a
digit, not ATELIER_*.`,
		Example: `  atelier secret set WANDB_API_KEY
  atelier secret set HF_TOKEN < token.txt
  pass show hf | atelier secret set HF_TOKEN`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := atelier.ValidateSecretName(name); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			value, err := readSecretValue(cmd, name)
			if err != nil {
				return err
			}
			sec, err := c.SetSecret(cmd.Context(), cfg.workspace, name, value)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), sec)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s set in workspace %s\n", sec.Name, sec.Workspace)
			return nil
		},
	}
}

// readSecretValue reads a value: from a prompt without echo at a terminal, else all of stdin
// less one trailing newline (a multi-line value, such as a PEM key, stays whole).
func readSecretValue(cmd *cobra.Command, name string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		lines, err := readNoEcho(f, cmd.ErrOrStderr(), fmt.Sprintf("Value of %s: ", name))
		if err != nil {
			return "", err
		}
		v := lines[0]
		if v == "" {
			return "", usagef("no value given")
		}
		return v, nil
	}
	b, err := io.ReadAll(io.LimitReader(in, atelier.MaxSecretValue+2))
	if err != nil {
		return "", err
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", usagef("no value on stdin: pipe it in (atelier secret set %s < file)", name)
	}
	if err := atelier.ValidateSecretValue(v); err != nil {
		return "", usagef("%s", atelier.ErrorMessage(err))
	}
	return v, nil
}

func secretListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the workspace's secrets (names and dates, never values)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "CREATED", "UPDATED", "CREATED BY")
			for _, s := range list {
				t.row(s.Name, s.CreatedAt, s.UpdatedAt, s.CreatedBy)
			}
			return t.flush()
		},
	}
}

func secretDeleteCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a secret", Args: exactArgs(1),
		Long: `Delete a secret. Runs already started keep the value they received; queued runs that
name it fail when they start.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.DeleteSecret(cmd.Context(), cfg.workspace, args[0])
		},
	}
}
