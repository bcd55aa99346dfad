package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"materializer/internal/e2etest"
	"materializer/internal/natstest"
)

// The whole pipeline in one process: emulator → consumer → engine → file
// storage → NATS, then a flush; the delivered files and notices must be
// exactly what compaction says.
func TestPipelineEndToEndInProcess(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 4)
	ns := natstest.Start(t)
	dir := t.TempDir()
	_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), NATSURL: ns.URL()})
	p, _ := e2etest.StartPipeline(t, cfg, nil)

	events := e2etest.Generate(7, 300, 6000)
	e2etest.Publish(t, nk, events)
	e2etest.WaitFor(t, 60*time.Second, "every event received", func() bool {
		return e2etest.EventType(t, p, "article.updated").Counters.Received == uint64(len(events))
	})
	e2etest.Flush(t, p)
	x := e2etest.Expect(events)
	c := e2etest.EventType(t, p, "article.updated").Counters
	if !c.Balanced() || c.Open != 0 || c.Main != uint64(len(x.Newest)) || c.Rejected != uint64(x.Rejected) ||
		c.Duplicate != uint64(x.Duplicates) || c.Received != uint64(len(events)) {
		t.Errorf("counters %+v; want main=%d rejected=%d duplicate=%d", c, len(x.Newest), x.Rejected, x.Duplicates)
	}
	files := e2etest.ReadDelivered(t, filepath.Join(dir, "storage"))
	e2etest.CheckDelivered(t, files, x)
	e2etest.CheckNotices(t, ns.URL(), files)
	if left, _ := os.ReadDir(filepath.Join(dir, "data", "staging")); len(left) != 0 {
		t.Errorf("%d staging files left after a flush", len(left))
	}
}
