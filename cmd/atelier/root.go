package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// clientConfig is what client commands need: flags, else ATELIER_* variables (see layer).
type clientConfig struct {
	server    string
	token     string
	workspace string
	output    string
	quiet     bool
}

// done confirms on stderr, in one line, what a command that prints nothing else did (not with
// -q, nor with -o json, whose output is for programs).
func (cfg *clientConfig) done(format string, args ...any) {
	if cfg.quiet || cfg.output == "json" {
		return
	}
	fmt.Fprintln(os.Stderr, printable(fmt.Sprintf(format, args...)))
}

func newRootCmd() *cobra.Command {
	cfg := &clientConfig{}
	root := &cobra.Command{
		Use:   "atelier",
		Short: "A self-hosted machine-learning workspace",
		Long: `atelier tracks experiments, runs, metrics, output files and snapshots of training
scripts in a workspace served by one binary.

Start a server with 'atelier server'; every other command is a client of it. Client
settings come from flags or the environment:
  --server      ATELIER_SERVER      (default: the socket of a server started here,
                                    ./.atelier/atelier.sock, else the address it wrote in
                                    ./.atelier/server-url, else http://127.0.0.1:8600)
  --token       ATELIER_TOKEN       (default: ./.atelier/admin-token, sent only to the server
                                    started here with it)
  --workspace   ATELIER_WORKSPACE   (default "default")
  --output      ATELIER_OUTPUT      (default table)
Uploads and downloads to a server on this machine reached over TCP (127.0.0.1, localhost)
go over its Unix socket when it has one that belongs to this user; ATELIER_SOCKET=off keeps
them on TCP.

Exit codes: 0 ok, 1 error, 2 bad usage or input, 3 not found, 4 conflict,
5 not authorized, 6 server unreachable, 7 the awaited run or image build failed, 130 interrupted
(Ctrl-C on run submit --wait stops following; the run keeps running).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&cfg.server, "server", "",
		"server URL: http(s)://HOST:PORT, or unix://PATH for a server's socket on this machine (default: see above)")
	// The variables are applied after parsing (layer), not made the defaults: a flag's default
	// is printed by --help, and a secret (the token) must not be.
	pf.StringVar(&cfg.token, "token", "", "API token")
	pf.StringVarP(&cfg.workspace, "workspace", "w", atelier.DefaultWorkspace, "workspace")
	pf.StringVarP(&cfg.output, "output", "o", "table", "output format: table or json")
	pf.BoolVarP(&cfg.quiet, "quiet", "q", false, "print no confirmation of what a command did (errors still print)")
	documentEnv(pf)
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		_, err := layer(pf, nil, os.Getenv)
		return err
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{suggestFlag(c, err.Error())} })

	root.AddCommand(newServerCmd(), newWorkspaceCmd(cfg), newExperimentCmd(cfg), newRunCmd(cfg),
		newActivityCmd(cfg), newSnapshotCmd(cfg), newComputeCmd(cfg), newModelCmd(cfg), newImageCmd(cfg), newServiceCmd(cfg),
		newUserCmd(cfg), newTokenCmd(cfg), newAuditCmd(cfg), newDatastoreCmd(cfg), newDatasetCmd(cfg), newEnvironmentCmd(cfg), newSecretCmd(cfg), newJobCmd(cfg), newRegistryCmd(cfg), newVersionCmd(cfg))
	root.Version = buildVersion().String()
	root.SetVersionTemplate("{{.Version}}\n")
	refuseUnknownCommands(root)
	completeFromServer(cfg, root)
	return root
}

// suggestFlag adds to cobra's "unknown flag: --experimnt" the command's nearest flags (by edit
// distance up to 2, or those it begins): "(did you mean --experiment?)", and where to look.
func suggestFlag(c *cobra.Command, msg string) string {
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return msg
	}
	name, _, _ = strings.Cut(name, "=")
	var near []string
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if !seen[f.Name] && !f.Hidden && (editDistance(name, f.Name) <= 2 || strings.HasPrefix(f.Name, name)) {
			seen[f.Name] = true
			near = append(near, "--"+f.Name)
		}
	}
	c.Flags().VisitAll(visit)
	c.InheritedFlags().VisitAll(visit)
	if len(near) > 0 {
		msg += " (did you mean " + strings.Join(near, " or ") + "?)"
	}
	return fmt.Sprintf("%s; see '%s --help'", msg, c.CommandPath())
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// refuseUnknownCommands makes every command group (atelier, atelier run, ...) answer a
// subcommand it does not have with a usage error (exit 2) that suggests the nearest ones:
// cobra printed the group's help and exited 0, so a typo in a CI step passed.
func refuseUnknownCommands(group *cobra.Command) {
	if !group.HasSubCommands() {
		return
	}
	if group.Run == nil && group.RunE == nil {
		group.Args = cobra.ArbitraryArgs
		group.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2
			}
			if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
				msg += " (did you mean " + strings.Join(near, " or ") + "?)"
			}
			return usagef("%s; see '%s --help'", msg, cmd.CommandPath())
		}
	}
	for _, c := range group.Commands() {
		refuseUnknownCommands(c)
	}
}

// client returns the API client for the configured server.
func (cfg *clientConfig) client() (*api.Client, error) {
	if cfg.output != "table" && cfg.output != "json" {
		return nil, usagef("unknown output format %q: use table or json", cfg.output)
	}
	server := strings.TrimRight(cfg.server, "/")
	token := cfg.token
	if token == "" {
		// A server started here with the default data directory leaves its admin token beside
		// it, with its socket and its address: the token goes to that server and no other (a
		// listener of another user's on the usual port must not receive it).
		here := localServers()
		if server == "" && len(here) > 0 {
			server = here[0]
		}
		if slices.Contains(here, server) {
			token, _ = service.ReadTokenFile(filepath.Join(defaultDataDir, adminTokenFile))
		}
	}
	if server == "" {
		server = "http://127.0.0.1:8600"
	}
	c := api.NewClient(server, token)
	c.UserAgent = "atelier-cli"
	return c, nil
}

// transferClient is the client of the commands that move files. Given a server on this
// machine by a loopback TCP address, it talks to the server's Unix socket instead when the
// socket is this user's (see api.Client.ViaLocalSocket), unless ATELIER_SOCKET=off.
func (cfg *clientConfig) transferClient(ctx context.Context) (*api.Client, error) {
	c, err := cfg.client()
	if err != nil || os.Getenv("ATELIER_SOCKET") == "off" {
		return c, err
	}
	return c.ViaLocalSocket(ctx, ownSocket), nil
}

// exactArgs is cobra.ExactArgs with an error that counts as bad usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			takes := fmt.Sprintf("%d %s", n, plural(n, "argument", "arguments"))
			if n == 0 {
				takes = "no arguments"
			}
			return usagef("%s takes %s, got %d; see '%s --help'", cmd.CommandPath(), takes, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// localServers lists the addresses of a server started here with the default data directory:
// its socket, when one of this user's answers there (files then pass to it without being
// copied through the CLI), then the address it wrote while it runs.
func localServers() []string {
	var here []string
	socket, err := filepath.Abs(filepath.Join(defaultDataDir, socketFile))
	// Only a socket of this user's: another user's listener in a shared folder would get the
	// token and the files.
	if err == nil && ownSocket(socket) {
		c, err := net.DialTimeout("unix", socket, time.Second)
		if err != nil {
			// The server left its socket behind: it died, and its address may be another
			// listener's by now.
			return nil
		}
		c.Close()
		here = append(here, api.UnixScheme+socket)
	}
	if b, err := os.ReadFile(filepath.Join(defaultDataDir, urlFile)); err == nil {
		if u := strings.TrimRight(strings.TrimSpace(string(b)), "/"); u != "" {
			here = append(here, u)
			if rest, ok := strings.CutPrefix(u, "http://127.0.0.1:"); ok {
				here = append(here, "http://localhost:"+rest)
			}
		}
	}
	return here
}
