package edge

import (
	"net"
	"net/http"
	"net/netip"
)

// RemoteHost is the address of the client's end of the connection, without its port. Behind a
// proxy that is the proxy: Forwarded and X-Forwarded-For are the client's to write, so the
// audit log does not take them for the truth.
func RemoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// FromLoopback reports whether r came over loopback TCP and not through a proxy (which may
// serve clients of other machines).
func FromLoopback(r *http.Request) bool {
	if r.Header.Get("Forwarded") != "" || r.Header.Get("X-Forwarded-For") != "" {
		return false
	}
	ip, err := netip.ParseAddr(RemoteHost(r))
	return err == nil && ip.IsLoopback()
}
