package deliver_test

import (
	"context"
	"fmt"
	"testing"

	"materializer/pipeline/deliver"
	"materializer/pipeline/deliver/s3test"
)

// BenchmarkPutVersity: upload throughput to versitygw on loopback, 64 MiB
// objects (multipart with the default 16 MiB parts, 4 in flight) and
// 8 MiB objects (one PutObject).
func BenchmarkPutVersity(b *testing.B) {
	v := s3test.StartVersity(b)
	for _, size := range []int64{8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			idFile, secretFile := v.CredFiles(b)
			bs, err := deliver.Open(context.Background(), v.URL("bench"), deliver.Options{
				Endpoint: v.Endpoint, AccessKeyIDFile: idFile, SecretAccessKeyFile: secretFile})
			if err != nil {
				b.Fatal(err)
			}
			benchPut(b, bs, size)
		})
	}
}

// BenchmarkPutFile: the file:// target (copy, fsync, link, fsync dir).
func BenchmarkPutFile(b *testing.B) {
	bs, err := deliver.Open(context.Background(), "file://"+b.TempDir(), deliver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchPut(b, bs, 64<<20)
}

func benchPut(b *testing.B, bs deliver.Blobstore, size int64) {
	f, _ := writeFile(b, size, 1)
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := bs.Put(context.Background(), fmt.Sprintf("%s/%d.csv", b.Name(), i), f, size, deliver.PutMeta{}); err != nil {
			b.Fatal(err)
		}
	}
}
