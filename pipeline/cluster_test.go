package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"materializer/conf"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

// The real pipeline announces its files to a stream of three replicas
// (notify.stream_replicas = 3) on a three-node JetStream cluster. While
// files seal and notices go out, the stream's leader is lost (no step-down:
// the others elect a new one after a timeout) and comes back; then the new
// leader stops cleanly (a rolling restart of NATS) and comes back. After
// each move a flush — which waits for every notice — finishes, so notices
// flow again; at the end every delivered file has exactly one notice (a
// notice repeated across a move was de-duplicated by its Msg-Id) and the
// rows are what compaction says.
func TestNoticesThroughNATSClusterLeaderMoves(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 4)
	c := natstest.StartCluster(t, 3)
	dir := t.TempDir()
	_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), NATSURL: c.URL()})
	cfg.Notify.StreamReplicas = 3
	cfg.Notify.PublishTimeout = conf.Dur(2 * time.Second)
	cfg.Storage.RollMaxAge = conf.Dur(time.Second) // correction and rejected files go out all the time
	reg := prometheus.NewRegistry()
	p, _ := e2etest.StartPipeline(t, cfg, reg)

	events := e2etest.Generate(13, 300, 9000)
	moves := []struct {
		what string
		stop func(leader *natstest.Server)
	}{
		{"the stream leader lost", c.Crash},
		{"the stream leader stopped", (*natstest.Server).Shutdown},
		{"nothing", nil},
	}
	chunk := len(events) / len(moves)
	for i, m := range moves {
		e2etest.Publish(t, nk, events[i*chunk:(i+1)*chunk])
		before := e2etest.Metric(t, reg, "materializer_delivery_notices_total", nil)
		var leader *natstest.Server
		if m.stop != nil {
			leader = c.StreamLeader(notify.DefaultStream)
			m.stop(leader)
		}
		start := time.Now()
		e2etest.Flush(t, p)
		if e2etest.Metric(t, reg, "materializer_delivery_notices_total", nil) == before {
			t.Fatalf("after %s: no notice went out", m.what)
		}
		t.Logf("after %s: a flush delivered and announced everything in %v", m.what, time.Since(start).Round(time.Millisecond))
		if leader != nil {
			if now := c.StreamLeader(notify.DefaultStream); now == leader {
				t.Fatalf("%s still leads after it stopped", leader.Name())
			}
			c.Restart(leader)
			c.WaitStreamCurrent(notify.DefaultStream)
		}
	}
	waitReceived(t, p, len(events))
	e2etest.Flush(t, p)

	files := e2etest.ReadDelivered(t, filepath.Join(dir, "storage"))
	e2etest.CheckDelivered(t, files, e2etest.Expect(events))
	e2etest.CheckNotices(t, c.URL(), files)
	checkReplicas(t, c, 3)
	t.Logf("%d files; notices: %v acknowledged, %v of them duplicates; %v publish retries, %v failed publishes",
		len(files), e2etest.Metric(t, reg, "materializer_notify_published_total", nil),
		e2etest.Metric(t, reg, "materializer_notify_published_total", map[string]string{"result": "duplicate"}),
		e2etest.Metric(t, reg, "materializer_notify_publish_retries_total", nil), e2etest.Metric(t, reg, "materializer_notify_publish_errors_total", nil))
}

// checkReplicas: the notice stream has n replicas, every one current.
func checkReplicas(t *testing.T, c *natstest.Cluster, n int) {
	t.Helper()
	c.WaitStreamCurrent(notify.DefaultStream)
	js, _ := jetstream.New(c.Connect(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, notify.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.CachedInfo(); info.Config.Replicas != n || info.Cluster == nil || len(info.Cluster.Replicas) != n-1 {
		t.Fatalf("notice stream: %d replicas configured, cluster %+v", info.Config.Replicas, info.Cluster)
	}
}
