#!/usr/bin/env bash
# Downloads the GraphiQL page's scripts (the versions pinned in src/graphql/http.rs) from
# the npm registry into a directory laid out like the CDN, for networks without internet:
#
#   scripts/fetch-graphiql-assets.sh ./graphiql-assets
#   MAILOPS_GRAPHIQL_ASSETS=./graphiql-assets mailops serve
set -euo pipefail
dest="${1:-./graphiql-assets}"
packages=(graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 graphql-ws@5.16.2)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
for package in "${packages[@]}"; do
  (cd "$work" && npm pack --silent "$package" >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  mkdir -p "$dest/$package"
  tar -xzf "$tarball" -C "$dest/$package" --strip-components=1
  rm "$tarball"
  echo "fetched $package"
done
echo "GraphiQL assets are in $dest; start mailops with MAILOPS_GRAPHIQL_ASSETS=$dest"
