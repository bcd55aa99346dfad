package blobstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
)

// BenchmarkPutVersity: upload throughput to versitygw on loopback, 64 MiB
// objects (multipart with the default 16 MiB parts, 4 in flight) and
// 8 MiB objects (one PutObject); versitygw serving a directory on disk,
// and on tmpfs (/dev/shm) to take its disk writes out of the figure.
func BenchmarkPutVersity(b *testing.B) {
	dirs := map[string]string{"disk": b.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "versity-bench-"); err == nil {
		b.Cleanup(func() { os.RemoveAll(shm) })
		dirs["tmpfs"] = shm
	}
	for _, where := range []string{"disk", "tmpfs"} {
		if dirs[where] != "" {
			b.Run(where, func(b *testing.B) { benchVersity(b, s3test.StartVersityIn(b, dirs[where])) })
		}
	}
}

func benchVersity(b *testing.B, v *s3test.Versity) {
	for _, size := range []int64{8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			idFile, secretFile := v.CredFiles(b)
			bs, err := blobstore.Open(context.Background(), v.URL("bench"), blobstore.Options{
				Endpoint: v.Endpoint, AccessKeyIDFile: idFile, SecretAccessKeyFile: secretFile})
			if err != nil {
				b.Fatal(err)
			}
			gwBefore := procCPU(v.PID())
			benchPut(b, bs, size)
			if gw := procCPU(v.PID()) - gwBefore; gw > 0 {
				b.ReportMetric(float64(size)*float64(b.N)/1e6/gw.Seconds(), "gw-MB/cpu-s")
			}
		})
	}
}

// BenchmarkPutFile: the file:// target (copy, fsync, link, fsync dir).
func BenchmarkPutFile(b *testing.B) {
	bs, err := blobstore.Open(context.Background(), "file://"+b.TempDir(), blobstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchPut(b, bs, 64<<20)
}

func benchPut(b *testing.B, bs blobstore.Store, size int64) {
	f, _ := writeFile(b, size, 1)
	b.SetBytes(size)
	b.ReportAllocs()
	cpuBefore := selfCPU()
	for b.Loop() {
		key := fmt.Sprintf("%s/%d.csv", b.Name(), benchSeq.Add(1))
		st, err := bs.Put(context.Background(), key, f, size, blobstore.PutMeta{})
		if err != nil || st.AlreadyExisted {
			b.Fatal(st, err)
		}
	}
	if cpu := selfCPU() - cpuBefore; cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time (0 if unknown).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// benchSeq keeps keys unique across runs (-count), so every Put uploads.
var benchSeq atomic.Int64
