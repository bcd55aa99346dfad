package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"materializer/conf"
	"materializer/internal/e2etest"
)

// orderType is an event type a reload adds.
func orderType(name string) string {
	return fmt.Sprintf(`
[[event_types]]
name          = %q
partition_key = ["order_id"]
ordering      = "arrival"
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "orders"
  columns = [{ name = "order_id", path = "order_id", type = "int" }]
`, name)
}

// A reload (SIGHUP) that adds event types while events flow: the engine's
// event types are written by the reload while the dispatcher reads them for
// every batch and Flush reads them; the pipeline's consumers are written
// while Status, Ready, Flush and backpressure read them. Under -race (make
// test) any unguarded access fails the test. Afterwards every article event
// is delivered as compaction says and the added event types consume.
func TestReloadAddsEventTypesUnderTraffic(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 4)
	added := []string{"order.created", "order.paid", "order.packed", "order.sent", "order.returned", "order.refunded"}
	for _, name := range added {
		if err := nk.CreateEventType(name, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	path, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL()})
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := e2etest.StartPipeline(t, cfg, nil)

	events := e2etest.Generate(11, 200, 4000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { // traffic, for the article type and for the ones being added
		for i := 0; i < len(events); i += 100 {
			e2etest.Publish(t, nk, events[i:min(i+100, len(events))])
			for _, name := range added {
				ev := fmt.Appendf(nil, `{"metadata":{"eid":"00000000-0000-4000-8000-%012d","occurred_at":"2026-11-21T12:00:00Z"},"order_id":%d}`, i, i)
				if err := nk.Publish(name, ev); err != nil {
					t.Error(err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Go(func() { // the admin API's readers
		for ctx.Err() == nil {
			if _, err := p.Status(ctx); err != nil {
				t.Error(err)
			}
			p.Ready()
			p.Healthy()
			fctx, fcancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, _ = p.Flush(fctx, added[len(added)-1]) // unknown until its reload: an error, never a race
			fcancel()
		}
	})
	for i, name := range added {
		text = append(text, orderType(name)...)
		next, err := conf.Parse(text, conf.ForRun)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := p.Reload(ctx, next)
		if err != nil || len(plan.Added) != 1 || plan.Added[0].Name != name {
			t.Fatalf("reload %d: %+v, %v", i+1, plan, err)
		}
		time.Sleep(50 * time.Millisecond) // let traffic flow between reloads
	}
	e2etest.WaitFor(t, 2*time.Minute, "every article event received", func() bool {
		return e2etest.EventType(t, p, "article.updated").Counters.Received == uint64(len(events))
	})
	for _, name := range added {
		e2etest.WaitFor(t, time.Minute, name+" received events", func() bool {
			return e2etest.EventType(t, p, name).Counters.Received > 0
		})
	}
	cancel()
	wg.Wait()
	e2etest.Flush(t, p)
	x := e2etest.Expect(events)
	c := e2etest.EventType(t, p, "article.updated").Counters
	if !c.Balanced() || c.Open != 0 || c.Main != uint64(len(x.Newest)) || c.Received != uint64(len(events)) {
		t.Errorf("counters %+v; want main=%d", c, len(x.Newest))
	}
	e2etest.CheckDelivered(t, e2etest.ReadDelivered(t, filepath.Join(dir, "storage")), x)
	st, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, et := range st.EventTypes {
		names = append(names, et.Name)
	}
	if want := append([]string{"article.updated"}, added...); !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("status lists %v, want %v", names, want)
	}
}
