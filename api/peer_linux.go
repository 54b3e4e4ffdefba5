package api

import (
	"bytes"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerOf names the process at the other end of c, for the logs and the audit log (a Unix
// socket's client has no address).
func peerOf(c *net.UnixConn) net.Addr {
	peer := &net.UnixAddr{Net: "unix", Name: "local"}
	if raw, err := c.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				peer.Name = fmt.Sprintf("local:uid=%d,pid=%d", cred.Uid, cred.Pid)
			}
		})
	}
	return peer
}

// peerConfined reports whether the process at the other end of c runs with no_new_privs, as
// every process of a confined run does (and that its processes cannot undo).
func peerConfined(c *net.UnixConn) bool {
	pid := 0
	if raw, err := c.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				pid = int(cred.Pid)
			}
		})
	}
	if pid <= 0 {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && bytes.Contains(status, []byte("\nNoNewPrivs:\t1\n"))
}
