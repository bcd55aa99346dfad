// Package s3test starts S3-compatible servers for tests over real HTTP:
// gofakes3 in process (fast, with fault injection: 503 SlowDown, 500,
// dropped connections) and versitygw, a real S3 gateway run as a child
// process (install it with `make tools`).
package s3test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Creds are static S3 credentials.
type Creds struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Server describes a running S3-compatible server with one bucket.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	Creds    Creds
}

// URL is the storage URL s3://bucket[/prefix].
func (s Server) URL(prefix string) string {
	if prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + prefix
}

// CredFiles writes the credentials into two files (as a deployment would
// hand them over) and returns their names.
func (s Server) CredFiles(t testing.TB) (idFile, secretFile string) {
	t.Helper()
	dir := t.TempDir()
	idFile, secretFile = filepath.Join(dir, "access-key-id"), filepath.Join(dir, "secret-access-key")
	if err := os.WriteFile(idFile, []byte(s.Creds.AccessKeyID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(s.Creds.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return idFile, secretFile
}

// Client is a plain SDK client for checking what the server holds,
// independent of the code under test.
func (s Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.Creds.AccessKeyID, s.Creds.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s Server) createBucket(ctx context.Context) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	return err
}
