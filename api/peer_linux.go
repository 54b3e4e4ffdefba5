package api

import (
	"fmt"
	"net"

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
