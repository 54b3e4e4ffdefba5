package main

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

// storageCmds are the scripts' commands for storage servers and the data directory.
var storageCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	// s3server BUCKET starts versitygw (an S3-compatible server) until the script ends, creates
	// BUCKET, and sets $S3_ENDPOINT, $S3_DIR (its storage folder) and the standard AWS
	// credential variables.
	"s3server": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: s3server BUCKET")
		}
		addr, dir := serverAddrAndDir(ts, "s3-storage")
		srv, stop, err := datastoretest.LaunchVersityGW(dir, addr)
		ts.Check(err)
		ts.Defer(stop)
		ts.Check(srv.CreateBucket(context.Background(), args[0]))
		ts.Setenv("S3_ENDPOINT", srv.Endpoint)
		ts.Setenv("S3_DIR", dir)
		ts.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		ts.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	},
	// azureserver CONTAINER starts Azurite (the Azure Storage emulator) until the script ends,
	// creates CONTAINER, and sets $AZURE_ENDPOINT (the service URL) and the standard Azure
	// credential variables.
	"azureserver": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: azureserver CONTAINER")
		}
		addr, dir := serverAddrAndDir(ts, "azurite")
		service, stop, err := datastoretest.LaunchAzurite(dir, addr)
		ts.Check(err)
		ts.Defer(stop)
		_, err = datastoretest.CreateAzuriteContainer(context.Background(), service, args[0])
		ts.Check(err)
		ts.Setenv("AZURE_ENDPOINT", service)
		ts.Setenv("AZURE_STORAGE_ACCOUNT", datastoretest.AzuriteAccount)
		ts.Setenv("AZURE_STORAGE_KEY", datastoretest.AzuriteKey)
	},
	// azurels CONTAINER prints the name of every blob in CONTAINER of the Azurite service
	// started by azureserver.
	"azurels": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: azurels CONTAINER")
		}
		cc, err := datastoretest.AzuriteContainer(ts.Getenv("AZURE_ENDPOINT"), args[0])
		ts.Check(err)
		var out strings.Builder
		for pager := cc.NewListBlobsFlatPager(nil); pager.More(); {
			page, err := pager.NextPage(context.Background())
			ts.Check(err)
			for _, b := range page.Segment.BlobItems {
				out.WriteString(*b.Name + "\n")
			}
		}
		ts.Stdout().Write([]byte(out.String()))
	},
	// lsfiles DIR prints the path (relative to DIR) of every regular file under DIR.
	"lsfiles": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: lsfiles DIR")
		}
		root := ts.MkAbs(args[0])
		var out strings.Builder
		ts.Check(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				rel, _ := filepath.Rel(root, p)
				out.WriteString(filepath.ToSlash(rel) + "\n")
			}
			return nil
		}))
		ts.Stdout().Write([]byte(out.String()))
	},
}

// serverAddrAndDir picks a free loopback address for a storage server and makes its folder.
func serverAddrAndDir(ts *testscript.TestScript, dir string) (string, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	addr := ln.Addr().String()
	ln.Close()
	dir = ts.MkAbs(dir)
	ts.Check(os.MkdirAll(dir, 0o755))
	return addr, dir
}

// withStorageCmds adds storageCmds to cmds.
func withStorageCmds(cmds map[string]func(ts *testscript.TestScript, neg bool, args []string)) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	for name, cmd := range storageCmds {
		cmds[name] = cmd
	}
	return cmds
}
