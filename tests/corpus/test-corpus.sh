#!/bin/bash
# Real-image corpus: every image in ../shared/corpus/golden.tsv (made by
# Hyper-V, Virtual PC, Disk2VHD, qemu-img, FreeBSD mkimg, ...) must read
# back at the golden virtual size with the golden md5 of its raw content.
#
# Environment:
#   CORPUS_DIR       corpus folder (default: ../shared/corpus from the repo root)
#   CORPUS_FORMATS   formats to test, default "vhd vhdx"
#   CORPUS_ONLY      extended regex: only rows whose name matches
#   CORPUS_FULL_MD5  1: hash every image in full, however large (slow: a
#                    10 GiB disk takes ~20 s, a 127 GiB one minutes)
#
# How large disks are checked without hashing gigabytes of zeros:
#   - rows whose notes say "content all-zero" (127 GiB, nothing allocated):
#     `vhdtool map --json` must report no data extent over the whole size,
#     and `vhdtool convert IMG out.raw` must give a raw file of the golden
#     size whose only stored bytes (SEEK_DATA) are zeros;
#   - other disks above LARGE bytes: `vhdtool convert IMG out.raw`, then
#     `qemu-img compare` against qemu-img's own raw conversion, which is
#     sparse-aware and takes a second.  qemu-img (the same 7.2 release that
#     built golden.tsv) is one of the readers that produced each such row's
#     golden md5; without qemu-img they are hashed in full.
# Everything up to LARGE is hashed in full through `vhdtool convert IMG -`.

# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

CORPUS_DIR=${CORPUS_DIR:-$ROOT/../shared/corpus}
CORPUS_FORMATS=${CORPUS_FORMATS:-vhd vhdx}
CORPUS_ONLY=${CORPUS_ONLY:-}
CORPUS_FULL_MD5=${CORPUS_FULL_MD5:-0}
LARGE=$((2 * 1024 * 1024 * 1024))
VT_TIMEOUT=${VT_TIMEOUT:-180}   # seconds for one vhdtool run

golden=$CORPUS_DIR/golden.tsv
[ -d "$CORPUS_DIR" ] || skip "corpus folder $CORPUS_DIR absent (it lives in shared/, beside the repo)"
CORPUS_DIR=$(cd "$CORPUS_DIR" && pwd)
[ -r "$golden" ] || skip "corpus folder $CORPUS_DIR has no golden.tsv"
need_vhdtool
have_qemu=0
command -v qemu-img >/dev/null 2>&1 && have_qemu=1

# Images with a pending VHDX log: read-only opens must leave them untouched.
dirty_log_images=" iotest-dirtylog-10G-4M.vhdx discutils/vhdx-log-replay.vhdx "
# Differencing images whose parent is not in the corpus.
missing_parent_images=" dfvfs-fat-differential.vhd dissect-differencing.avhdx "

IMG=$T/images
mkdir -p "$IMG"

wanted_format () { # FORMAT_COLUMN ("VHD dynamic")
  local f=${1%% *}
  f=${f,,}
  case " $CORPUS_FORMATS " in *" $f "*) return 0 ;; esac
  return 1
}

wanted_row () { # NAME FORMAT_COLUMN
  wanted_format "$2" || return 1
  [ -z "$CORPUS_ONLY" ] || [[ $1 =~ $CORPUS_ONLY ]] || return 1
}

# golden.tsv with tabs turned into \037: read(1) collapses empty fields
# between whitespace separators like tabs.
golden_rows () {
  tr '\t' '\037' < "$golden"
}

# ----------------------------------------------------------------- unpack
# Unpack the images of the selected rows first, keeping the folders, so that
# a differencing child finds its parent beside it: with CORPUS_ONLY, every
# image in a sub-folder that holds a selected row comes along.  Two at a
# time (gzip is single-threaded; the whole corpus is ~2 GB unpacked).
note "unpacking images of formats: $CORPUS_FORMATS${CORPUS_ONLY:+, rows matching $CORPUS_ONLY}"
declare -A want_dir=()
while IFS=$'\037' read -r name format _; do
  [ "$name" = name ] || [ -z "$name" ] && continue
  wanted_row "$name" "$format" || continue
  case $name in */*) want_dir[${name%/*}]=1 ;; esac
done < <(golden_rows)
unpack=()
while IFS=$'\037' read -r name format vsize md5 _readers notes fmd5 fsize; do
  [ "$name" = name ] || [ -z "$name" ] && continue
  wanted_format "$format" || continue
  if ! wanted_row "$name" "$format"; then
    case $name in */*) [ -n "${want_dir[${name%/*}]:-}" ] || continue ;; *) continue ;; esac
  fi
  [ -r "$CORPUS_DIR/images/$name.gz" ] \
    || fail "$name: listed in golden.tsv but $CORPUS_DIR/images/$name.gz is missing"
  mkdir -p "$(dirname "$IMG/$name")"
  unpack+=("$name")
done < <(golden_rows)
[ ${#unpack[@]} -gt 0 ] || fail "no image of formats '$CORPUS_FORMATS'${CORPUS_ONLY:+ matching $CORPUS_ONLY} in $golden"
# dd conv=sparse keeps the mostly-empty images sparse on the host.
printf '%s\0' "${unpack[@]}" | xargs -0 -P 2 -I{} sh -c \
  'gzip -dc "$1/images/$2.gz" | dd of="$3/$2" bs=64K iflag=fullblock conv=sparse status=none' \
  _ "$CORPUS_DIR" {} "$IMG" || fail "unpacking the corpus failed"
while IFS=$'\037' read -r name format vsize md5 _readers notes fmd5 fsize; do
  [ -e "$IMG/$name" ] || continue
  got=$(file_size "$IMG/$name")
  [ "$got" = "$fsize" ] || fail "$name: unpacked to $got bytes, golden.tsv says $fsize"
  chmod a-w "$IMG/$name"   # readers need no write access (root ignores this: the md5 checks catch writes)
done < <(golden_rows)

# ----------------------------------------------------------------- checks
# Each check runs in a subshell; `bad MSG` ends the row with that reason.
REASON=$T/reason
bad () {
  echo "$*" > "$REASON"
  exit 1
}

# vt ARGS...: vhdtool with a time limit.
vt () {
  timeout -k 5 "$VT_TIMEOUT" "$VHDTOOL" "$@"
}

# sparse_all_zero FILE: the stored (SEEK_DATA) ranges of FILE are all zero.
sparse_all_zero () {
  "$PY" - "$1" <<'PYEOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
off = 0
while off < size:
    try:
        data = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    pos = data
    while pos < hole:
        n = min(hole - pos, 1 << 20)
        buf = os.pread(fd, n, pos)
        if buf.count(0) != len(buf):
            i = next(i for i, b in enumerate(buf) if b)
            sys.exit("non-zero byte at offset %d" % (pos + i))
        pos += n
    off = hole
PYEOF
}

check_info () { # NAME FILE FORMAT_COLUMN VSIZE
  local name=$1 f=$2 fmt=${3%% *} typ=${3#* } vsize=$4 j v
  j=$(vt info --json "$f" 2>"$T/err") \
    || bad "vhdtool info --json failed (exit $?): $(head -c 300 "$T/err")"
  printf '%s' "$j" | "$PY" -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null \
    || bad "vhdtool info --json: not valid JSON: $(head -c 300 <<<"$j")"
  v=$(json_get virtual_size <<<"$j") || bad "info --json: no virtual_size"
  [ "$v" = "$vsize" ] || bad "info --json: virtual_size $v, golden $vsize"
  v=$(json_get format <<<"$j") || bad "info --json: no format"
  [ "$v" = "${fmt,,}" ] || bad "info --json: format \"$v\", expected \"${fmt,,}\""
  v=$(json_get type <<<"$j") || bad "info --json: no type"
  [ "$v" = "$typ" ] || bad "info --json: type \"$v\", expected \"$typ\""
  if [ "$typ" = differencing ]; then
    v=$(json_get parent <<<"$j") || bad "info --json: no parent"
    [ "$v" != null ] || bad "info --json: differencing disk with parent null"
    v=$(json_get chain <<<"$j" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))') \
      || bad "info --json: no chain array"
    [ "$v" -ge 2 ] || bad "info --json: chain of $v file(s) for a differencing disk"
  fi
  INFO_JSON=$j
}

# Full md5 through standard output.
check_md5_stream () { # NAME FILE VSIZE MD5
  local out n m
  out=$(vt convert "$2" - 2>"$T/err" | md5_count) \
    || bad "vhdtool convert IMG - failed: $(head -c 300 "$T/err")"
  m=${out% *} n=${out#* }
  [ "$n" = "$3" ] || bad "convert IMG - wrote $n bytes, golden size $3"
  [ "$m" = "$4" ] || bad "raw md5 $m, golden $4"
  HOW="md5 of convert IMG -"
}

# Convert to a raw file (sparse) and check its size.
convert_to_file () { # FILE VSIZE OUT
  rm -f "$3"
  vt convert "$1" "$3" 2>"$T/err" \
    || bad "vhdtool convert IMG out.raw failed (exit $?): $(head -c 300 "$T/err")"
  local n
  n=$(file_size "$3")
  [ "$n" = "$2" ] || bad "convert IMG out.raw: $n bytes, golden size $2"
}

check_all_zero () { # NAME FILE VSIZE
  local ext end
  ext=$(map_extents "$2" 2>"$T/err") \
    || bad "vhdtool map --json failed: $(head -c 300 "$T/err")"
  # Extents must tile [0, size) and none may be data.
  end=$(awk -v size="$3" '
    BEGIN { pos = 0 }
    { if ($1 != pos) { print "gap or overlap at " pos " (extent starts at " $1 ")"; exit 1 }
      if ($3 == "data") { print "data extent at " $1 " length " $2; exit 1 }
      pos = $1 + $2 }
    END { if (pos != size) { print "extents end at " pos ", size " size; exit 1 } }' <<<"$ext") \
    || bad "map --json: $end"
  convert_to_file "$2" "$3" "$T/out.raw"
  local msg
  msg=$(sparse_all_zero "$T/out.raw" 2>&1) || bad "convert IMG out.raw: $msg"
  rm -f "$T/out.raw"
  HOW="all-zero: map has no data extent, sparse raw output stores only zeros"
}

check_large () { # NAME FILE VSIZE MD5 FORMAT
  local name=$1 f=$2 m ref=$T/ref.raw
  if [ "$CORPUS_FULL_MD5" = 1 ] || [ $have_qemu = 0 ]; then
    # Through a pipe: reading a 10 GiB sparse file back is slower here.
    check_md5_stream "$@"
    return 0
  fi
  convert_to_file "$f" "$3" "$T/out.raw"
  rm -f "$ref"
  case $dirty_log_images in
    *" $name "*)
      # qemu opens a dirty-log VHDX only after replaying it in a copy.
      cp --sparse=always "$f" "$T/replay.img"
      chmod u+w "$T/replay.img"
      qemu-img check -q -r all "$T/replay.img" >/dev/null 2>&1 || true
      qemu-img convert -f vhdx -O raw "$T/replay.img" "$ref" 2>"$T/err" \
        || bad "(reference) qemu-img convert failed: $(head -c 300 "$T/err")"
      rm -f "$T/replay.img" ;;
    *)
      if [ "$5" = vhd ]; then
        qemu-img convert --image-opts "$(qemu_vpc_opts "$f")" -O raw "$ref" 2>"$T/err"
      else
        qemu-img convert -f "$5" -O raw "$f" "$ref" 2>"$T/err"
      fi || bad "(reference) qemu-img convert failed: $(head -c 300 "$T/err")" ;;
  esac
  m=$(qemu-img compare -f raw -F raw "$T/out.raw" "$ref" 2>&1) \
    || bad "differs from qemu-img's raw conversion: $m"
  rm -f "$ref" "$T/out.raw"
  HOW="convert IMG out.raw identical to qemu-img's raw (a golden reader)"
}

check_missing_parent () { # NAME FILE
  local rc n j p
  set +e
  vt convert "$2" - >/dev/null 2>"$T/cerr"
  rc=$?
  set -e
  [ $rc = 1 ] || bad "convert of a child without its parent: exit $rc, expected 1"
  n=$(wc -l < "$T/cerr")
  [ "$n" = 1 ] || bad "convert: error is $n lines, expected one: $(head -c 300 "$T/cerr")"
  grep -q '^vhdtool: ' "$T/cerr" || bad "convert: error not in 'vhdtool: FILE: ...' form: $(cat "$T/cerr")"
  grep -qi 'parent' "$T/cerr" || bad "convert: error does not mention the parent: $(cat "$T/cerr")"
  j=$(vt info --json "$2" 2>"$T/err") \
    || bad "info --json of a child without its parent failed: $(head -c 300 "$T/err")"
  p=$(json_get parent <<<"$j" 2>/dev/null) || bad "info --json: no \"parent\" key"
  [ "$p" != null ] && [ -n "$p" ] || bad "info --json: \"parent\" is null"
  HOW="convert fails naming the parent ($(cat "$T/cerr")); info shows parent $p"
}

check_row () { # NAME FORMAT_COLUMN VSIZE MD5 NOTES FILE_MD5
  local name=$1 f=$IMG/$1 fmt=${2%% *} before after
  fmt=${fmt,,}
  case $dirty_log_images in
    *" $name "*)
      before=$(md5_file "$f")
      [ "$before" = "$6" ] || bad "unpacked file md5 $before, golden.tsv file_md5 $6" ;;
  esac
  case $missing_parent_images in
    *" $name "*) check_missing_parent "$name" "$f"; echo "$HOW" > "$REASON"; return 0 ;;
  esac
  [ "$4" != NA ] || bad "no golden md5 and not a known missing-parent image"
  check_info "$name" "$f" "$2" "$3"
  if [[ $5 == *"content all-zero"* ]] && [ "$CORPUS_FULL_MD5" != 1 ]; then
    check_all_zero "$name" "$f" "$3"
  elif [ "$3" -gt $LARGE ]; then
    check_large "$name" "$f" "$3" "$4" "$fmt"
  else
    check_md5_stream "$name" "$f" "$3" "$4"
  fi
  case $dirty_log_images in
    *" $name "*)
      local ld
      ld=$(json_get log_dirty <<<"$INFO_JSON" 2>/dev/null) || bad "info --json: no log_dirty"
      [ "$ld" = true ] || [ "$ld" = 1 ] || bad "info --json: log_dirty $ld for an image with a pending log"
      after=$(md5_file "$f")
      [ "$after" = "$before" ] || bad "read-only open changed the file: md5 $before -> $after"
      HOW="$HOW; file unchanged, log_dirty $ld" ;;
  esac
  echo "$HOW" > "$REASON"
}

npass=0 nfail=0
failed=()
while IFS=$'\037' read -r name format vsize md5 _readers notes fmd5 fsize; do
  [ "$name" = name ] && continue
  [ -n "$name" ] || continue
  wanted_row "$name" "$format" || continue
  [ -d "$IMG" ] || fail "the temporary directory $T was removed by something else during the run"
  rm -f "$REASON"
  start=$EPOCHREALTIME
  set +e
  ( check_row "$name" "$format" "$vsize" "$md5" "$notes" "$fmd5" )
  rc=$?
  set -e
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  reason=$(tr -s "\n" " " < "$REASON" 2>/dev/null || echo "exit $rc")
  if [ $rc = 0 ]; then
    printf 'PASS %-42s %6ss  %s\n' "$name" "$secs" "$reason"
    npass=$((npass + 1))
  else
    printf 'FAIL %-42s %6ss  %s\n' "$name" "$secs" "$reason"
    nfail=$((nfail + 1)); failed+=("$name")
  fi
done < <(golden_rows)

echo
echo "corpus ($CORPUS_FORMATS${CORPUS_ONLY:+, only $CORPUS_ONLY}): $npass passed, $nfail failed"
[ $((npass + nfail)) -gt 0 ] || fail "no row selected"
[ $nfail = 0 ] || fail "failing images: ${failed[*]}"
