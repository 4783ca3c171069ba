// Command gosdkclient is a minimal AWS SDK for Go v2 program for keyferry's
// end-to-end tests: it loads credentials with config.LoadDefaultConfig, the
// default chain every Go tool (Terraform included) uses, then optionally
// calls sts:GetCallerIdentity and s3:PutObject.
//
//	gosdkclient [-endpoint URL] [-identity] [-bucket B -key K -body TEXT]
//
// It prints one JSON object on stdout (never the secret key or session
// token) and each failed step on stderr as "STEP: api error CODE: MESSAGE".
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
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	os.Exit(run(ctx, *endpoint, *identity, *bucket, *key, *body))
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
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
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
		out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			fail("get-caller-identity", err)
		} else {
			rep.CallerIdentity = &identityReport{Account: aws.ToString(out.Account), Arn: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}
		}
	}
	if bucket != "" {
		client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)})
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
