// Package natstest runs an in-process nats-server with JetStream for
// tests: plain, with TLS (a throwaway CA and certificates), with JWT
// credentials (operator mode, a creds file), or with user/password; it can
// be shut down and restarted on the same port and store directory.
// StartCluster runs a JetStream cluster of several such servers whose nodes
// can be stopped, lost and started again. Proxy sits between client and
// server and can hold the server's replies, to make JetStream acks time
// out, or cut the connection.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an in-process nats-server with JetStream on t.TempDir().
type Server struct {
	t        testing.TB
	mu       sync.Mutex
	srv      *server.Server
	opts     server.Options // template; Port fixed after the first start
	storeDir string
	scheme   string
	tls      *TLSFiles
	creds    string
	user     string
	password string
}

// Option changes how the server is set up.
type Option func(*Server)

// Start starts the server; it shuts down at test cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := newServer(t, opts...)
	s.start()
	return s
}

// newServer sets a server up without starting it; it shuts down at test
// cleanup.
func newServer(t testing.TB, opts ...Option) *Server {
	s := &Server{t: t, storeDir: t.TempDir(), scheme: "nats"}
	s.opts = server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  s.storeDir,
		NoLog:     true,
		NoSigs:    true,
	}
	for _, o := range opts {
		o(s)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// WithUser requires user/password authentication.
func WithUser(user, password string) Option {
	return func(s *Server) {
		s.user, s.password = user, password
		s.opts.Username, s.opts.Password = user, password
	}
}

// WithStoreDir keeps JetStream's store in dir (to read what another
// server stored there) instead of a fresh t.TempDir().
func WithStoreDir(dir string) Option {
	return func(s *Server) { s.storeDir, s.opts.StoreDir = dir, dir }
}

// URL is the client URL (tls:// with TLS). With WithUser it carries no
// credentials; use URLWithUser.
func (s *Server) URL() string {
	return s.scheme + "://127.0.0.1:" + strconv.Itoa(s.opts.Port)
}

// URLWithUser is the URL with the user and password of WithUser in it.
func (s *Server) URLWithUser() string {
	return fmt.Sprintf("%s://%s:%s@127.0.0.1:%d", s.scheme, s.user, s.password, s.opts.Port)
}

// StoreDir is the JetStream store directory, kept across restarts.
func (s *Server) StoreDir() string { return s.storeDir }

// TLS returns the certificate files of WithTLS (nil without).
func (s *Server) TLS() *TLSFiles { return s.tls }

// CredsFile is the user credentials file of WithCreds ("" without).
func (s *Server) CredsFile() string { return s.creds }

// Shutdown stops the server (idempotent).
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a stopped server again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for { // the port can linger for a moment after shutdown
		err := s.tryStart()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("natstest: restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.tryStart(); err != nil {
		s.t.Fatalf("natstest: %v", err)
	}
}

func (s *Server) tryStart() error {
	opts := s.opts // copy: the server keeps and mutates its options
	srv, err := server.NewServer(&opts)
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("server not ready")
	}
	s.mu.Lock()
	s.srv = srv
	if s.opts.Port <= 0 { // later starts use the same port
		s.opts.Port = srv.Addr().(*net.TCPAddr).Port
	}
	s.mu.Unlock()
	return nil
}

// Connect opens a plain client connection for assertions (with the
// server's TLS, creds or user set up); it closes at test cleanup.
func (s *Server) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	var opts []nats.Option
	if s.tls != nil {
		opts = append(opts, nats.RootCAs(s.tls.CA), nats.ClientCert(s.tls.ClientCert, s.tls.ClientKey))
	}
	if s.creds != "" {
		opts = append(opts, nats.UserCredentials(s.creds))
	}
	url := s.URL()
	if s.user != "" {
		url = s.URLWithUser()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
