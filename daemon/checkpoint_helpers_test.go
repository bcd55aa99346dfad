package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"io"
	"testing"
	"time"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/internal/e2etest"
	"materializer/pipeline"
)

// ckptEngine runs the pipeline in-process until stop (or the test's end).
func ckptEngine(t *testing.T, cfg *conf.Config) (*pipeline.Pipeline, func()) {
	t.Helper()
	return e2etest.StartPipeline(t, cfg, nil)
}

// ckptTake takes a checkpoint through the pipeline (as POST /v1/checkpoints).
func ckptTake(t *testing.T, e *pipeline.Pipeline) *checkpoint.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := e.TakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.RemoteError != "" {
		t.Fatalf("remote copy: %s", res.RemoteError)
	}
	return res
}

// csvRecords decodes a staging or delivered file (gzip members, CSV).
func csvRecords(t *testing.T, path string, raw []byte) [][]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: not a complete gzip stream: %v", path, err)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: not valid CSV: %v", path, err)
	}
	return recs
}
