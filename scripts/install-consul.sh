#!/usr/bin/env bash
# Print the path of a usable `consul` binary on the LAST line of stdout,
# building one from the Go module proxy if needed. Progress goes to stderr.
#
# Order:
#   1. $CONSUL_BIN, if set and executable;
#   2. `consul` on PATH;
#   3. the cached build ${XDG_CACHE_HOME:-$HOME/.cache}/skein/consul-<version>;
#   4. otherwise (unless --no-build is given: then exit 1) build it with
#      `go build` from scripts/consul-build (go.mod and
#      go.sum pin Consul and every dependency), into a temp file that is then
#      renamed into place, so a half-written binary is never visible.
#
# A first build downloads ~300 modules and compiles for several minutes; later
# runs only print the cached path. See scripts/consul-build/README.md.
set -euo pipefail

# Everything runs inside main, which bash has parsed in full before it starts,
# so editing or checking out this file during a long build is harmless.
log() { printf 'install-consul: %s\n' "$*" >&2; }

main() {
  if [[ -n "${CONSUL_BIN:-}" && -x "${CONSUL_BIN}" && ! -d "${CONSUL_BIN}" ]]; then
    printf '%s\n' "$CONSUL_BIN"
    return 0
  fi
  if [[ -n "${CONSUL_BIN:-}" ]]; then
    log "CONSUL_BIN=$CONSUL_BIN is not an executable file; ignoring it"
  fi
  if on_path="$(command -v consul 2>/dev/null)" && [[ -n "$on_path" && -x "$on_path" ]]; then
    printf '%s\n' "$on_path"
    return 0
  fi

  script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  mod_dir="$script_dir/consul-build"
  if [[ ! -f "$mod_dir/go.mod" ]]; then
    log "missing $mod_dir/go.mod"
    return 1
  fi

  # The Consul version is whatever scripts/consul-build/go.mod pins.
  module_version="$(sed -nE 's#^(require)?[[:space:]]*github\.com/hashicorp/consul[[:space:]]+(v[^[:space:]]+).*#\2#p' "$mod_dir/go.mod" | head -n 1)"
  if [[ -z "$module_version" ]]; then
    log "could not find the github.com/hashicorp/consul version in $mod_dir/go.mod"
    return 1
  fi
  version="${module_version#v}"

  cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/skein"
  target="$cache_dir/consul-$version"
  if [[ -x "$target" ]]; then
    printf '%s\n' "$target"
    return 0
  fi

  if [[ "${1:-}" == "--no-build" ]]; then
    log "no consul binary (CONSUL_BIN, PATH, $target) and --no-build: not building one"
    return 1
  fi

  if ! command -v go >/dev/null 2>&1; then
    log "no consul binary found and Go is not installed; install Go (tested with go1.26) or set CONSUL_BIN"
    return 1
  fi

  mkdir -p "$cache_dir"

  # Serialise concurrent first runs (e.g. parallel test workers) so the build
  # happens once; the others wait and then find the cached binary.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_dir/.consul-$version.lock"
    if ! flock -n 9; then
      log "another build of consul $version is running; waiting for it"
      flock 9
    fi
    if [[ -x "$target" ]]; then
      printf '%s\n' "$target"
      return 0
    fi
  fi

  tmp="$(mktemp "$cache_dir/.consul-$version.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT

  # Commit and date of the release tag (from the module proxy's .info for the
  # version); only used for `consul version` output.
  git_commit=""
  build_date="1970-01-01T00:00:01Z"
  case "$module_version" in
    v1.16.3)
      git_commit="1123b47f"
      build_date="2023-10-31T14:28:19Z"
      ;;
  esac

  log "building consul $version from the Go module proxy into $target"
  log "(first build: downloads ~300 modules and compiles for several minutes)"
  start=$SECONDS
  # -mod=readonly: go.sum is the record of every module hash; nothing is added to
  # it, so the checksum database is never needed. GOTOOLCHAIN=local: use the Go
  # that is installed, never download another toolchain.
  (
    cd "$mod_dir"
    GOTOOLCHAIN=local GOFLAGS="-mod=readonly" CGO_ENABLED="${CGO_ENABLED:-0}" \
      go build -trimpath \
        -ldflags "-s -w -X github.com/hashicorp/consul/version.GitCommit=$git_commit -X github.com/hashicorp/consul/version.BuildDate=$build_date" \
        -o "$tmp" github.com/hashicorp/consul
  ) >&2
  chmod 0755 "$tmp"
  "$tmp" version >&2
  mv -f "$tmp" "$target"
  trap - EXIT
  log "built consul $version in $((SECONDS - start))s"
  printf '%s\n' "$target"
}

main "$@"
exit $?
