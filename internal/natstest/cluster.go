package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the name of the cluster StartCluster runs.
const ClusterName = "materializer-test"

// account is the account clients without credentials use.
const account = server.DEFAULT_GLOBAL_ACCOUNT

// Cluster is a JetStream cluster of in-process servers on loopback, as a
// production NATS cluster is laid out: one cluster name, every node routed
// to every other, each node with JetStream on its own store directory. A
// node can be stopped and started again on the same ports and store, as an
// instance of a real cluster restarts: Server.Shutdown is a clean stop (its
// stream and meta leaderships move at once), Crash a lost machine (the
// others hear nothing more and elect new leaders after a timeout). Every
// route runs through a Proxy of its own, so a node can be cut off.
type Cluster struct {
	t      testing.TB
	nodes  []*Server
	routes map[[2]int]*Proxy // (from, to) → the proxy node from dials to reach node to
}

// StartCluster starts n nodes (named n1, n2, …) and waits until JetStream
// has a meta leader and every node is current. The nodes shut down at test
// cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, n)
	c := &Cluster{t: t, routes: map[[2]int]*Proxy{}}
	for i := range n {
		var routes []*url.URL
		for j, p := range ports {
			if j != i {
				proxy := StartProxy(t, "127.0.0.1:"+strconv.Itoa(p))
				c.routes[[2]int{i, j}] = proxy
				routes = append(routes, &url.URL{Scheme: "nats", Host: proxy.Addr()})
			}
		}
		c.nodes = append(c.nodes, newServer(t, func(s *Server) {
			s.opts.ServerName = fmt.Sprintf("n%d", i+1)
			// NoAdvertise: the nodes know each other only through the
			// proxies, never by the addresses they would gossip.
			s.opts.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: ports[i], NoAdvertise: true}
			s.opts.Routes = routes
		}))
	}
	for _, s := range c.nodes {
		s.start()
	}
	c.WaitReady()
	return c
}

// Crash cuts the node off from the others, then stops it: to the rest of
// the cluster it falls silent without stepping down from anything, as a
// machine that is lost. Restart brings it back.
func (c *Cluster) Crash(s *Server) {
	c.t.Helper()
	c.link(s, (*Proxy).Cut)
	s.Shutdown()
}

// Restart starts a node stopped by Crash or Shutdown again and reconnects
// it to the others.
func (c *Cluster) Restart(s *Server) {
	c.t.Helper()
	c.link(s, (*Proxy).Mend)
	s.Restart()
}

// link applies f to every route proxy to or from s.
func (c *Cluster) link(s *Server, f func(*Proxy)) {
	for pair, p := range c.routes {
		if c.nodes[pair[0]] == s || c.nodes[pair[1]] == s {
			f(p)
		}
	}
}

// freePorts reserves n loopback ports for the routes, which every node must
// know before the first one starts.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Nodes are the cluster's servers, running or stopped, in name order.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// URL lists every node's client URL, comma-separated (what a client is
// configured with).
func (c *Cluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to the cluster for assertions; it
// closes at test cleanup.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitReady waits until JetStream has a meta leader and every running node
// is current with it.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.wait("a JetStream meta leader with every running node current", func() bool {
		leader := false
		for _, s := range c.nodes {
			srv := s.running()
			if srv == nil {
				continue
			}
			if !srv.JetStreamIsCurrent() {
				return false
			}
			leader = leader || srv.JetStreamIsLeader()
		}
		return leader
	})
}

// StreamLeader waits until a running node leads the stream and returns it.
func (c *Cluster) StreamLeader(stream string) *Server {
	c.t.Helper()
	var leader *Server
	c.wait("a leader of stream "+stream, func() bool {
		for _, s := range c.nodes {
			if srv := s.running(); srv != nil && srv.JetStreamIsStreamLeader(account, stream) {
				leader = s
				return true
			}
		}
		return false
	})
	return leader
}

// WaitStreamCurrent waits until the stream's leader reports every other
// replica current, online and without lag (a restarted node has caught up).
func (c *Cluster) WaitStreamCurrent(stream string) {
	c.t.Helper()
	js, err := jetstream.New(c.Connect(c.t))
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	c.wait("every replica of stream "+stream+" current", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		ci := s.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" || len(ci.Replicas) != s.CachedInfo().Config.Replicas-1 {
			return false
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline || r.Lag > 0 {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) wait(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Name is the server's name (n1, n2, … in a cluster).
func (s *Server) Name() string { return s.opts.ServerName }

// running is the server while it runs, nil while it is stopped.
func (s *Server) running() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}
