#!/usr/bin/env bash
# Builds tools/chart-render into .tmp/bin/chart-render from Debian's Go packages, offline:
# golang-go, golang-github-masterminds-sprig-dev (sprig v3 under the unversioned import path)
# and golang-k8s-sigs-yaml-dev, found in GOPATH mode in Debian's gocode folder.
# `.ci/run` installs the packages; rebuilds only when a source is newer than the binary.
set -euo pipefail
cd "$(dirname "$0")"
out=../../.tmp/bin/chart-render
if [ -x "$out" ] && [ -z "$(find . -name '*.go' -newer "$out")" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
# GOCACHE inside .tmp: CI runs as root in a folder where HOME may not be writable.
GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH=/usr/share/gocode \
  GOCACHE="$(cd ../.. && pwd)/.tmp/go-cache" go build -o "$out" .
