#!/usr/bin/env bash
# Runs the test suite with the Windows build of Deno under Wine, so that the
# Windows code path (ffi/windows.ts: kernel32 through Deno.dlopen) runs on a
# Linux machine. See issue 6 for why each step is needed.
#
# Usage: tests/windows/run.sh [TEST_FILE_OR_DIR ...]
#   Without arguments it runs what `deno task test` runs (the paths in deno.json's
#   tasks.test: the whole suite). Tests that cannot apply on Windows skip
#   themselves. Exits with deno test's status (2 when the setup fails).
#
# Environment (all optional):
#   DENO_VERSION           Windows Deno version; default: that of the `deno` on PATH.
#   FASTENERS_WINE_CACHE   Cache for the patched deno.exe and the stand-in DLL;
#                          default ${XDG_CACHE_HOME:-$HOME/.cache}/fasteners-wine.
#   FASTENERS_WINE_TIMEOUT Seconds before the Wine run is killed; default 900.
#
# What it does:
#   1. apt-get installs wine64 and binutils-mingw-w64-x86-64 when missing (Debian).
#   2. Fetches deno.exe with `npm pack @deno/win32-x64@VERSION` (plain `npm install`
#      refuses a foreign OS) and caches a patched copy: the one ASCII string
#      "VirtualAlloc2" is renamed, so V8 does not use the MEM_RESERVE_PLACEHOLDER
#      API that Wine 8.0 lacks ("Fatal process out of memory:
#      SegmentedTable::InitializeTable") and takes its fallback path instead.
#   3. Builds, from tests/windows/bcryptprimitives.s, the stand-in for
#      bcryptprimitives.dll (missing in Wine 8.0; deno.exe imports ProcessPrng
#      from it) and puts it next to deno.exe.
#   4. Runs `deno.exe test` with the flags of `deno task test` (read from
#      deno.json), in a throwaway WINEPREFIX and DENO_DIR, deleted afterwards.
#      DENO_DIR matters: Deno under Wine leaves ~97 MB node.exe.tmp-* files in
#      it when a test spawns processes.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

say() { printf 'wine-tests: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 2
}

WINE64=/usr/lib/wine/wine64 # Debian's 64-bit loader; /usr/bin/wine wants wine32 too
WINESERVER=/usr/lib/wine/wineserver
MINGW=x86_64-w64-mingw32

# Folders to delete on exit, and the Wine prefix whose processes to end first.
scratch=()
prefix=""
cleanup() {
  if [[ -n $prefix && -d $prefix ]]; then
    # Ends only this prefix's wineserver and the Windows processes under it.
    "$WINESERVER" -k 2>/dev/null || true
    "$WINESERVER" -w 2>/dev/null || true
  fi
  ((${#scratch[@]} == 0)) || rm -rf "${scratch[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wall time of each phase, printed at the end.
SECONDS=0
timings=()
phase_start=0
phase_done() {
  timings+=("$1 $((SECONDS - phase_start))s")
  phase_start=$SECONDS
}

# --- 0. What to run -----------------------------------------------------------

# Arguments are relative to the caller's folder; shown relative to the repo
# where inside it. Without arguments: the whole tests/ folder.
targets=()
for arg in "$@"; do
  [[ -e $arg ]] || die "no such test file or folder: $arg"
  targets+=("$(realpath --relative-base="$repo" -- "$arg")")
done
cd "$repo"
[[ -f deno.json ]] || die "no deno.json in $repo"

# --- 1. System packages -------------------------------------------------------

missing=()
[[ -x $WINE64 ]] || missing+=(wine64)
command -v "$MINGW-as" >/dev/null || missing+=(binutils-mingw-w64-x86-64)
if ((${#missing[@]})); then
  say "installing ${missing[*]} with apt-get (wine64 is ~1 GB; this takes a while)"
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root or sudo to apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -x $WINE64 ]] || die "wine64 installed, but $WINE64 is missing"
fi
command -v npm >/dev/null || die "npm is needed to fetch the Windows build of Deno"
command -v perl >/dev/null || die "perl is needed to patch deno.exe"
phase_done "install"

# --- 2. The patched deno.exe ----------------------------------------------------

if [[ -z ${DENO_VERSION:-} ]]; then
  command -v deno >/dev/null || die "no deno on PATH: set DENO_VERSION (e.g. DENO_VERSION=2.9.6)"
  DENO_VERSION="$(deno --version | sed -n 's/^deno \([0-9][^ ]*\).*/\1/p')"
  [[ -n $DENO_VERSION ]] || die "cannot read the version from 'deno --version'"
fi
cache="${FASTENERS_WINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fasteners-wine}"
bin="$cache/deno-$DENO_VERSION"
deno_exe="$bin/deno.exe"
mkdir -p "$bin"

if [[ ! -f $deno_exe ]]; then
  say "fetching @deno/win32-x64@$DENO_VERSION from npm"
  dl="$(mktemp -d "$cache/.download.XXXXXX")"
  scratch+=("$dl")
  (cd "$dl" && npm pack --silent "@deno/win32-x64@$DENO_VERSION" >/dev/null)
  tar -xzf "$dl"/deno-win32-x64-*.tgz -C "$dl" package/deno.exe
  # Same length, so no offset in the PE file moves; a name kernelbase does not
  # export, so V8's GetProcAddress fails and it falls back to VirtualAlloc.
  count="$(perl -0777 -ne 'print scalar(() = /VirtualAlloc2/g)' "$dl/package/deno.exe")"
  [[ $count == 1 ]] || die "expected 1 'VirtualAlloc2' in deno.exe $DENO_VERSION, found $count"
  perl -0777 -pi -e 's/VirtualAlloc2/VirtualAllocX/' "$dl/package/deno.exe"
  mv "$dl/package/deno.exe" "$deno_exe.tmp.$$"
  mv -f "$deno_exe.tmp.$$" "$deno_exe" # atomic: a concurrent run sees the old file or the new
fi
phase_done "deno.exe"

# --- 3. The stand-in bcryptprimitives.dll ---------------------------------------

sources=("$here/bcryptprimitives.s" "$here/bcryptprimitives.def" "$here/advapi32.def")
stamp="$(cat "${sources[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f $bin/bcryptprimitives.dll || "$(cat "$bin/bcryptprimitives.stamp" 2>/dev/null)" != "$stamp" ]]; then
  say "building the stand-in bcryptprimitives.dll"
  obj="$(mktemp -d "$cache/.build.XXXXXX")"
  scratch+=("$obj")
  "$MINGW-as" -o "$obj/bcryptprimitives.o" "$here/bcryptprimitives.s"
  "$MINGW-dlltool" -d "$here/advapi32.def" -l "$obj/libadvapi32.a"
  "$MINGW-ld" -shared --subsystem windows -o "$obj/bcryptprimitives.dll" \
    "$here/bcryptprimitives.def" "$obj/bcryptprimitives.o" "$obj/libadvapi32.a"
  mv -f "$obj/bcryptprimitives.dll" "$bin/bcryptprimitives.dll"
  echo "$stamp" >"$bin/bcryptprimitives.stamp"
fi
phase_done "dll"

# --- 4. Run under Wine ----------------------------------------------------------

work="$(mktemp -d "${TMPDIR:-/tmp}/fasteners-wine.XXXXXX")"
scratch+=("$work")
prefix="$work/prefix"
export WINEPREFIX="$prefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko installers in the new prefix
export DENO_DIR="Z:${work//\//\\}\\deno"  # Wine maps Z: to /
export DENO_NO_UPDATE_CHECK=1
export NO_COLOR=1

wine() {
  timeout --kill-after=10 "${FASTENERS_WINE_TIMEOUT:-900}" "$WINE64" "$deno_exe" "$@"
}

say "creating a Wine prefix and checking deno.exe"
os="$(wine eval --quiet 'console.log(Deno.build.os)' 2>"$work/wine.err" | tr -d '\r')" || {
  cat "$work/wine.err" >&2
  die "deno.exe does not run under Wine"
}
[[ $os == windows ]] || die "deno.exe under Wine reports Deno.build.os = '$os'"
phase_done "prefix"

# The permissions of `deno task test:processes` (the part of `deno task test`
# that grants them), so both runs grant the same; by default every file in tests/
# but the etcd tests.
task_js='const t = JSON.parse(Deno.readTextFileSync("deno.json")).tasks?.["test:processes"] ?? "";
console.log(t.trim().split(/\s+/).filter((w) => w.startsWith("--allow-")).join(" "));'
read -r -a flags <<<"$(wine eval --quiet "$task_js" | tr -d '\r')" ||
  die "cannot read deno.json's tasks"
((${#flags[@]})) || die "no --allow-* flags found in deno.json's tasks.test:processes"
if ((${#targets[@]} == 0)); then
  targets=(tests/)
  # The etcd tests need --allow-net and the host's Linux etcd: `deno task test:etcd` runs them.
  flags+=("--ignore=tests/etcd_*")
fi

say "deno.exe $DENO_VERSION test ${flags[*]} ${targets[*]}"
# In the background, so that an INT or TERM to this script is handled at once
# (bash defers traps until a foreground command ends) and the cleanup ends
# the Windows processes.
{
  status=0
  wine test "${flags[@]}" "${targets[@]}" || status=$?
  echo "$status" >"$work/status"
} 2>&1 | tr -d '\r' | tee "$work/test.log" &
wait $! || true
status="$(cat "$work/status" 2>/dev/null || echo 1)"
phase_done "tests"

summary="$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$work/test.log" | tail -n 1 || true)"
say "phases: ${timings[*]}; total ${SECONDS}s"
if [[ -n $summary ]]; then
  say "windows (wine): $summary"
else
  say "windows (wine): no test summary (deno.exe exit status $status)"
  ((status != 0)) || status=1
fi
exit "$status"
