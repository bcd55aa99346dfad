package checkpoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/compact"
	"materializer/pipeline/files"
	"materializer/state"
)

// soakEnv reads an int knob of the soak test from the environment.
func soakEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestSoakCheckpoint10MKeys measures checkpoints of a large state under a
// steady write load: the pause (time inside the writer's quiesce), the
// longest wait a step saw, the local checkpoint time, the bytes hashed, and
// the bytes the incremental remote copy sends per checkpoint.
//
//	MATERIALIZER_SOAK=1 go test -run TestSoakCheckpoint10MKeys -v -timeout 60m ./checkpoint/
//
// Knobs: SOAK_KEYS (10000000), SOAK_RATE key updates/s (20000),
// SOAK_INTERVAL seconds between checkpoints (30), SOAK_CHECKPOINTS (6).
// Keys are ~24 bytes, key states ~30 bytes, each key has a retention
// timer; 5% have an open session with a 500-byte best event; eight open
// staging files grow by 8 KiB per step (gzip members in production).
func TestSoakCheckpoint10MKeys(t *testing.T) {
	if os.Getenv("MATERIALIZER_SOAK") != "1" {
		t.Skip("set MATERIALIZER_SOAK=1")
	}
	keys := soakEnv("SOAK_KEYS", 10_000_000)
	rate := soakEnv("SOAK_RATE", 20_000)
	interval := time.Duration(soakEnv("SOAK_INTERVAL", 30)) * time.Second
	rounds := soakEnv("SOAK_CHECKPOINTS", 6)
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "data", "state"), state.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := newSoakWriter(t, db, filepath.Join(dir, "data", "staging"), keys)
	start := time.Now()
	w.fill()
	t.Logf("filled %d keys in %v", keys, time.Since(start).Round(time.Second))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx, rate) })
	tk := NewTaker(Options{Dir: filepath.Join(dir, "data", "checkpoints"), StagingDir: w.staging, DB: db,
		EventTypes: testEventTypes(), Keep: 2, Logger: zerolog.Nop()})
	remote := fileRemote(t, filepath.Join(dir, "remote"), RemoteOptions{Grace: time.Nanosecond})
	t.Logf("%-3s %9s %9s %10s %10s %11s %12s %14s %8s", "#", "pause", "max-wait", "local", "hashed", "size", "upload", "upload-bytes", "objects")
	for i := 0; i < rounds; i++ {
		time.Sleep(interval) // the interval between checkpoints, not an assertion
		w.resetMaxWait()
		res, err := tk.Take(ctx, w.quiesce)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := readManifest(res.Location)
		ustart := time.Now()
		st, err := remote.Upload(ctx, res.Location, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Prune(ctx, 2); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-3d %9v %9v %10v %10s %11s %12v %14s %4d/%-4d", i, res.Pause.Round(10*time.Microsecond), w.maxWait().Round(10*time.Microsecond),
			res.Took.Round(time.Millisecond), mib(res.Hashed), mib(res.Size), time.Since(ustart).Round(time.Millisecond), mib(st.Bytes), st.Uploaded, st.Files)
	}
	cancel()
	wg.Wait()
	for _, src := range []struct {
		name string
		src  Source
	}{{"remote", Source{LocalDir: filepath.Join(dir, "none"), Remote: remote}}, {"local", Source{LocalDir: filepath.Join(dir, "data", "checkpoints")}}} {
		rstart := time.Now()
		st, err := src.src.Stage(context.Background(), "latest", filepath.Join(dir, "restored-"+src.name), time.Now(), accept, noSkip(t))
		if err != nil {
			t.Fatal(err)
		}
		staged := time.Since(rstart)
		if _, err := st.Prepare(state.NewWriterID()); err != nil {
			t.Fatal(err)
		}
		t.Logf("restore from %s: copied and verified %s in %v, prepared (new writer id, renames) in %v",
			src.name, mib(st.Manifest.Size()), staged.Round(time.Millisecond), (time.Since(rstart) - staged).Round(time.Millisecond))
		st.Discard()
	}
	steps := w.stepTimes()
	t.Logf("steps: %d of %d key updates each; step time p50 %v p99 %v max %v (sync commit incl.)", len(steps), soakStep,
		steps[len(steps)/2].Round(10*time.Microsecond), steps[len(steps)*99/100].Round(10*time.Microsecond), steps[len(steps)-1].Round(10*time.Microsecond))
	t.Logf("pebble:\n%s", db.Metrics().String())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

const soakStep = 4096

// soakWriter plays the engine: steps of key updates under a mutex (the
// quiesce is taking it between steps, as Engine.Do runs between steps).
type soakWriter struct {
	t       *testing.T
	db      *state.DB
	staging string
	keys    int
	files   []state.File
	rng     *rand.Rand

	mu      sync.Mutex // held by a step; quiesce takes it
	statsMu sync.Mutex
	wait    time.Duration
	steps   []time.Duration
}

func newSoakWriter(t *testing.T, db *state.DB, staging string, keys int) *soakWriter {
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	w := &soakWriter{t: t, db: db, staging: staging, keys: keys, rng: rand.New(rand.NewPCG(1, 2))}
	for p := 0; p < 8; p++ {
		id := state.FileID{EventType: testET, Table: "article", Kind: "main", Partition: strconv.Itoa(p)}
		f := state.File{ID: id, Seq: 1, Name: files.Name(id, db.WriterID(), 1, "gzip"), Writer: db.WriterID(), Compression: "gzip"}
		if err := os.WriteFile(filepath.Join(staging, f.Name), nil, 0o640); err != nil {
			t.Fatal(err)
		}
		w.files = append(w.files, f)
	}
	return w
}

func soakKey(i int) []byte { return compact.AppendKeyPart(nil, fmt.Appendf(nil, "article-%012d", i)) }

// fill writes every key once: its state and retention timer; 5% also an
// open session's record with its best event.
func (w *soakWriter) fill() {
	best := make([]byte, 500)
	for i := range best {
		best[i] = 'a' + byte(i%26)
	}
	for lo := 0; lo < w.keys; lo += 100_000 {
		b := w.db.NewBatch()
		for i := lo; i < min(lo+100_000, w.keys); i++ {
			k := soakKey(i)
			st := compact.KeyState{HasHi: true, Hi: []byte{1, byte(i), byte(i >> 8)}, HiEID: []byte("00000000-0000-4000-8000-000000000001"), ClosedAt: 1}
			if i%20 == 0 {
				st.Open, st.OpenedAt, st.LastAt, st.Filed = true, 1, 1, 1
				b.PutSession(1, st.Filed, k, st.AppendEncoded(nil), best)
			}
			b.PutKeyState(1, k, st.AppendEncoded(nil))
			b.PutTimer(state.ExpiryTimer, 1, int64(1_000_000+i), k)
		}
		if err := b.Commit(false); err != nil {
			w.t.Fatal(err)
		}
		b.Close()
	}
	if err := w.db.Flush(); err != nil {
		w.t.Fatal(err)
	}
}

// run steps at rate key updates per second until ctx ends.
func (w *soakWriter) run(ctx context.Context, rate int) {
	every := time.Duration(float64(time.Second) * soakStep / float64(rate))
	tick := time.NewTicker(every)
	defer tick.Stop()
	chunk := make([]byte, 8<<10)
	var offset int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		asked := time.Now()
		w.mu.Lock()
		got := time.Now()
		offset++
		w.step(chunk, offset)
		w.mu.Unlock()
		w.statsMu.Lock()
		w.wait = max(w.wait, got.Sub(asked))
		w.steps = append(w.steps, time.Since(asked))
		w.statsMu.Unlock()
	}
}

// step updates soakStep random keys, appends to the staging files and
// commits it all with the cursor, synced: what the engine's step writes.
func (w *soakWriter) step(chunk []byte, offset int64) {
	b := w.db.NewBatch()
	defer b.Close()
	for range soakStep {
		i := w.rng.IntN(w.keys)
		st := compact.KeyState{HasHi: true, Hi: []byte{2, byte(offset), byte(i)}, HiEID: []byte("00000000-0000-4000-8000-000000000002"), ClosedAt: offset}
		b.PutKeyState(1, soakKey(i), st.AppendEncoded(nil))
	}
	for i := range w.files {
		f := &w.files[i]
		fh, err := os.OpenFile(filepath.Join(w.staging, f.Name), os.O_WRONLY, 0)
		if err != nil {
			w.t.Error(err)
			return
		}
		_, err = fh.WriteAt(chunk, f.Length)
		if err == nil {
			err = fh.Sync()
		}
		fh.Close()
		if err != nil {
			w.t.Error(err)
			return
		}
		f.Length += int64(len(chunk))
		b.PutFile(f)
	}
	b.PutCursor(1, state.Cursor{Offset: fmt.Sprintf("001-0001-%018d", offset)})
	if err := b.Commit(true); err != nil {
		w.t.Error(err)
	}
}

func (w *soakWriter) quiesce(_ context.Context, fn func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fn()
}

func (w *soakWriter) resetMaxWait() {
	w.statsMu.Lock()
	w.wait = 0
	w.statsMu.Unlock()
}

func (w *soakWriter) maxWait() time.Duration {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.wait
}

func (w *soakWriter) stepTimes() []time.Duration {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	out := append([]time.Duration(nil), w.steps...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
