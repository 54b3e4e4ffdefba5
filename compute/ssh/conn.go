package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/atelier-ml/atelier"
)

// maxSessions bounds the sessions open at once on one connection: OpenSSH's MaxSessions is 10
// by default, and a session more is refused.
const maxSessions = 8

// endpoint is a machine and the way in: what a connection is dialed with.
type endpoint struct {
	target  string // the compute target's name, for messages
	addr    string // host:port
	user    string
	hostKey string // the expected host key, "" to accept any
	key     string // the private key (PEM or OpenSSH)
	pass    string
}

func newEndpoint(t *atelier.ComputeTarget, creds atelier.ComputeCredentials, hostKey string) endpoint {
	port := t.SSH.Port
	if port == 0 {
		port = 22
	}
	if t.SSH.HostKey != "" {
		hostKey = t.SSH.HostKey
	}
	return endpoint{target: t.Name, addr: net.JoinHostPort(strings.Trim(t.SSH.Host, "[]"), strconv.Itoa(port)), user: t.SSH.User,
		hostKey: strings.TrimSpace(hostKey), key: creds.SSHPrivateKey, pass: creds.SSHPassphrase}
}

// id names the connection an endpoint may share: the same machine, account, host key and key.
func (e endpoint) id() string {
	h := sha256.Sum256([]byte(e.user + "\x00" + e.addr + "\x00" + e.hostKey + "\x00" + e.key + "\x00" + e.pass))
	return hex.EncodeToString(h[:])
}

// client is a connection kept for reuse.
type client struct {
	mu       sync.Mutex // held while dialing
	c        *ssh.Client
	seen     string // the host key the machine presented
	lastUsed time.Time
	sessions chan struct{}
}

// dial connects and authenticates, returning the host key the machine presented. Its errors
// are the user's to fix and say how: EINVALID for a refused key or a wrong host key,
// EUNAVAILABLE for a machine that does not answer.
func dial(ctx context.Context, e endpoint, timeout time.Duration) (*ssh.Client, string, error) {
	var signer ssh.Signer
	var err error
	if e.pass != "" {
		signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(e.key), []byte(e.pass))
	} else {
		signer, err = ssh.ParsePrivateKey([]byte(e.key))
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: credentials.ssh_private_key is encrypted: give its passphrase (credentials.ssh_passphrase, --key-passphrase)", e.target)
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: credentials.ssh_passphrase does not decrypt credentials.ssh_private_key", e.target)
	case err != nil:
		return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: credentials.ssh_private_key cannot be read: %v", e.target, err)
	}
	var want ssh.PublicKey
	if e.hostKey != "" {
		want, _, _, _, err = ssh.ParseAuthorizedKey([]byte(e.hostKey))
		if err != nil {
			return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: ssh.host_key cannot be read: %v", e.target, err)
		}
	}
	var seen string
	var mismatch bool
	cfg := &ssh.ClientConfig{
		User:    e.user,
		Auth:    []ssh.AuthMethod{ssh.PublicKeys(signer)},
		Timeout: timeout,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			if want != nil && !bytes.Equal(want.Marshal(), key.Marshal()) {
				mismatch = true
				return errors.New("host key mismatch")
			}
			return nil
		},
	}
	if want != nil {
		// Ask for the kind of key expected: a machine has several.
		cfg.HostKeyAlgorithms = []string{want.Type()}
		if want.Type() == ssh.KeyAlgoRSA {
			cfg.HostKeyAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: cannot reach %s: %s (check ssh.host and ssh.port, and that the machine's sshd runs)", e.target, e.addr, netReason(err))
	}
	nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(nc, e.addr, cfg)
	stop()
	if err != nil {
		nc.Close()
		switch {
		case mismatch:
			return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: the host key of %s is not ssh.host_key: the machine presented %q; if the machine's key changed, attach the target again with its key (ssh-keyscan -p PORT HOST), else something else answers at its address",
				e.target, e.addr, seen)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, "", atelier.Errorf(atelier.EINVALID, "compute target %s: %s refused the key of credentials.ssh_private_key for user %q: add its public key (%s) to ~%s/.ssh/authorized_keys on the machine",
				e.target, e.addr, e.user, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), e.user)
		case ctx.Err() != nil:
			return nil, "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s did not complete the SSH handshake in time", e.target, e.addr)
		}
		return nil, "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: the SSH handshake with %s failed: %v", e.target, e.addr, err)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), seen, nil
}

func netReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// get returns a connection to e, reusing one the driver keeps.
func (d *Driver) get(ctx context.Context, e endpoint) (*client, error) {
	id := e.id()
	d.mu.Lock()
	if d.clients == nil {
		d.clients = map[string]*client{}
	}
	c := d.clients[id]
	if c == nil {
		c = &client{sessions: make(chan struct{}, maxSessions)}
		d.clients[id] = c
	}
	d.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.lastUsed = time.Now()
		return c, nil
	}
	sc, seen, err := dial(ctx, e, d.dialTimeout())
	if err != nil {
		return nil, err
	}
	c.c, c.seen, c.lastUsed = sc, seen, time.Now()
	go d.keep(id, c, sc)
	return c, nil
}

// keep watches a kept connection: it is closed when idle for IdleTimeout, or when the machine
// stops answering keepalives; the next use dials again.
func (d *Driver) keep(id string, c *client, sc *ssh.Client) {
	idle := d.IdleTimeout
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	tick := time.NewTicker(min(idle/2, 30*time.Second))
	defer tick.Stop()
	done := make(chan struct{})
	go func() { sc.Wait(); close(done) }()
	for {
		select {
		case <-done:
			d.drop(c, sc)
			return
		case <-tick.C:
		}
		c.mu.Lock()
		expired := time.Since(c.lastUsed) > idle && len(c.sessions) == 0
		c.mu.Unlock()
		if expired {
			d.drop(c, sc)
			return
		}
		if _, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			d.drop(c, sc)
			return
		}
	}
}

// drop closes a kept connection (if it is still sc) so that the next use dials again.
func (d *Driver) drop(c *client, sc *ssh.Client) {
	c.mu.Lock()
	if c.c == sc {
		c.c = nil
	}
	c.mu.Unlock()
	sc.Close()
}

// Close closes the connections the driver keeps.
func (d *Driver) Close() error {
	d.mu.Lock()
	list := make([]*client, 0, len(d.clients))
	for _, c := range d.clients {
		list = append(list, c)
	}
	d.mu.Unlock()
	for _, c := range list {
		c.mu.Lock()
		if c.c != nil {
			c.c.Close()
			c.c = nil
		}
		c.mu.Unlock()
	}
	return nil
}

func (d *Driver) dialTimeout() time.Duration {
	if d.DialTimeout > 0 {
		return d.DialTimeout
	}
	return 20 * time.Second
}

// result is what a remote command said.
type result struct {
	stdout, stderr []byte
	code           int
}

// session opens a session on the kept connection to e (dialing again once when the kept one
// turned out dead). release must be called when done with it.
func (d *Driver) session(ctx context.Context, e endpoint) (s *ssh.Session, release func(), err error) {
	for attempt := 0; ; attempt++ {
		c, err := d.get(ctx, e)
		if err != nil {
			return nil, nil, err
		}
		select {
		case c.sessions <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		c.mu.Lock()
		sc := c.c
		c.lastUsed = time.Now()
		c.mu.Unlock()
		if sc == nil {
			<-c.sessions
			continue
		}
		s, err := sc.NewSession()
		if err != nil {
			<-c.sessions
			d.drop(c, sc)
			if attempt == 0 {
				continue
			}
			return nil, nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: opening an SSH session on %s: %v", e.target, e.addr, err)
		}
		var once sync.Once
		return s, func() {
			once.Do(func() {
				s.Close()
				c.mu.Lock()
				c.lastUsed = time.Now()
				c.mu.Unlock()
				<-c.sessions
			})
		}, nil
	}
}

// run runs a POSIX shell script on e's machine with stdin, and returns its output and exit
// code. An error means the script could not be run (or its end was not heard).
func (d *Driver) run(ctx context.Context, e endpoint, script string, stdin io.Reader) (result, error) {
	s, release, err := d.session(ctx, e)
	if err != nil {
		return result{}, err
	}
	defer release()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if stdin != nil {
		s.Stdin = stdin
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err = s.Run("sh -c " + quote(script))
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return result{out.Bytes(), errb.Bytes(), 0}, nil
	case errors.As(err, &exit):
		return result{out.Bytes(), errb.Bytes(), exit.ExitStatus()}, nil
	case ctx.Err() != nil:
		return result{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s did not answer in time", e.target, e.addr)
	}
	return result{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: running a command on %s: %v", e.target, e.addr, err)
}

// quote quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fingerprint is a host key's SHA256 fingerprint, as ssh-keygen -l shows it.
func fingerprint(authorizedKey string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}
