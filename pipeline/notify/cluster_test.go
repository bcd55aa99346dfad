package notify_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

// TestPublishThroughClusterLeaderChanges: notices published in order, like
// the outbox does, to a stream of three replicas while nodes go away
// mid-run: the stream leader is lost (Crash: the others elect a new one
// after a timeout, publishes time out or find no responders meanwhile),
// then the new leader stops cleanly (a rolling restart of NATS), then a
// follower; each comes back and catches up. Notices keep flowing after
// each move, every one is stored exactly once, and sending them all again
// stores nothing (Msg-Id de-duplication survives the moves).
func TestPublishThroughClusterLeaderChanges(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	reg := prometheus.NewRegistry()
	p := connect(t, notify.Options{URLs: c.URL(), Replicas: 3, AckTimeout: time.Second, Registerer: reg})
	// The stream's own leader election can take longer than AckTimeout.
	eventually(t, "the stream created", func() bool { return p.EnsureStream(ctxT(t)) == nil })
	const n = 400
	var acked, allowed atomic.Int64
	done := make(chan error, 1)
	go func() { done <- outboxLoop(ctxT(t), p, n-1, &acked, &allowed) }()
	// step lets 100 more notices go and stops a node once a few of them
	// are acknowledged, so publishes are in flight when it goes; it
	// returns once notices flow again, and brings the node back.
	step := func(what string, stop func(leader *natstest.Server) *natstest.Server) {
		t.Helper()
		before := acked.Load()
		allowed.Add(100)
		eventually(t, "publishing under way", func() bool { return acked.Load() >= before+10 })
		leader := c.StreamLeader(notify.DefaultStream)
		start := time.Now()
		node := stop(leader)
		eventually(t, "notices flowing after "+what, func() bool { return acked.Load() >= before+60 })
		if node == leader {
			if now := c.StreamLeader(notify.DefaultStream); now == leader {
				t.Fatalf("%s still leads after it stopped", now.Name())
			}
		}
		t.Logf("%s (%s): notices flowed again after %v", what, node.Name(), time.Since(start).Round(time.Millisecond))
		c.Restart(node)
		c.WaitStreamCurrent(notify.DefaultStream)
	}
	step("the leader lost", func(l *natstest.Server) *natstest.Server { c.Crash(l); return l })
	step("the leader stopped", func(l *natstest.Server) *natstest.Server { l.Shutdown(); return l })
	step("a follower stopped", func(l *natstest.Server) *natstest.Server {
		f := c.Nodes()[0]
		if f == l {
			f = c.Nodes()[1]
		}
		f.Shutdown()
		return f
	})
	allowed.Store(n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, c, n)
	dupsBefore := counter(t, reg, "materializer_notify_published_total", map[string]string{"result": "duplicate"})
	var again atomic.Int64
	if err := outboxLoop(ctxT(t), p, n-1, &again, &allowed); err != nil {
		t.Fatal(err)
	}
	if d := counter(t, reg, "materializer_notify_published_total", map[string]string{"result": "duplicate"}) - dupsBefore; d != n {
		t.Errorf("%v duplicate acks when every notice was sent again, want %d", d, n)
	}
	checkStoredOnce(t, c, n)
	t.Logf("%d notices through 3 node stops; %v publish retries, %v reconnects", n,
		counter(t, reg, "materializer_notify_publish_retries_total", nil),
		counter(t, reg, "materializer_notify_reconnects_total", nil))
}

// checkStoredOnce: the stream holds id-0 … id-(n-1), each once.
func checkStoredOnce(t *testing.T, c *natstest.Cluster, n int) {
	t.Helper()
	ids := map[string]int{}
	for _, m := range streamMsgs(t, c.Connect(t), notify.DefaultStream) {
		ids[m.Header.Get("Nats-Msg-Id")]++
	}
	for i := range n {
		id := fmt.Sprintf("id-%d", i)
		if ids[id] != 1 {
			t.Errorf("%s stored %d times", id, ids[id])
		}
		delete(ids, id)
	}
	for id, k := range ids {
		t.Errorf("unexpected id %s stored %d times", id, k)
	}
}

// TestEnsureStreamReplicatedOnCluster: the stream is created with
// notify.stream_replicas replicas, one on each node.
func TestEnsureStreamReplicatedOnCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	reg := prometheus.NewRegistry()
	p := connect(t, notify.Options{URLs: c.URL(), Replicas: 3, Registerer: reg})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(c.Connect(t))
	s, err := js.Stream(ctxT(t), notify.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Name != natstest.ClusterName || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	if r := gauge(t, reg, "materializer_notify_stream_replicas", nil); r != 3 {
		t.Fatalf("materializer_notify_stream_replicas = %v, want 3", r)
	}
}

// TestEnsureStreamReplicasNeedServers: a stream of three replicas on a
// cluster of two cannot be placed: a permanent error that names the key.
// With one node of three down it can (the missing replica catches up).
func TestEnsureStreamReplicasNeedServers(t *testing.T) {
	small := natstest.StartCluster(t, 2)
	p := connect(t, notify.Options{URLs: small.URL(), Replicas: 3})
	err := p.EnsureStream(ctxT(t))
	if !errors.Is(err, notify.ErrConfig) || notify.Retryable(err) || !strings.Contains(err.Error(), "notify.stream_replicas = 3") {
		t.Fatalf("EnsureStream of 3 replicas on 2 servers: %v, want a permanent error naming notify.stream_replicas", err)
	}

	c := natstest.StartCluster(t, 3)
	down := c.Nodes()[2]
	down.Shutdown()
	c.WaitReady()
	p = connect(t, notify.Options{URLs: c.Nodes()[0].URL(), Replicas: 3})
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatalf("Publish with one node of three down: %v", err)
	}
	down.Restart()
	c.WaitStreamCurrent(notify.DefaultStream)
}
