#!/usr/bin/env bash
# Model-checks the Atomics protocols of Lock and ReaderWriterLock with SPIN.
#   bash spin/check.sh            every property of spin/lock.pml and spin/rwlock.pml
#   bash spin/check.sh --mutants  each seeded bug must be caught (exit 1 if one survives;
#                                 a mutant's runs stop at the first that catches it)
# One line per run: model, configuration, property, states stored, errors.
# Exit status non-zero on any error, assertion violation, invalid end state,
# acceptance cycle or incomplete search. Build outputs go to a temporary folder.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v spin >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq spin >/dev/null || { echo "spin: cannot install" >&2; exit 1; }
fi
command -v gcc >/dev/null || { echo "gcc is missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MEM=${SPIN_MEMLIM:-512} # MB per pan run (every run needs < 200 MB with -DCOLLAPSE)

# run <model> <"-D... config"> <safety|liveness> [mutant] -> prints one line; returns 0 when clean
run() {
  local model=$1 cfg=$2 prop=$3 mut=${4:-} dir out states errors cflags panflags
  dir=$(mktemp -d "$work/run.XXXX")
  cp "$here/$model.pml" "$dir/"
  # shellcheck disable=SC2086
  (cd "$dir" && spin $cfg ${mut:+-D$mut} -a "$model.pml" >spin.out 2>&1) || {
    cat "$dir/spin.out"; echo "FAIL $model $cfg $prop: spin -a failed"; return 1; }
  if [ "$prop" = safety ]; then
    cflags="-DSAFETY -DNOCLAIM -DCOLLAPSE"; panflags="-m300000"
  else
    cflags="-DNFAIR=3 -DCOLLAPSE"; panflags="-a -f -m300000 -N no_lost_wakeup"
  fi
  # shellcheck disable=SC2086
  (cd "$dir" && gcc -O2 -w $cflags -DMEMLIM=$MEM -o pan pan.c) || { echo "FAIL $model: gcc"; return 1; }
  # shellcheck disable=SC2086
  out=$(cd "$dir" && ./pan $panflags 2>&1)
  states=$(grep -oE '^ *[0-9.e+]+ states, stored' <<<"$out" | awk '{print $1}')
  errors=$(grep -oE 'errors: [0-9]+' <<<"$out" | awk '{print $2}')
  local what
  what=$(grep -m1 -E '^pan:1:|pan: reached|Search not completed' <<<"$out" | sed 's/^ *//')
  printf '%-7s %-26s %-9s states %-12s errors %s%s\n' "$model" "$cfg" "$prop" "${states:-?}" \
    "${errors:-?}" "${what:+  ($what)}"
  [ "${errors:-1}" = 0 ] && ! grep -q -E 'Search not completed|pan: reached' <<<"$out"
}

# Configurations: small enough for CI, large enough to reach every branch.
LOCK_CFGS=("-DNP=3 -DROUNDS=1 -DSHARED=1" "-DNP=2 -DROUNDS=3 -DSHARED=0" "-DNP=3 -DROUNDS=1 -DSHARED=0")
RW_CFGS=("-DNW=2 -DNR=1 -DSHAREW=1" "-DNW=1 -DNR=2 -DMAXR=1 -DSHARER=1" "-DNW=1 -DNR=1 -DROUNDS=2"
  "-DNW=2 -DNR=0" "-DNW=3 -DNR=0 -DSHAREW=1")
SEM_CFGS=("-DCFG=1" "-DCFG=2" "-DCFG=3") # Semaphore: see spin/semaphore.pml's header

# Mapping check: every "<file> ... L<n>: Atomics.<op>" comment in a model must name
# an Atomics operation that is on line n of that file, so the models cannot
# silently drift from the code when lines move.
mapping() {
  local model=$1 default=$2 bad=0 n=0 line file ln op src
  while IFS= read -r line; do
    file=$(grep -oE '_raw_lock\.ts|_raw_rwlock\.ts|_wait\.ts' <<<"$line" | head -n1)
    file=${file:-$default}
    op=$(grep -oE 'L[0-9]+( / L[0-9]+)?: Atomics\.[a-zA-Z]+' <<<"$line" | head -n1)
    [ -n "$op" ] || continue
    for ln in $(grep -oE 'L[0-9]+' <<<"$op"); do
      n=$((n + 1))
      src=$(sed -n "${ln#L}p" "$here/../locks/thread/$file")
      grep -qF "${op##*: }" <<<"$src" || {
        bad=$((bad + 1)); echo "  $model.pml names ${op##*: } at $file $ln, which has: ${src## }"; }
    done
  done < <(grep -E 'L[0-9]+( / L[0-9]+)?: Atomics\.' "$here/$model.pml")
  printf '%-7s %-26s %-9s %d references, %d stale\n' "$model" "code line map" mapping "$n" "$bad"
  [ $bad = 0 ]
}

start=$SECONDS
failed=0
total=0
if [ "${1:-}" = --mutants ]; then
  survived=0
  for mut in MUT_NOTIFY_ONE MUT_LOAD_FIRST MUT_UNCOUNTED_WATCH MUT_WOKEN_EAGER MUT_TAKE_NO_LOOK \
    MUT_HANDOFF_NO_LOOK; do
    caught=0
    for cfg in "${LOCK_CFGS[@]}"; do
      for prop in safety liveness; do
        printf '%-22s ' "$mut"; run lock "$cfg" $prop $mut || caught=1
        [ $caught = 1 ] && break
      done
      [ $caught = 1 ] && break
    done
    if [ $caught = 1 ]; then echo "  -> $mut caught"
    else echo "  -> $mut SURVIVED"; survived=$((survived + 1)); fi
  done
  for mut in MUT_READ_IGNORES_QUEUE MUT_NO_WSEQ_BUMP MUT_CANCEL_NO_WAKE MUT_HANDOFF_ANY_HEAD \
    MUT_NO_END_WATCH MUT_BIAS_NO_RECHECK MUT_NO_SLOT_WAKE MUT_QUEUE_KEEPS_BIAS; do
    caught=0
    for cfg in "${RW_CFGS[@]}"; do
      for prop in safety liveness; do
        printf '%-22s ' "$mut"; run rwlock "$cfg" $prop $mut || caught=1
        [ $caught = 1 ] && break
      done
      [ $caught = 1 ] && break
    done
    [ $caught = 1 ] && echo "  -> $mut caught" || { echo "  -> $mut SURVIVED"; survived=$((survived + 1)); }
  done
  # --- Semaphore (spin/semaphore.pml) ---
  for mut in MUT_SEM_LOAD_FIRST MUT_SEM_COUNT_LATE MUT_SEM_NO_BUMP MUT_SEM_TAKE_SPLIT; do
    caught=0
    for cfg in "${SEM_CFGS[@]}"; do
      for prop in safety liveness; do
        # Caught only by a counterexample (errors >= 1), never by a model that fails to build.
        out=$(run semaphore "$cfg" $prop $mut)
        printf '%-22s %s\n' "$mut" "$out"
        grep -qE 'errors [1-9]' <<<"$out" && caught=1
      done
    done
    [ $caught = 1 ] && echo "  -> $mut caught" || { echo "  -> $mut SURVIVED"; survived=$((survived + 1)); }
  done
  # --- end Semaphore ---
  echo "mutants: $survived survived, $((SECONDS - start)) s"
  [ $survived = 0 ]
  exit
fi

total=$((total + 2))
mapping lock _raw_lock.ts || failed=$((failed + 1))
mapping rwlock _raw_rwlock.ts || failed=$((failed + 1))
for cfg in "${LOCK_CFGS[@]}"; do
  for prop in safety liveness; do
    total=$((total + 1)); run lock "$cfg" $prop || failed=$((failed + 1))
  done
done
for cfg in "${RW_CFGS[@]}"; do
  for prop in safety liveness; do
    total=$((total + 1)); run rwlock "$cfg" $prop || failed=$((failed + 1))
  done
done
# --- Semaphore (spin/semaphore.pml) ---
total=$((total + 1))
mapping semaphore _raw_semaphore.ts || failed=$((failed + 1))
for cfg in "${SEM_CFGS[@]}"; do
  for prop in safety liveness; do
    total=$((total + 1)); run semaphore "$cfg" $prop || failed=$((failed + 1))
  done
done
# --- end Semaphore ---
echo "spin: $((total - failed))/$total runs clean, $failed failed, $((SECONDS - start)) s" \
  "(safety = mutual exclusion, writer preference, FIFO, counters at rest, no deadlock;" \
  "liveness = no lost wake-up under weak fairness)"
[ $failed = 0 ]
