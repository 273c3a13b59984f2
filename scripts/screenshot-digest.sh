#!/usr/bin/env bash
# Renders a realistic digest's HTML part in headless Chromium and saves the
# pictures the README and the digest guide page name: docs/digest-800.png and docs/digest-320.png
# (light), docs/digest-800-dark.png and docs/digest-320-dark.png (the
# reader's system in dark mode: the email is a light card that stays light).
#
#   bash scripts/screenshot-digest.sh
#
# Builds and runs `cargo run --example render_html`, which composes the emails
# of six hourly runs of a podcast client through the crate's real code and
# writes their HTML parts to target/digest.html and target/resolved.html.
# Headless Chromium's windows are at least 500 px wide, so the 320 px pictures
# show the email in a 320 px frame, as a phone would. Installs Debian's
# `chromium` package (apt-get, as root) only if no chromium is found, and a
# Japanese font (fonts-ipafont-gothic, 3.5 MB) only if fontconfig has none:
# the digest shows a feed called ポッドキャスト, which would otherwise come
# out as empty boxes. Not run by CI (.ci/run): a documented script, run by
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
cargo run --quiet --example render_html -- "$PWD/target"
html="$PWD/target/digest.html"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# A frame of the email's width, for the narrow pictures.
frame="$profile/frame-320.html"
printf '<!DOCTYPE html><html><body style="margin:0;background:#57606a">%s%s</body></html>\n' \
  '<iframe style="display:block;border:0;margin:0 auto;width:320px;height:1700px" ' \
  "src=\"file://$html\"></iframe>" >"$frame"

shot() { # OUT WIDTH HEIGHT SCHEME URL
  "$chromium_bin" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --allow-file-access-from-files --user-data-dir="$profile/user" \
    --blink-settings=preferredColorScheme="$4" --window-size="$2,$3" \
    --screenshot="$1" "$5" 2>/dev/null
  echo "wrote $1 ($(wc -c <"$1") bytes)"
}
mkdir -p docs
rm -f docs/digest.png
for scheme in light dark; do
  suffix=""; value=1
  [[ $scheme == dark ]] && suffix="-dark" && value=0
  echo "== $chromium_bin --headless --screenshot ($scheme)"
  shot "$PWD/docs/digest-800$suffix.png" 800 1180 "$value" "file://$html"
  shot "$PWD/docs/digest-320$suffix.png" 500 1700 "$value" "file://$frame"
done
