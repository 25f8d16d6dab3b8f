#!/usr/bin/env bash
# Fails when regenerating bookrec/v1 or clients/web/src/gen from proto/ would change the
# committed files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$root/scripts/gen_proto.sh" "$tmp"
if ! diff -r -u "$root/bookrec/v1" "$tmp/bookrec/v1" --exclude=__pycache__; then
  echo "bookrec/v1 is stale: run scripts/gen_proto.sh and commit the result." >&2
  exit 1
fi
if ! diff -r -u "$root/clients/web/src/gen" "$tmp/clients/web/src/gen"; then
  echo "clients/web/src/gen is stale: run scripts/gen_proto.sh and commit the result." >&2
  exit 1
fi
echo "generated code is up to date"
