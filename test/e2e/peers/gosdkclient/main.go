// Command gosdkclient is a minimal AWS SDK for Go v2 program for keyferry's
// end-to-end tests: it loads credentials with config.LoadDefaultConfig, the
// default chain every Go tool (Terraform included) uses, then optionally
// calls sts:GetCallerIdentity and s3:PutObject.
//
//	gosdkclient [-endpoint URL] [-identity] [-bucket B -key K -body TEXT]
//	gosdkclient [-endpoint URL] -bucket B -key K -repeat N -interval D
//
// -endpoint is set on the STS and S3 clients themselves, so it wins over
// AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_S3, which still steer the
// credential providers (e.g. web identity through an STS-compatible
// endpoint) while the calls the program makes go to -endpoint.
//
// It prints one JSON object on stdout (never the secret key or session
// token) and each failed step on stderr as "STEP: api error CODE: MESSAGE".
// With -repeat N (N > 1) it is a long-running job instead: N puts of K-0 …
// K-(N-1), -interval apart, each on one stdout line {"i","time",
// "accessKeyId","putObject"|"error"} naming the credentials it signed
// with, so that a test can watch them being refreshed.
// Exit status: 0 all steps succeeded, 1 a step failed, 2 bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

type report struct {
	Credentials    *credsReport    `json:"credentials,omitempty"`
	CallerIdentity *identityReport `json:"callerIdentity,omitempty"`
	PutObject      string          `json:"putObject,omitempty"`
	Errors         []stepError     `json:"errors,omitempty"`
}

type credsReport struct {
	Source      string     `json:"source"`
	AccessKeyID string     `json:"accessKeyId"`
	HasToken    bool       `json:"hasSessionToken"`
	CanExpire   bool       `json:"canExpire"`
	Expires     *time.Time `json:"expires,omitempty"`
}

type identityReport struct {
	Account string `json:"account"`
	Arn     string `json:"arn"`
	UserID  string `json:"userId"`
}

type stepError struct {
	Step    string `json:"step"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

func main() {
	endpoint := flag.String("endpoint", "", "endpoint for STS and S3 (default: resolved from env and config files)")
	identity := flag.Bool("identity", false, "call sts:GetCallerIdentity")
	bucket := flag.String("bucket", "", "put an object into this bucket")
	key := flag.String("key", "gosdkclient.txt", "object key")
	body := flag.String("body", "hello from gosdkclient", "object body")
	timeout := flag.Duration("timeout", time.Minute, "overall timeout")
	repeat := flag.Int("repeat", 1, "put this many objects, -interval apart (needs -bucket)")
	interval := flag.Duration("interval", 10*time.Second, "time between the puts of -repeat")
	flag.Parse()
	if flag.NArg() != 0 || *repeat < 1 || (*repeat > 1 && (*bucket == "" || *identity)) {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *repeat > 1 {
		os.Exit(loop(ctx, *endpoint, *bucket, *key, *body, *repeat, *interval))
	}
	os.Exit(run(ctx, *endpoint, *identity, *bucket, *key, *body))
}

// withEndpoint returns the client options that send calls to endpoint.
// cfg.BaseEndpoint alone is not enough: AWS_ENDPOINT_URL_<SERVICE> beats
// it, and option functions run after that lookup.
func withEndpoint[O any](endpoint string, set func(o *O, ep *string)) []func(*O) {
	if endpoint == "" {
		return nil
	}
	return []func(*O){func(o *O) { set(o, aws.String(endpoint)) }}
}

func s3Client(cfg aws.Config, endpoint string) *s3.Client {
	opts := append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = true }},
		withEndpoint(endpoint, func(o *s3.Options, ep *string) { o.BaseEndpoint = ep })...)
	return s3.NewFromConfig(cfg, opts...)
}

// loopLine is one put of a -repeat run.
type loopLine struct {
	I           int       `json:"i"`
	Time        time.Time `json:"time"`
	AccessKeyID string    `json:"accessKeyId,omitempty"`
	PutObject   string    `json:"putObject,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// loop is a long job: one S3 client, one credential chain for the whole
// run, as a real tool has; the SDK refreshes the credentials by itself.
func loop(ctx context.Context, endpoint, bucket, key, body string, n int, interval time.Duration) int {
	enc := json.NewEncoder(os.Stdout)
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load-config: %v\n", err)
		return 1
	}
	client := s3Client(cfg, endpoint)
	code := 0
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintf(os.Stderr, "put %d: %v\n", i, ctx.Err())
				return 1
			case <-time.After(interval):
			}
		}
		line := loopLine{I: i, Time: time.Now().UTC()}
		// The key the signer is about to use: the same cached provider.
		creds, err := cfg.Credentials.Retrieve(ctx)
		if err == nil {
			line.AccessKeyID = creds.AccessKeyID
			k := fmt.Sprintf("%s-%d", key, i)
			_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &k, Body: strings.NewReader(body)})
		}
		if err != nil {
			line.Error = err.Error()
			fmt.Fprintf(os.Stderr, "put %d: %v\n", i, err)
			code = 1
		} else {
			line.PutObject = "ok"
		}
		enc.Encode(line)
	}
	return code
}

func run(ctx context.Context, endpoint string, identity bool, bucket, key, body string) int {
	var rep report
	fail := func(step string, err error) {
		e := stepError{Step: step, Message: err.Error()}
		var api smithy.APIError
		if errors.As(err, &api) {
			e.Code = api.ErrorCode()
		}
		rep.Errors = append(rep.Errors, e)
		fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	}
	defer func() {
		json.NewEncoder(os.Stdout).Encode(rep)
	}()

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fail("load-config", err)
		return 1
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fail("credentials", err)
		return 1
	}
	cr := &credsReport{Source: creds.Source, AccessKeyID: creds.AccessKeyID, HasToken: creds.SessionToken != "", CanExpire: creds.CanExpire}
	if creds.CanExpire {
		cr.Expires = &creds.Expires
	}
	rep.Credentials = cr

	if identity {
		client := sts.NewFromConfig(cfg, withEndpoint(endpoint, func(o *sts.Options, ep *string) { o.BaseEndpoint = ep })...)
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			fail("get-caller-identity", err)
		} else {
			rep.CallerIdentity = &identityReport{Account: aws.ToString(out.Account), Arn: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}
		}
	}
	if bucket != "" {
		_, err := s3Client(cfg, endpoint).PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)})
		if err != nil {
			fail("put-object", err)
		} else {
			rep.PutObject = "ok"
		}
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
