package peers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// clientConfig is an aws.Config for a peer's endpoint signing with creds,
// with a retryer that does not retry, so that errors reach the test at
// once.
func clientConfig(region, endpoint string, creds aws.CredentialsProvider) aws.Config {
	return aws.Config{
		Region:           region,
		Credentials:      creds,
		BaseEndpoint:     aws.String(endpoint),
		HTTPClient:       &http.Client{Timeout: 30 * time.Second},
		RetryMaxAttempts: 1,
	}
}

// pathStyleS3 is a path-style S3 client from cfg.
func pathStyleS3(cfg aws.Config, opts ...func(*s3.Options)) *s3.Client {
	opts = append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = true }}, opts...)
	return s3.NewFromConfig(cfg, opts...)
}

// createBuckets creates buckets with client; errors name the peer.
func createBuckets(client *s3.Client, peer string, buckets []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range buckets {
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("peers: %s: create bucket %q: %w", peer, b, err)
		}
	}
	return nil
}
