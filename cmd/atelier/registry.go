package main

import (
	"github.com/spf13/cobra"
)

func newRegistryCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "The workspace image registry's upkeep (administrators)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "gc",
		Short: "Collect the image registry's garbage now: the blobs no image references",
		Long: `Deletes the blobs of the image registry that no manifest of any repository references and no
upload session holds (sparing those put or linked in the last hour, which a push may be about
to reference), and ends upload sessions idle for a day; prints what was removed. The server
does it on its own every --registry-gc-interval (1h by default). Administrators only.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			rep, err := c.CollectRegistryGarbage(cmd.Context())
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			cfg.done("deleted %d %s (%s), ended %d %s", rep.BlobsDeleted, plural(rep.BlobsDeleted, "blob", "blobs"), humanBytes(rep.BytesDeleted),
				rep.UploadsExpired, plural(rep.UploadsExpired, "upload session", "upload sessions"))
			return nil
		},
	})
	return cmd
}
