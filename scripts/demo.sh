#!/usr/bin/env bash
# make demo: the whole pipeline on one machine, with real parts.
#
#   GitLab-shaped job token (keyferry's dev issuer)
#     → keyferry broker (dev mode: bolt store + audit log in a temp dir)
#     → STS AssumeRole on SeaweedFS (an AWS-compatible S3/IAM/STS server)
#     → `aws s3 cp` (aws-cli v2) with the issued credentials
#
# It builds SeaweedFS the first time (cached in ~/.cache/keyferry/peers) and
# cleans up every process and file on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KF=$ROOT/bin/keyferry

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
run() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }

[ -x "$KF" ] || { echo "bin/keyferry missing: run make demo (it builds first)" >&2; exit 1; }

bold "1/8 getting the peers (SeaweedFS, aws-cli v2)"
./scripts/peers.sh clients >/dev/null
WEED=$(./scripts/peers.sh seaweedfs | tail -n 1)
AWS=/usr/bin/aws
say "SeaweedFS: $WEED"
say "aws-cli:   $($AWS --version 2>&1)"

WORK=$(mktemp -d -t keyferry-demo-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
	# SeaweedFS leaves unix sockets in /tmp named after its ports.
	for port in "${P[@]:-}"; do rm -f /tmp/seaweedfs-*-"$port".sock 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Free loopback ports for SeaweedFS (it opens many) and keyferry.
read -r -a P <<<"$(python3 - <<'PY'
import socket
socks=[]
for _ in range(11):
    s=socket.socket(); s.bind(("127.0.0.1",0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
S3=${P[0]}; KFPORT=${P[10]}

bold "2/8 starting SeaweedFS on 127.0.0.1:$S3 (S3 + IAM + STS)"
ADMIN_AK=demoadmin$RANDOM
ADMIN_SK=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
SIGNING=$(head -c 32 /dev/urandom | base64)
mkdir -p "$WORK/weed"
cat >"$WORK/iam.json" <<JSON
{
  "identities": [{"name": "admin", "credentials": [{"accessKey": "$ADMIN_AK", "secretKey": "$ADMIN_SK"}],
                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}],
  "sts": {"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "seaweedfs-sts", "signingKey": "$SIGNING"},
  "policy": {"defaultEffect": "Deny", "storeType": "memory"},
  "policies": [{"name": "PutDemoBucket", "document": {"Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::demo-artifacts/*"]}]}}],
  "roles": [{"roleName": "ci-deploy", "roleArn": "arn:aws:iam::000000000000:role/ci-deploy", "attachedPolicies": ["PutDemoBucket"],
      "trustPolicy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["sts:AssumeRole"]}]}}]
}
JSON
(cd "$WORK/weed" && TMPDIR=$WORK/weed exec "$WEED" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
	-master.port=${P[1]} -master.port.grpc=${P[2]} -volume.port=${P[3]} -volume.port.grpc=${P[4]} \
	-filer.port=${P[5]} -filer.port.grpc=${P[6]} -s3.port=$S3 -s3.port.grpc=${P[7]} \
	-admin.port=${P[8]} -admin.port.grpc=${P[9]} -admin.port.legacy=0 -s3.port.iceberg=0 -s3.port.lance=0 \
	-webdav=false -admin.ui=false -master.telemetry=false \
	-s3.config="$WORK/iam.json" -s3.iam.config="$WORK/iam.json" -s3.iam.readOnly=false) >"$WORK/weed.log" 2>&1 &
PIDS+=($!); disown
admin_aws() { env -i PATH="$PATH" HOME="$WORK" AWS_ACCESS_KEY_ID=$ADMIN_AK AWS_SECRET_ACCESS_KEY=$ADMIN_SK \
	AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true "$AWS" --endpoint-url "http://127.0.0.1:$S3" "$@"; }
for i in $(seq 1 120); do
	admin_aws s3 ls >/dev/null 2>&1 && break
	[ "$i" = 120 ] && { echo "SeaweedFS did not start; log:" >&2; tail -20 "$WORK/weed.log" >&2; exit 1; }
	sleep 0.5
done
admin_aws s3 mb s3://demo-artifacts >/dev/null
admin_aws s3 mb s3://other-team >/dev/null
say "buckets: demo-artifacts (the role may write here), other-team (it may not)"

bold "3/8 starting keyferry server --dev on 127.0.0.1:$KFPORT"
TOKEN=kfa_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
# The broker's own AWS credentials (SDK default chain: here, the environment).
env AWS_ACCESS_KEY_ID=$ADMIN_AK AWS_SECRET_ACCESS_KEY=$ADMIN_SK AWS_EC2_METADATA_DISABLED=true \
	"$KF" server --dev --listen 127.0.0.1:$KFPORT --dev-admin-token "$TOKEN" \
	--aws-sts-endpoint "http://127.0.0.1:$S3" --storage "bolt://$WORK/keyferry.db" --audit-path "$WORK/audit.log" \
	--log-format text >"$WORK/keyferry.out" 2>"$WORK/keyferry.log" &
PIDS+=($!); disown
export KEYFERRY_ADDR=http://127.0.0.1:$KFPORT KEYFERRY_TOKEN=$TOKEN
for i in $(seq 1 100); do
	curl -fsS "$KEYFERRY_ADDR/readyz" >/dev/null 2>&1 && break
	[ "$i" = 100 ] && { cat "$WORK/keyferry.log" >&2; exit 1; }
	sleep 0.1
done
say "ready; the dev issuer is \"dev\" (GitLab-shaped tokens), audience $KEYFERRY_ADDR"

bold "4/8 declaring a role: project group/app on a protected ref may upload to demo-artifacts"
cat >"$WORK/roles.yaml" <<'YAML'
roles:
  - name: upload-artifacts
    issuer: dev
    match:
      project_path: group/app
      ref_protected: "true"
    condition: 'claims.pipeline_source != "merge_request_event"'
    aws:
      type: assume_role
      role_arn: arn:aws:iam::000000000000:role/ci-deploy
      session_name: "gl-{project_path}-{job_id}"
      session_policy:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: s3:PutObject
            Resource: arn:aws:s3:::demo-artifacts/*
      tags: { project: "{project_path}", pipeline: "{pipeline_id}" }
      ttl: 1h
YAML
run "$KF" apply -f "$WORK/roles.yaml"

bold "5/8 a CI job of group/app: token → keyferry creds → aws s3 cp"
JOB_TOKEN=$("$KF" dev token --project group/app --ref main --job-id 1001 --pipeline-id 501)
say "job token: ${JOB_TOKEN:0:24}… (GitLab id_token shape, RS256)"
echo "hello from job 1001" >"$WORK/artifact.txt"
(
	export KEYFERRY_ID_TOKEN=$JOB_TOKEN
	printf '\033[36m$ eval "$(keyferry creds --role upload-artifacts --format env)"\033[0m\n'
	eval "$("$KF" creds --role upload-artifacts --format env)"
	say "got AccessKeyId $AWS_ACCESS_KEY_ID, expires $AWS_CREDENTIAL_EXPIRATION"
	unset KEYFERRY_TOKEN
	run "$AWS" --endpoint-url "http://127.0.0.1:$S3" s3 cp --no-progress "$WORK/artifact.txt" s3://demo-artifacts/job-1001.txt
	printf '\033[36m$ aws s3 cp artifact.txt s3://other-team/x.txt   # outside the role: must fail\033[0m\n'
	if "$AWS" --endpoint-url "http://127.0.0.1:$S3" s3 cp --no-progress "$WORK/artifact.txt" s3://other-team/x.txt 2>"$WORK/denied.txt"; then
		echo "unexpected: the upload to other-team succeeded" >&2; exit 1
	fi
	say "refused as expected: $(grep -o 'AccessDenied[^.]*' "$WORK/denied.txt" | head -1)"
)
admin_aws s3 ls s3://demo-artifacts/ | sed 's/^/   stored: /'

bold "6/8 the lease and its audit record"
run "$KF" lease list --project group/app
say "audit log ($WORK/audit.log), the issue event:"
grep '"type":"issue"' "$WORK/audit.log" | tail -1 | python3 -m json.tool | sed 's/^/   /'

bold "7/8 a job of another project asks for the same role"
EVIL=$("$KF" dev token --project evil/app --ref main)
printf '\033[36m$ KEYFERRY_ID_TOKEN=<evil/app token> keyferry creds --role upload-artifacts\033[0m\n'
if KEYFERRY_ID_TOKEN=$EVIL "$KF" creds --role upload-artifacts >/dev/null 2>"$WORK/deny.txt"; then
	echo "unexpected: evil/app got credentials" >&2; exit 1
fi
sed 's/^/   /' "$WORK/deny.txt"
say "its audit record:"
grep '"type":"deny"' "$WORK/audit.log" | tail -1 | python3 -m json.tool | sed 's/^/   /'

bold "8/8 the audit chain verifies"
run "$KF" audit verify "$WORK/audit.log"

printf '\n\033[1mDemo complete.\033[0m Everything it started is being stopped and removed.\n'
