package blobstore_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
)

const memChildEnv = "DELIVER_MEMTEST_CHILD"

// memResult is what the child reports.
type memResult struct {
	BaselineRSS int64   // VmRSS before Put, bytes
	PeakRSS     int64   // VmHWM after Put, bytes
	PeakHeap    uint64  // highest sampled HeapInuse, bytes
	Seconds     float64 // Put duration
	SHA256      string
}

// TestPutLargeFileFlatMemory uploads a large file to versitygw (multipart,
// default part size and concurrency) in a child process and checks that
// the child's peak RSS and heap grow far less than the file size: the file
// streams from disk. 256 MiB by default, 1 GiB with MATERIALIZER_SOAK=1.
func TestPutLargeFileFlatMemory(t *testing.T) {
	if os.Getenv(memChildEnv) != "" {
		runMemChild(t)
		return
	}
	size := int64(256 << 20)
	if os.Getenv("MATERIALIZER_SOAK") == "1" {
		size = 1 << 30
	}
	const limit = 64 << 20 // growth allowed, whatever the file size
	v := s3test.StartVersity(t)
	f, want := writeFile(t, size, 9)
	idFile, secretFile := v.CredFiles(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPutLargeFileFlatMemory$", "-test.v")
	cmd.Env = append(os.Environ(), memChildEnv+"=1", "MEM_URL="+v.URL("mem"), "MEM_ENDPOINT="+v.Endpoint,
		"MEM_ID_FILE="+idFile, "MEM_SECRET_FILE="+secretFile, "MEM_SRC="+f.Name(), "MEM_SIZE="+strconv.FormatInt(size, 10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	res := parseMemResult(t, out)
	t.Logf("%d MiB in %.1fs (%.0f MB/s): RSS %d → peak %d MiB (+%d MiB), heap peak %d MiB",
		size>>20, res.Seconds, float64(size)/1e6/res.Seconds, res.BaselineRSS>>20, res.PeakRSS>>20,
		(res.PeakRSS-res.BaselineRSS)>>20, res.PeakHeap>>20)
	if res.SHA256 != want {
		t.Fatalf("Put sha256 %s, want %s", res.SHA256, want)
	}
	if growth := res.PeakRSS - res.BaselineRSS; growth > limit || res.PeakHeap > limit {
		t.Fatalf("memory grew with the file: RSS +%d MiB, heap peak %d MiB (limit %d MiB, file %d MiB)",
			growth>>20, res.PeakHeap>>20, limit>>20, size>>20)
	}
	if got := hashPath(t, filepath.Join(v.Dir, v.Bucket, "mem", "big.csv")); got != want {
		t.Fatalf("versitygw holds sha256 %s, want %s", got, want)
	}
}

func runMemChild(t *testing.T) {
	size, _ := strconv.ParseInt(os.Getenv("MEM_SIZE"), 10, 64)
	src, err := os.Open(os.Getenv("MEM_SRC"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bs := mustOpen(t, os.Getenv("MEM_URL"), blobstore.Options{Endpoint: os.Getenv("MEM_ENDPOINT"),
		AccessKeyIDFile: os.Getenv("MEM_ID_FILE"), SecretAccessKeyFile: os.Getenv("MEM_SECRET_FILE")})
	runtime.GC()
	res := memResult{BaselineRSS: procStatus(t, "VmRSS")}
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go sampleHeap(&peakHeap, stop, sampled)
	start := time.Now()
	st, err := bs.Put(ctxT(t), "big.csv", src, size, blobstore.PutMeta{ContentType: "text/csv"})
	res.Seconds = time.Since(start).Seconds()
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	res.PeakRSS, res.PeakHeap, res.SHA256 = procStatus(t, "VmHWM"), peakHeap.Load(), st.SHA256
	b, _ := json.Marshal(res)
	os.Stdout.Write(append([]byte("MEMRESULT "), append(b, '\n')...))
}

func sampleHeap(peak *atomic.Uint64, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var ms runtime.MemStats
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status: ", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("%s not in /proc/self/status", field)
	return 0
}

func parseMemResult(t *testing.T, out []byte) memResult {
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "MEMRESULT "); ok {
			var res memResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatal(err)
			}
			return res
		}
	}
	t.Fatalf("child printed no result:\n%s", out)
	return memResult{}
}

func hashPath(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
