package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/build"
)

func imageBaseCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "base", Short: "Import base images into the workspace registry; the workspace's default base",
		Long: `Base images are what images are built on: a Linux image of the server's architecture with a
Python (a CPython with its label ai.atelier.python, as scripts/build-python-base.sh makes).
'image base import' stores an OCI image layout (a directory), an OCI archive or a docker
archive (docker save, podman save) in the workspace registry as NAME:TAG, which
'image create --base NAME:TAG' builds on. The workspace's default base (set with --default or
'image base default') is what 'image create' without --base builds on; without one, the
server's --image-base.`}
	cmd.AddCommand(imageBaseImportCmd(cfg), imageBaseListCmd(cfg), imageBaseShowCmd(cfg), imageBaseDefaultCmd(cfg))
	return cmd
}

func imageBaseImportCmd(cfg *clientConfig) *cobra.Command {
	var name string
	var setDefault bool
	cmd := &cobra.Command{
		Use:   "import FILE|DIR --name NAME:TAG [--default]",
		Short: "Import an OCI layout (DIR), OCI archive or docker archive as a base image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return usagef("--name NAME:TAG is required: the base's name in the workspace registry (python:3.11)")
			}
			if _, _, err := atelier.ParseBaseRef(name); err != nil {
				return usagef("--name %s", atelier.ErrorMessage(err))
			}
			src := args[0]
			fi, err := os.Stat(src)
			if err != nil {
				return usagef("%s: no such file or directory", src)
			}
			if fi.IsDir() {
				// A link to a layout (scripts/build-python-base.sh's current) is its directory.
				if src, err = filepath.EvalSymlinks(src); err != nil {
					return err
				}
			}
			var body io.Reader
			var size int64
			if fi.IsDir() {
				if _, err := os.Stat(filepath.Join(src, "index.json")); err != nil {
					return usagef("%s is not an OCI image layout (it has no index.json)", src)
				}
				size = dirSize(src)
				// The layout goes as a tar (an OCI archive), written as it is sent.
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(build.TarDir(pw, src)) }()
				defer pr.Close()
				body = pr
			} else {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer f.Close()
				body, size = f, fi.Size()
			}
			c, err := cfg.transferClient(cmd.Context())
			if err != nil {
				return err
			}
			bar := newProgress(os.Stderr, "uploading base image", progressThreshold(size))
			b, err := c.ImportBaseImage(cmd.Context(), cfg.workspace, name, setDefault, bar.reader(body))
			bar.done()
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), b)
			}
			def := ""
			if b.Default {
				def = "; the workspace's default base"
			}
			cfg.done("imported %s (%s, %s, %s)%s", b.Location, b.Platform, b.Digest, humanBytes(b.Size), def)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "NAME:TAG in the workspace registry (a bare NAME is NAME:latest)")
	cmd.Flags().BoolVar(&setDefault, "default", false, "also make it the workspace's default base (Owners)")
	return cmd
}

// dirSize is the bytes of the files under dir (the progress bar's total; 0 if unreadable).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func imageBaseListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the imported base images and the workspace's default base", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListBaseImages(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.output == "json" {
				return printJSON(out, list)
			}
			t := newTable(out, "NAME", "TAG", "PLATFORM", "SIZE", "DIGEST", "DEFAULT", "IMPORTED", "BY")
			for _, b := range list.Bases {
				def := ""
				if b.Default {
					def = "yes"
				}
				t.row(b.Name, b.Tag, b.Platform, humanBytes(b.Size), b.Digest, def, b.ImportedAt, b.ImportedBy)
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "default base: %s\n", cmpOr(list.Default, "(none: the server's --image-base)"))
			return nil
		},
	}
}

func imageBaseShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME[:TAG]", Short: "Show an imported base image", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, tag, err := atelier.ParseBaseRef(args[0])
			if err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListBaseImages(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			for _, b := range list.Bases {
				if b.Name != name || b.Tag != tag {
					continue
				}
				if cfg.output == "json" {
					return printJSON(cmd.OutOrStdout(), b)
				}
				t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
				t.row("name", b.Name)
				t.row("tag", b.Tag)
				t.row("location", b.Location)
				t.row("digest", b.Digest)
				t.row("size", humanBytes(b.Size))
				t.row("platform", b.Platform)
				t.row("format", b.Format)
				t.row("default", b.Default)
				t.row("imported", b.ImportedAt)
				t.row("imported by", b.ImportedBy)
				return t.flush()
			}
			return atelier.Errorf(atelier.ENOTFOUND, "no imported base %s:%s in workspace %q (see 'atelier image base list')", name, tag, cfg.workspace)
		},
	}
}

func imageBaseDefaultCmd(cfg *clientConfig) *cobra.Command {
	var unset bool
	cmd := &cobra.Command{
		Use:   "default [BASE | --unset]",
		Short: "Show or set the workspace's default base (a NAME:TAG of its registry or HOST/REPO:TAG; Owners set it)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes BASE or nothing, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if unset && len(args) > 0 {
				return usagef("give BASE or --unset, not both")
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 1 || unset {
				base := ""
				if len(args) == 1 {
					base = args[0]
				}
				if err := c.SetDefaultBaseImage(ctx, cfg.workspace, base); err != nil {
					return err
				}
			}
			list, err := c.ListBaseImages(ctx, cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]string{"default": list.Default})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "default base: %s\n", cmpOr(list.Default, "(none: the server's --image-base)"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&unset, "unset", false, "remove the default (images are then built on the server's --image-base)")
	return cmd
}
