#!/usr/bin/env bash
# Renders a realistic digest's HTML part in headless Chromium and saves the
# picture as docs/digest.png (referenced by the README).
#
#   bash scripts/screenshot-digest.sh
#
# Builds and runs `cargo run --example render_html`, which composes the digest
# through the crate's real code and writes its HTML part to target/digest.html.
# Installs Debian's `chromium` package (apt-get, as root) only if no chromium is
# found, and a Japanese font (fonts-ipafont-gothic, 3.5 MB) only if fontconfig
# has none: the digest shows a feed called ポッドキャスト, which would otherwise
# come out as empty boxes. Not run by CI (.ci/run): a documented script, run by
# hand after changing the HTML.
set -euo pipefail
cd "$(dirname "$0")/.."

html="$PWD/target/digest.html"
png="$PWD/docs/digest.png"

chromium_bin="$(command -v chromium || command -v chromium-browser || true)"
packages=()
[[ -n "$chromium_bin" ]] || packages+=(chromium)
if ! command -v fc-list >/dev/null || [[ -z "$(fc-list :lang=ja)" ]]; then
  packages+=(fonts-ipafont-gothic)
fi
if ((${#packages[@]})); then
  echo "== installing ${packages[*]} with apt-get"
  apt-get update
  apt-get install -y "${packages[@]}"
  chromium_bin="$(command -v chromium)"
fi

echo "== cargo run --example render_html"
cargo run --quiet --example render_html -- "$html"

echo "== $chromium_bin --headless --screenshot"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$png")"
"$chromium_bin" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size=1000,860 \
  --screenshot="$png" "file://$html"

echo "wrote $png ($(wc -c <"$png") bytes)"
