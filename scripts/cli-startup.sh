#!/usr/bin/env bash
# The tracing-email command's start-up time on a state file of 10 000
# pending records: `status` and `show --json > /dev/null`, release build,
# the median of 20 runs each (hyperfine-free: bash's own clock).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tracing-email-cli --locked --quiet
bin=target/release/tracing-email
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
state="$dir/state.json"
# 10 000 warnings as a program leaves them: a message, two fields, a run.
{
  printf '{"version":1,"pending":['
  for i in $(seq 1 10000); do
    [ "$i" -gt 1 ] && printf ','
    printf '{"time":"2026-11-21T10:%02d:%02dZ","level":"WARN","target":"poca::feed","message":"fetch of feed %d failed: timeout","fields":{"feed":"Radio Café %d","attempt":3},"module_path":"poca::feed","file":"src/feed.rs","line":42,"run":%d}' \
      $((i / 60 % 60)) $((i % 60)) "$i" $((i % 50)) $((i / 100 + 1))
  done
  printf ']}'
} > "$state"
"$bin" status --state-file "$state" --threshold 20000:warn > /dev/null
median() {
  local times=()
  for _ in $(seq 1 20); do
    local start end
    start=$(date +%s%N)
    "$@" > /dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 100000 )))  # tenths of a millisecond
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 10p | awk '{ printf "%.1f ms", $1 / 10 }'
}
echo "state file: $(du -h "$state" | cut -f1), 10000 records"
echo "status:               $(median "$bin" status --state-file "$state" --threshold 20000:warn)"
echo "show --json:          $(median "$bin" show --json --state-file "$state")"
echo "show:                 $(median "$bin" show --state-file "$state")"
