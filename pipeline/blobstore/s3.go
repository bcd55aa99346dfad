package blobstore

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"
)

// s3Store delivers into s3://bucket/prefix.
type s3Store struct {
	client  *s3.Client
	bucket  string
	prefix  string // "" or "dir/sub/" (with the trailing slash)
	opts    Options
	log     zerolog.Logger
	metrics *metrics
}

func openS3(ctx context.Context, u *url.URL, opts Options) (*s3Store, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("%w: %q: no bucket (s3://bucket/prefix)", ErrConfig, u.String())
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("%w: %q: prefix is not a clean path", ErrConfig, u.String())
		}
		prefix += "/"
	}
	s := &s3Store{
		bucket:  u.Host,
		prefix:  prefix,
		opts:    opts,
		log:     opts.Logger.With().Str("component", "blobstore").Str("target", "s3").Str("bucket", u.Host).Logger(),
		metrics: newMetrics(opts.Registerer),
	}
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = true
		}
	})
	return s, nil
}

// awsConfig loads the default chain (env, shared files, IMDS, …) and
// applies our region, endpoint quirks, credentials, HTTP and retry policy.
func (s *s3Store) awsConfig(ctx context.Context) (aws.Config, error) {
	o := s.opts
	region := o.Region
	if region == "" && o.Endpoint != "" {
		region = "us-east-1"
	}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = o.ResponseTimeout
			tr.MaxIdleConnsPerHost = 4 * o.PartConcurrency
		})),
		config.WithRetryer(func() aws.Retryer { return newRetryer(o, s.onRetry) }),
	}
	if region != "" {
		load = append(load, config.WithRegion(region))
	}
	if o.Endpoint != "" {
		load = append(load,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	if o.AccessKeyIDFile != "" {
		if _, err := readCredentialFiles(o.AccessKeyIDFile, o.SecretAccessKeyFile); err != nil {
			return aws.Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		load = append(load, config.WithCredentialsProvider(aws.NewCredentialsCache(fileCredentials{o.AccessKeyIDFile, o.SecretAccessKeyFile})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("%w: aws config: %w", ErrConfig, err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("%w: no region for s3://%s (set storage region)", ErrConfig, s.bucket)
	}
	return cfg, nil
}

func (s *s3Store) onRetry(attempt int, err error) {
	s.metrics.retries.WithLabelValues("s3").Inc()
	s.log.Debug().Int("attempt", attempt).Err(err).Msg("retrying s3 request")
}

func (s *s3Store) objectKey(key string) string { return s.prefix + key }

func (s *s3Store) URL(key string) string { return "s3://" + path.Join(s.bucket, s.prefix, key) }

// fileCredentials reads static credentials from two files on every
// Retrieve; the credentials cache above it re-reads them every 5 minutes,
// so rotated files are picked up without a restart.
type fileCredentials struct{ idFile, secretFile string }

func (f fileCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	c, err := readCredentialFiles(f.idFile, f.secretFile)
	if err != nil {
		return aws.Credentials{}, err
	}
	c.CanExpire = true
	c.Expires = time.Now().Add(5 * time.Minute)
	return c, nil
}

// readCredentialFiles never puts file contents into its errors.
func readCredentialFiles(idFile, secretFile string) (aws.Credentials, error) {
	id, err := os.ReadFile(idFile)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("access key id file: %w", err)
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("secret access key file: %w", err)
	}
	c := aws.Credentials{
		AccessKeyID:     strings.TrimSpace(string(id)),
		SecretAccessKey: strings.TrimSpace(string(secret)),
		Source:          "materializer credential files",
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("credential files %s, %s: empty", idFile, secretFile)
	}
	return c, nil
}
