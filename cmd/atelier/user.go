package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newUserCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (server administrators)"}
	var admin bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a user; the password is read from a prompt, or from stdin when it is not a terminal",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			password, err := readPassword(cmd, "Password for "+args[0]+": ")
			if err != nil {
				return err
			}
			u := &atelier.User{Name: args[0], Admin: admin}
			if err := c.CreateUser(cmd.Context(), u, password); err != nil {
				return err
			}
			return cfg.printUsers(cmd, []*atelier.User{u}, true)
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "make the user a server administrator")
	list := &cobra.Command{
		Use: "list", Short: "List users", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			return cfg.printUsers(cmd, list, false)
		},
	}
	disable := &cobra.Command{
		Use: "disable NAME", Short: "Disable a user: their tokens and sessions stop working", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.DisableUser(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, disable)
	return cmd
}

func (cfg *clientConfig) printUsers(cmd *cobra.Command, list []*atelier.User, one bool) error {
	if cfg.output == "json" {
		if one {
			return printJSON(cmd.OutOrStdout(), list[0])
		}
		return printJSON(cmd.OutOrStdout(), list)
	}
	t := newTable(cmd.OutOrStdout(), "NAME", "ADMIN", "CREATED", "DISABLED")
	for _, u := range list {
		t.row(u.Name, u.Admin, u.CreatedAt, u.DisabledAt)
	}
	return t.flush()
}

// readLines shows each prompt on out and reads one line for it from in; one reader serves
// every line, so a line typed ahead of its prompt is not lost.
func readLines(in io.Reader, out io.Writer, prompts []string) ([]string, error) {
	r := bufio.NewReader(in)
	lines := make([]string, 0, len(prompts))
	for _, prompt := range prompts {
		fmt.Fprint(out, prompt)
		line, err := r.ReadString('\n')
		fmt.Fprintln(out)
		if err != nil && !(err == io.EOF && line != "") {
			return nil, err
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
	}
	return lines, nil
}

// readPassword reads a password: from a prompt without echo at a terminal, else the first line
// of stdin (for scripts: echo "$PW" | atelier user create ana).
func readPassword(cmd *cobra.Command, prompt string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		lines, err := readNoEcho(f, cmd.ErrOrStderr(), prompt, "Again: ")
		if err != nil {
			return "", err
		}
		p1, p2 := lines[0], lines[1]
		if p1 != p2 {
			return "", usagef("the passwords differ")
		}
		return p1, nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no password on stdin")
	}
	return line, nil
}

func newTokenCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var user, expires, name string
	create := &cobra.Command{
		Use: "create", Short: "Create an API token (shown only this once)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := &atelier.Token{Name: name, Owner: user}
			if expires != "" {
				d, err := parseExpiry(expires)
				if err != nil {
					return usagef("--expires: %v", err)
				}
				at := time.Now().Add(d).UTC()
				t.ExpiresAt = &at
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			t, err = c.CreateToken(cmd.Context(), t)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %s for %s (shown only this once):\n", t.ID, t.Owner)
			fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&user, "user", "", "the user the token is for (administrators; default: you)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d, 12h (default: no expiry)")
	create.Flags().StringVar(&name, "name", "", "what the token is for")
	var listUser string
	list := &cobra.Command{
		Use: "list", Short: "List your tokens (administrators: everyone's, or --user's)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListTokens(cmd.Context(), listUser)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "NAME", "KIND", "OWNER", "CREATED", "EXPIRES", "REVOKED")
			for _, tok := range list {
				t.row(tok.ID, tok.Name, string(tok.Kind), tok.Owner, tok.CreatedAt, tok.ExpiresAt, tok.RevokedAt)
			}
			return t.flush()
		},
	}
	list.Flags().StringVar(&listUser, "user", "", "list this user's tokens (administrators)")
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.RevokeToken(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// parseExpiry accepts Go durations and days ("30d").
func parseExpiry(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is neither days (30d) nor a duration (12h)", s)
	}
	return d, nil
}

// memberCmds are workspace share, members and unshare.
func memberCmds(cfg *clientConfig) []*cobra.Command {
	var role string
	share := &cobra.Command{
		Use: "share WORKSPACE USER --role Reader|Contributor|Owner", Short: "Give a user a role in a workspace", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := atelier.ParseRole(role)
			if err != nil {
				return usagef("--role: %s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			m, err := c.ShareWorkspace(cmd.Context(), args[0], args[1], r)
			if err != nil {
				return err
			}
			return cfg.printMembers(cmd, []*atelier.Member{m}, true)
		},
	}
	share.Flags().StringVar(&role, "role", "Reader", "Reader, Contributor or Owner")
	members := &cobra.Command{
		Use: "members WORKSPACE", Short: "List a workspace's members", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListMembers(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cfg.printMembers(cmd, list, false)
		},
	}
	unshare := &cobra.Command{
		Use: "unshare WORKSPACE USER", Short: "Remove a user from a workspace", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.UnshareWorkspace(cmd.Context(), args[0], args[1])
		},
	}
	return []*cobra.Command{share, members, unshare}
}

func (cfg *clientConfig) printMembers(cmd *cobra.Command, list []*atelier.Member, one bool) error {
	if cfg.output == "json" {
		if one {
			return printJSON(cmd.OutOrStdout(), list[0])
		}
		return printJSON(cmd.OutOrStdout(), list)
	}
	t := newTable(cmd.OutOrStdout(), "WORKSPACE", "USER", "ROLE", "SINCE")
	for _, m := range list {
		t.row(m.Workspace, m.User, string(m.Role), m.CreatedAt)
	}
	return t.flush()
}

func newAuditCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log of writes"}
	var since, user string
	var server bool
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List the current workspace's recorded writes, newest first (Owners; --server: administrators)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := atelier.AuditFilter{User: user, Limit: limit}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					d, derr := parseExpiry(since)
					if derr != nil {
						return usagef("--since %q is neither a time (2026-01-02T15:04:05Z) nor an age (7d, 12h)", since)
					}
					t = time.Now().Add(-d)
				}
				f.Since = &t
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ws := cfg.workspace
			if server {
				ws = ""
			}
			list, err := c.ListAudit(cmd.Context(), ws, f)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "TIME", "USER", "METHOD", "PATH", "STATUS", "FROM")
			for _, e := range list {
				t.row(e.Time, e.User, e.Method, e.Path, e.Status, e.Remote)
			}
			return t.flush()
		},
	}
	list.Flags().StringVar(&since, "since", "", "only writes since this time (RFC 3339) or age (7d, 12h)")
	list.Flags().StringVar(&user, "user", "", "only this user's writes")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many entries (default 1000)")
	list.Flags().BoolVar(&server, "server", false, "the whole server's log (administrators)")
	cmd.AddCommand(list)
	return cmd
}
