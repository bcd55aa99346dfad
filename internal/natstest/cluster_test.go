package natstest_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"materializer/internal/natstest"
)

// TestClusterLeaderMovesAndNodeCatchesUp: a replicated stream on three
// nodes keeps its messages when its leader stops cleanly and when it is
// lost (Crash); the leader moves, and the node, started again, catches up.
func TestClusterLeaderMovesAndNodeCatchesUp(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "shutdown", true: "crash"}[crash], func(t *testing.T) { leaderMoves(t, crash) })
	}
}

func leaderMoves(t *testing.T, crash bool) {
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, _ := jetstream.New(c.Connect(t))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	sent := 0
	publish := func(n int) { // each message until acknowledged; a repeat has the same Msg-Id
		for range n {
			sent++
			for {
				actx, acancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(actx, "s.a", []byte("x"), jetstream.WithMsgID(strconv.Itoa(sent)))
				acancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	publish(10)
	old := c.StreamLeader("S")
	if crash {
		c.Crash(old)
	} else {
		old.Shutdown()
	}
	start := time.Now()
	publish(10)
	if now := c.StreamLeader("S"); now == old {
		t.Fatalf("stream leader still %s after it stopped", now.Name())
	}
	t.Logf("publishing again %v after the leader stopped", time.Since(start))
	c.Restart(old)
	c.WaitReady()
	c.WaitStreamCurrent("S")
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 20 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream state %+v, cluster %+v", info.State, info.Cluster)
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			t.Errorf("replica %s: %+v", r.Name, r)
		}
	}
}
