//go:build !linux

package api

import "net"

// peerOf names the other end of c: a local process, which only Linux identifies here.
func peerOf(c *net.UnixConn) net.Addr { return &net.UnixAddr{Net: "unix", Name: "local"} }

// peerConfined: only Linux confines runs (package sandbox).
func peerConfined(c *net.UnixConn) bool { return false }
