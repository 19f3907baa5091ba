# Sourced by the benchmarks that measure against an older commit: that
# commit's tree, built like WARRANT_BUILD (same buildtype and sanitizers,
# no test suites), in $baseline_work, a temporary directory the caller
# removes.
#   baseline_extract REF      the tree in $baseline_work/src
#   baseline_build TARGET...  configures $baseline_work/build, builds TARGETs
baseline_extract() {
  local root
  root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
  baseline_work=$(mktemp -d)
  mkdir "$baseline_work/src"
  git -C "$root" archive "$1" | tar -x -C "$baseline_work/src"
  ln -s "$root/../shared" "$baseline_work/shared" 2>/dev/null || true
}

baseline_option() {
  meson introspect --buildoptions "${WARRANT_BUILD:?}" |
    python3 -c "import json, sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name'] == '$1'))"
}

baseline_build() {
  meson setup "$baseline_work/build" "$baseline_work/src" --buildtype="$(baseline_option buildtype)" \
    -Db_sanitize="$(baseline_option b_sanitize)" -Dtests=false >/dev/null
  ninja -C "$baseline_work/build" "$@" >/dev/null
}
