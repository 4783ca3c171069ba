#!/usr/bin/env bash
# peers.sh — build or install the real third-party peers and clients that
# keyferry's end-to-end tests drive (go test -tags e2e ./test/e2e/).
#
#   scripts/peers.sh seaweedfs   build SeaweedFS 4.53 into the peer cache (once per machine);
#                                the last line on stdout is the binary's path
#   scripts/peers.sh versitygw   build versitygw 1.8.0 into the peer cache (once per machine);
#                                the last line on stdout is the binary's path
#   scripts/peers.sh clients     install aws-cli v2 (/usr/bin/aws) and check python3 + botocore/boto3
#   scripts/peers.sh all         all of the above
#
# The cache is ${KEYFERRY_PEERS_CACHE:-$HOME/.cache/keyferry/peers}, outside the checkout, keyed by
# version. Nothing third-party is ever written into the repository. Progress goes to stderr so that
# stdout stays machine-readable.
set -euo pipefail

CACHE="${KEYFERRY_PEERS_CACHE:-$HOME/.cache/keyferry/peers}"

SEAWEED_MODULE=github.com/seaweedfs/seaweedfs
SEAWEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6 # reports "4.53"
SEAWEED_NAME=4.53

VERSITY_PACKAGE=github.com/versity/versitygw/cmd/versitygw
VERSITY_VERSION=1.8.0

log() { printf 'peers.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

# already_built NAME OUT: when OUT is built, say so and print its path;
# otherwise fail, having checked that go is on PATH and made the cache.
already_built() {
	if [ -x "$2" ]; then
		log "$1 already built"
		printf '%s\n' "$2"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go is not on PATH"
	mkdir -p "$CACHE"
	return 1
}

# move_built NAME BIN OUT SCRATCH START: move the built BIN to OUT (through a
# temporary name, so an interrupted build never leaves a half-written
# binary), remove SCRATCH and print OUT's path.
move_built() {
	mv "$2" "$3.tmp.$$"
	mv "$3.tmp.$$" "$3"
	rm -rf "$4"
	trap - EXIT
	log "built $1 in $((SECONDS - $5)) s"
	printf '%s\n' "$3"
}

build_seaweedfs() {
	local out="$CACHE/weed-$SEAWEED_NAME"
	already_built "SeaweedFS $SEAWEED_NAME" "$out" && return

	log "building SeaweedFS $SEAWEED_NAME (first time only, ~4-6 min)…"
	local scratch dir
	scratch="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand now: scratch is local
	trap "rm -rf '$scratch'" EXIT
	# Download from outside any module so nothing touches keyferry's go.mod/go.sum.
	log "downloading $SEAWEED_MODULE@$SEAWEED_VERSION"
	dir="$(cd "$scratch" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$SEAWEED_MODULE@$SEAWEED_VERSION" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); print(d["Dir"]) if not e else sys.exit("go mod download: "+e)')"
	[ -d "$dir/weed" ] || die "module source not found at $dir"

	# `go install module@version` is refused (the module has replace directives):
	# build inside the module directory, into a temporary name, then move it in place
	# so an interrupted build never leaves a half-written binary in the cache.
	log "compiling $dir/weed"
	local start=$SECONDS
	(
		cd "$dir"
		GOWORK=off GOFLAGS=-mod=mod go build -o "$scratch/weed" ./weed
	) >&2 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 15
		if kill -0 "$pid" 2>/dev/null; then
			log "… still compiling ($((SECONDS - start)) s)"
		fi
	done
	wait "$pid" || die "go build failed"

	"$scratch/weed" version >&2 || die "the built binary does not run"
	move_built "SeaweedFS $SEAWEED_NAME" "$scratch/weed" "$out" "$scratch" "$start"
}

build_versitygw() {
	local out="$CACHE/versitygw-$VERSITY_VERSION"
	already_built "versitygw $VERSITY_VERSION" "$out" && return
	log "building versitygw $VERSITY_VERSION (first time only, ~1-3 min)…"
	local scratch start=$SECONDS
	scratch="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand now: scratch is local
	trap "rm -rf '$scratch'" EXIT
	# From outside any module, so nothing touches keyferry's go.mod/go.sum.
	(cd "$scratch" && GOWORK=off GOFLAGS=-mod=mod GOBIN="$scratch/bin" go install "$VERSITY_PACKAGE@v$VERSITY_VERSION") >&2 ||
		die "go install failed"
	move_built "versitygw $VERSITY_VERSION" "$scratch/bin/versitygw" "$out" "$scratch" "$start"
}

install_clients() {
	if [ -x /usr/bin/aws ]; then
		log "aws-cli v2: $(/usr/bin/aws --version 2>&1)"
	else
		log "installing aws-cli v2 (Debian package awscli)…"
		as_root apt-get install -y awscli >&2 ||
			{ as_root apt-get update >&2 && as_root apt-get install -y awscli >&2; }
		[ -x /usr/bin/aws ] || die "apt-get install awscli did not provide /usr/bin/aws"
		log "aws-cli v2: $(/usr/bin/aws --version 2>&1)"
	fi

	command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH"
	if python3 -c 'import boto3, botocore' 2>/dev/null; then
		log "boto3/botocore: $(python3 -c 'import boto3,botocore; print(boto3.__version__, botocore.__version__)')"
	elif /usr/bin/python3 -c 'import botocore' 2>/dev/null; then
		log "botocore (Debian): $(/usr/bin/python3 -c 'import botocore; print(botocore.__version__)')"
	else
		log "installing python3-botocore and python3-boto3 (Debian)…"
		as_root apt-get install -y python3-botocore python3-boto3 >&2 ||
			{ as_root apt-get update >&2 && as_root apt-get install -y python3-botocore python3-boto3 >&2; }
		/usr/bin/python3 -c 'import boto3, botocore' || die "botocore/boto3 still not importable"
	fi

	# aws-cli v1 (pip) is optional: the e2e tests run it when present.
	if python3 -c 'import awscli' 2>/dev/null; then
		log "aws-cli v1: $(python3 -m awscli --version 2>&1)"
	else
		log "aws-cli v1 (pip awscli) not found: the e2e tests that drive it will fail; install it with: python3 -m pip install awscli"
	fi
}

[ $# -eq 1 ] || usage
case "$1" in
seaweedfs) build_seaweedfs ;;
clients) install_clients ;;
versitygw) build_versitygw ;;
all)
	install_clients
	build_versitygw
	build_seaweedfs # last: its path is the last line on stdout
	;;
-h | --help | help) usage ;;
*) usage ;;
esac
