#!/usr/bin/env bash
# Puts the Pulumi engine this project runs with on PATH: the `pulumi` CLI, the Python language host
# (with its pulumi-language-python-exec) and the pulumi-command provider.
#   eval "$(tools/pulumi-engine.sh)"
# A `pulumi` already on PATH is used as it is (installed the usual way, it acquires its plugins
# itself). Otherwise the three are built from their published Go modules into a versioned cache
# outside the clone; a warm run only checks the stamped versions. Prints the `export PATH=...` line.
set -euo pipefail

# Exact versions. The language host and the command provider have no tags of their own for their
# module paths: they are required by the pseudo-version of their release tag's commit
# (pkg/v3.259.0 = a05d88f24d05, pulumi-command v1.2.1 = 7f3eb6f3b77c).
PULUMI_VERSION=3.259.0
LANGUAGE_PYTHON_VERSION=v3.0.0-20260820084410-a05d88f24d05
COMMAND_PROVIDER_VERSION=1.2.1
COMMAND_PROVIDER_PSEUDO=v0.0.0-20260303235922-7f3eb6f3b77c
CLIPBOARD_FORK=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e

if command -v pulumi >/dev/null 2>&1; then
  echo "# using $(command -v pulumi) ($(pulumi version))" >&2
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "pulumi-engine: neither pulumi nor go is on PATH; install one of them" >&2; exit 3; }

cache="${QWEN_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen-serving/engine}/pulumi-$PULUMI_VERSION-command-$COMMAND_PROVIDER_VERSION"
bin="$cache/bin"
if [ -x "$bin/pulumi" ] && [ "$("$bin/pulumi" version 2>/dev/null)" = "v$PULUMI_VERSION" ] &&
  [ -x "$bin/pulumi-language-python" ] && [ -x "$bin/pulumi-language-python-exec" ] &&
  [ -x "$bin/pulumi-resource-command" ]; then
  echo "export PATH=\"$bin:\$PATH\""
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
work="$cache/module"
mkdir -p "$work" "$bin"
cat >"$work/go.mod" <<MOD
module qwen-serving/engine

go 1.26

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 $LANGUAGE_PYTHON_VERSION
	github.com/pulumi/pulumi-command/provider $COMMAND_PROVIDER_PSEUDO
)

replace github.com/atotto/clipboard => ${CLIPBOARD_FORK%@*} ${CLIPBOARD_FORK#*@}
MOD
printf 'package engine\n' >"$work/engine.go"
cd "$work"
echo "pulumi-engine: building the engine into $bin (cold: tens of minutes on 2 cores)" >&2
timeout 3600 go mod download >&2
flags=(-trimpath -tags 'osusergo,grpcnotrace')
timeout 3600 go build "${flags[@]}" -o "$bin/pulumi" \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
timeout 3600 go build "${flags[@]}" -o "$bin/pulumi-language-python" \
  github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 >&2
timeout 3600 go build "${flags[@]}" -o "$bin/pulumi-resource-command" \
  -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$COMMAND_PROVIDER_VERSION" \
  github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command >&2
# The language host needs its executor beside it; it ships in the sdk/v3 module, not in the wheel.
sdk_dir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
echo "export PATH=\"$bin:\$PATH\""
