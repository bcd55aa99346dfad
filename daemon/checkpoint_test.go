package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/internal/s3test"
	"materializer/pipeline/engine"
	"materializer/state"
)

// Checkpoints taken while events stream in, files roll every 300 rows and
// the deliverer uploads and removes sealed files are each consistent: the
// counters identity holds, every open staging file has exactly its
// committed length and decodes to whole CSV rows (the row count its record
// names), every outbox file is there, and the manifest's cursors are the
// state's.
func TestCheckpointUnderLoadIsConsistent(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 4)
	dir := t.TempDir()
	_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL()})
	e, stop := ckptEngine(t, cfg)
	events := e2etest.Generate(11, 400, 12000)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(events); i += 1000 {
			e2etest.Publish(t, nk, events[i:i+1000])
		}
	})
	var pauses []time.Duration
	for len(pauses) < 8 || e2etest.EventType(t, e, "article.updated").Counters.Received < uint64(len(events)) {
		res := ckptTake(t, e)
		checkConsistent(t, res) // older ones are pruned by later takes (keep)
		pauses = append(pauses, res.Pause)
	}
	wg.Wait()
	stop()
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	t.Logf("%d checkpoints under load: pause min %v median %v max %v", len(pauses), pauses[0], pauses[len(pauses)/2], pauses[len(pauses)-1])
}

// checkConsistent checks one local checkpoint against its own state.
func checkConsistent(t *testing.T, res *checkpoint.Result) {
	t.Helper()
	db, err := state.OpenReadOnly(filepath.Join(res.Location, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, _ := db.Counters("article.updated")
	if !c.Balanced() {
		t.Errorf("%s: counters %+v do not balance", res.ID, c)
	}
	open, _ := db.Files()
	for _, f := range open {
		path := filepath.Join(res.Location, "staging", f.Name)
		raw, err := os.ReadFile(path)
		if err != nil || int64(len(raw)) != f.Length {
			t.Errorf("%s: open file %s: %d bytes (%v), committed length %d", res.ID, f.Name, len(raw), err, f.Length)
			continue
		}
		if f.Length > 0 && !engine.IsSessionLog(f) {
			if recs := csvRecords(t, path, raw); int64(len(recs)) != f.Rows+1 {
				t.Errorf("%s: %s holds %d records, its record says %d rows + header", res.ID, f.Name, len(recs), f.Rows)
			}
		}
	}
	outbox, _ := db.Outbox()
	for _, o := range outbox {
		if fi, err := os.Stat(filepath.Join(res.Location, "staging", o.Name)); err != nil || fi.Size() != o.Length {
			t.Errorf("%s: sealed file %s: %v", res.ID, o.Name, err)
		}
	}
	slots, _, _ := db.Slots()
	m, err := checkpointManifest(res.Location)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for p, s := range slots {
		cur, _ := db.Cursor(s)
		if cur.Offset != "" {
			applied++
			if !hasCursor(m.Cursors, p.Partition, cur.Offset) {
				t.Errorf("%s: partition %s applied %s, manifest cursors %v", res.ID, p.Partition, cur.Offset, m.Cursors)
			}
		}
	}
	if applied != len(m.Cursors) || c != m.EventTypes[0].Counters {
		t.Errorf("%s: manifest cursors %v counters %+v; state has %d cursors, counters %+v", res.ID, m.Cursors, m.EventTypes[0].Counters, applied, c)
	}
}

func checkpointManifest(dir string) (*checkpoint.Manifest, error) {
	list, err := checkpoint.ListLocal(filepath.Dir(dir))
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Location == dir {
			if c.Invalid != "" {
				return nil, os.ErrInvalid
			}
			return checkpoint.ReadManifest(dir)
		}
	}
	return nil, os.ErrNotExist
}

func hasCursor(cs []checkpoint.Cursor, partition, offset string) bool {
	for _, c := range cs {
		if c.Partition == partition && c.Offset == offset {
			return true
		}
	}
	return false
}

// Disk lost: daemon A takes a checkpoint (copied to versitygw), goes on
// consuming and delivering, and dies with its disk. `checkpoint restore
// -id latest` rebuilds the data dir on another path from the remote copy and
// resets the Nakadi cursors; daemon B continues. Under newest-version-wins
// the delivered data equals that of a run without failure, the correction
// and rejected rows are the same sets, B's main rows are exactly the
// reference's, B's counters equal the reference's (every event accounted
// for once, nothing redelivered), every delivered file has its notice, and
// no file of B collides with what A delivered after the checkpoint.
func TestRestoreAndContinueEqualsNoFailureRun(t *testing.T) {
	v := s3test.StartVersity(t)
	idFile, secretFile := v.CredFiles(t)
	nk := e2etest.ArticleEmulator(t, 4)
	ns := natstest.Start(t)
	root := t.TempDir()
	storage := filepath.Join(root, "storage")
	setup := func(dir string) e2etest.Setup {
		return e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), NATSURL: ns.URL(), Storage: storage, CheckpointURL: v.URL("ckpt"),
			Endpoint: v.Endpoint, CredFiles: [2]string{idFile, secretFile}}
	}
	_, cfgA := e2etest.Config(t, setup(filepath.Join(root, "a")))
	pathB, cfgB := e2etest.Config(t, setup(filepath.Join(root, "b")))
	_, cfgRef := e2etest.Config(t, e2etest.Setup{Dir: filepath.Join(root, "ref"), NakadiURL: nk.URL(), Group: "reference"})

	gen := articles.New(23, 300, time.Now)
	batches := make([][]articles.Event, 3)
	for i := range batches {
		for range 3000 {
			batches[i] = append(batches[i], gen.Next())
		}
	}
	e2etest.Publish(t, nk, batches[0])
	a, stopA := ckptEngine(t, cfgA)
	e2etest.WaitFor(t, time.Minute, "A received the first part", func() bool { return e2etest.EventType(t, a, "article.updated").Counters.Received == 3000 })
	ckpt := ckptTake(t, a)
	writerA := ckpt.Writer
	e2etest.Publish(t, nk, batches[1])
	e2etest.WaitFor(t, time.Minute, "A received the second part", func() bool { return e2etest.EventType(t, a, "article.updated").Counters.Received == 6000 })
	e2etest.Flush(t, a) // A delivers files after the checkpoint, then dies with its disk
	stopA()
	if err := os.RemoveAll(cfgA.Daemon.DataDir); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, "", "checkpoint", "restore", "-config", pathB, "-id", "latest", "-yes")
	if code != 0 || !strings.Contains(out, "restored checkpoint "+ckpt.ID) || errOut != "" {
		t.Fatalf("restore: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("restore:\n%s", out)
	e2etest.Publish(t, nk, batches[2])
	b, stopB := ckptEngine(t, cfgB)
	e2etest.WaitFor(t, time.Minute, "B received everything", func() bool { return e2etest.EventType(t, b, "article.updated").Counters.Received == 9000 })
	e2etest.Flush(t, b)
	cb := e2etest.EventType(t, b, "article.updated").Counters
	stopB()

	ref, stopRef := ckptEngine(t, cfgRef)
	all := append(append(append([]articles.Event{}, batches[0]...), batches[1]...), batches[2]...)
	e2etest.WaitFor(t, time.Minute, "the reference received everything", func() bool { return e2etest.EventType(t, ref, "article.updated").Counters.Received == 9000 })
	e2etest.Flush(t, ref)
	cref := e2etest.EventType(t, ref, "article.updated").Counters
	stopRef()

	if cb != cref || !cb.Balanced() || cb.Open != 0 || cb.Redelivered != 0 {
		t.Errorf("restored daemon's counters %+v, the no-failure run's %+v", cb, cref)
	}
	got, want := e2etest.ReadDelivered(t, storage), e2etest.ReadDelivered(t, filepath.Join(root, "ref", "storage"))
	compareNewestWins(t, got, want)
	writerB := writerOf(t, cfgB)
	compareRows(t, "main rows of the restored daemon", filterFiles(got, "main", writerB), filterFiles(want, "main", ""), false)
	compareRows(t, "correction rows", filterFiles(got, "correction", ""), filterFiles(want, "correction", ""), true)
	// A rejected row's offset is its batch's cursor when the event's own is
	// unknown, and batches differ between subscriptions: compare the rest.
	compareRows(t, "rejected rows", dropColumns(filterFiles(got, "rejected", ""), 2), dropColumns(filterFiles(want, "rejected", ""), 2), true)
	if x := e2etest.Expect(all); len(x.Newest) == 0 {
		t.Fatal("no articles")
	}
	e2etest.CheckNotices(t, ns.URL(), got)
	if writerB == writerA || len(filterFiles(got, "", writerB)) == 0 || len(filterFiles(got, "", writerA)) == 0 {
		t.Errorf("writers: restored %s, lost %s", writerB, writerA)
	}
}

// compareNewestWins compares, per article, the set of distinct article rows
// with the highest version over main ∪ correction.
func compareNewestWins(t *testing.T, got, want []e2etest.File) {
	t.Helper()
	g, w := newestRows(t, got), newestRows(t, want)
	if len(g) != len(w) {
		t.Errorf("newest versions for %d articles, the no-failure run has %d", len(g), len(w))
	}
	for id, rows := range w {
		if strings.Join(g[id], "|") != strings.Join(rows, "|") {
			t.Errorf("article %d: newest rows %q, the no-failure run has %q", id, g[id], rows)
		}
	}
}

func newestRows(t *testing.T, files []e2etest.File) map[int][]string {
	best := map[int]int{}
	rows := map[int]map[string]bool{}
	for _, f := range files {
		if f.Table != "article" || (f.Kind != "main" && f.Kind != "correction") {
			continue
		}
		ai, vi := f.Column(t, "article_id"), f.Column(t, "version")
		for _, r := range f.Rows {
			id, _ := strconv.Atoi(r[ai])
			v, _ := strconv.Atoi(r[vi])
			if b, ok := best[id]; !ok || v > b {
				best[id], rows[id] = v, map[string]bool{}
			}
			if v == best[id] {
				rows[id][strings.Join(r, ",")] = true
			}
		}
	}
	out := map[int][]string{}
	for id, set := range rows {
		for r := range set {
			out[id] = append(out[id], r)
		}
		sort.Strings(out[id])
	}
	return out
}

// compareRows compares the rows of two file sets per table, as multisets
// or (distinct) as sets.
func compareRows(t *testing.T, what string, got, want []e2etest.File, distinct bool) {
	t.Helper()
	g, w := rowSet(got, distinct), rowSet(want, distinct)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s: %d, the no-failure run has %d; first differences: %v", what, len(g), len(w), firstDiff(g, w))
	}
}

func rowSet(files []e2etest.File, distinct bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		for _, r := range f.Rows {
			k := f.Table + ":" + strings.Join(r, ",")
			if distinct && seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func firstDiff(a, b []string) []string {
	inB := map[string]int{}
	for _, s := range b {
		inB[s]++
	}
	var out []string
	for _, s := range a {
		if inB[s] > 0 {
			inB[s]--
			continue
		}
		if out = append(out, "+"+s); len(out) > 3 {
			break
		}
	}
	for s, n := range inB {
		if n > 0 && len(out) < 8 {
			out = append(out, "-"+s)
		}
	}
	return out
}

// dropColumns drops the first n columns of every row.
func dropColumns(files []e2etest.File, n int) []e2etest.File {
	out := make([]e2etest.File, len(files))
	for i, f := range files {
		out[i] = f
		out[i].Rows = nil
		for _, r := range f.Rows {
			out[i].Rows = append(out[i].Rows, r[n:])
		}
	}
	return out
}

// filterFiles keeps files of a kind ("" any) and writer ("" any).
func filterFiles(files []e2etest.File, kind, writer string) []e2etest.File {
	var out []e2etest.File
	for _, f := range files {
		if (kind == "" || f.Kind == kind) && (writer == "" || strings.Contains(filepath.Base(f.Key), "."+writer+".")) {
			out = append(out, f)
		}
	}
	return out
}

// writerOf reads the writer id of a stopped daemon's data dir.
func writerOf(t *testing.T, cfg *conf.Config) string {
	t.Helper()
	db, err := state.OpenReadOnly(filepath.Join(cfg.Daemon.DataDir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.WriterID()
}

// runCLI runs a command in-process with stdin.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := dispatch(args, stdio{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

// checkpoint.interval takes checkpoints on its own; at start the newest
// local checkpoint is copied to a remote store that lacks it (here: the url
// was added to the config after it was taken).
func TestPeriodicCheckpointsAndRemoteSyncAtStart(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 2)
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote")
	_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL()})
	e, stop := ckptEngine(t, cfg)
	first := ckptTake(t, e)
	stop()
	if first.Upload != nil {
		t.Fatalf("uploaded without a url: %+v", first.Upload)
	}
	_, cfg = e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), CheckpointURL: "file://" + remote})
	cfg.Checkpoint.Interval = conf.Dur(200 * time.Millisecond)
	e, _ = ckptEngine(t, cfg)
	e2etest.WaitFor(t, 30*time.Second, "the local checkpoint copied and two periodic ones", func() bool {
		_, err := os.Stat(filepath.Join(remote, "manifests", first.ID+".json"))
		local, _ := checkpoint.ListLocal(filepath.Join(cfg.Daemon.DataDir, "checkpoints"))
		return err == nil && len(local) >= 3
	})
	list, err := e.Checkpoints(t.Context())
	if err != nil || len(list) < 4 || list[len(list)-1].ID != first.ID {
		t.Errorf("GET /v1/checkpoints: %+v %v", list, err)
	}
}
