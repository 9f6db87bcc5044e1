#!/bin/bash
# Read-only means read-only.  For a VHD dynamic disk, a VHD differencing
# chain, a VHDX dynamic disk, a VHDX differencing chain and, from the
# real-image corpus (../shared/corpus), a VHDX with a pending log, a VHD
# pair with bad footer checksums and Hyper-V-made dynamic VHD/VHDX: the
# md5 of every file of the chain is recorded, then every read-only use of
# the images runs and afterwards every md5 must be unchanged:
#   vhdtool info [--json], map [--json], check [--json] (no --repair),
#     convert with the image as SRC (raw, vhd, vhdx, fixed, to stdout, -p),
#     create --parent IMAGE (the chain is only read), rebase of a copy of
#     the child onto the chain's parent (only the copy may change);
#   vhdfuse -r: mount, read the whole disk, a write must fail (EROFS),
#     unmount;
#   vhd-nbd-server -r: nbdcopy the export out, writes, zeroes and trims
#     must fail, stop;
#   libvhd opened VHD_OPEN_RDONLY: pwrite, write_zeroes, discard, resize,
#     compact, commit must fail with EROFS;
#   vhdtool's writing commands (commit, compact, resize, rebase, check
#     --repair) on files the user may not write (run as nobody when we are
#     root): exit 1 with one error line.
# Every read must also give the image's content.
#
#   B=build tests/tools/test-readonly.sh   (CORPUS_DIR overrides the corpus)
. "$(dirname "$0")/../lib.sh"

need_vhdtool
VHDFUSE=$B/vhdfuse
NBDSRV=$B/vhd-nbd-server
CORPUS_DIR=${CORPUS_DIR:-$ROOT/../shared/corpus}
MiB=1048576
chmod 755 "$T"   # nobody must reach the images (see as_other_user)
cd "$T"

# ------------------------------------------------------------ helpers

# snapshot DIR: "md5  name" of every file in DIR, sorted.
snapshot () {
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum)
}

# unchanged WHAT: the case's files are as recorded.
unchanged () {
  local now
  now=$(snapshot "$DIR")
  [ "$now" = "$BEFORE" ] || fail "$CASE: $1 changed the image files:
$(diff <(echo "$BEFORE") <(echo "$now"))"
}

# vt WHAT ARG...: run vhdtool (exit 0 wanted), then check the files.
vt () {
  local what=$1 rc=0
  shift
  "$VHDTOOL" "$@" > "$T/out" 2> "$T/err" || rc=$?
  [ $rc -eq 0 ] || fail "$CASE: vhdtool $*: exit $rc: $(head -c 400 "$T/err")"
  unchanged "vhdtool $what"
}

# raw_md5_of IMAGE: md5 of the disk of a converted output.
raw_md5_of () {
  md5_raw "$1" || fail "$CASE: cannot read back $1"
}

# Whether we can run a FUSE mount / an NBD round trip here (once).
fuse_ok=""
if [ ! -x "$VHDFUSE" ]; then fuse_ok="vhdfuse not built"
elif [ ! -e /dev/fuse ]; then fuse_ok="/dev/fuse is absent"
elif ! command -v fusermount3 > /dev/null; then fuse_ok="fusermount3 not installed"
elif ! command -v mountpoint > /dev/null; then fuse_ok="mountpoint not installed"
fi
nbd_ok=""
if [ ! -x "$NBDSRV" ]; then nbd_ok="vhd-nbd-server not built"
elif ! command -v nbdcopy > /dev/null; then nbd_ok="nbdcopy not installed"
elif ! command -v nbdinfo > /dev/null; then nbd_ok="nbdinfo not installed"
elif ! "$PY" -c 'import nbd' 2> /dev/null; then nbd_ok="python3-libnbd not installed"
fi
# Running as a user who may not write the files: ourselves when not root.
other_user=""
if [ "$(id -u)" -ne 0 ]; then other_user=self
elif command -v setpriv > /dev/null && id nobody > /dev/null 2>&1; then
  other_user=nobody
fi
[ -n "$fuse_ok" ] && note "SKIP part: FUSE mounts ($fuse_ok)"
[ -n "$nbd_ok" ] && note "SKIP part: NBD round trips ($nbd_ok)"
[ -z "$other_user" ] && note "SKIP part: writing commands on read-only files (root without setpriv)"

# as_other_user CMD...: run CMD as a user without write permission.
as_other_user () {
  if [ "$other_user" = self ]; then "$@"
  else setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  fi
}

VF_PID=""
SRV=""
_ro_exit () {
  local rc=$?
  [ -n "$VF_PID" ] && { fusermount3 -u "$T/mnt" 2> /dev/null; kill "$VF_PID" 2> /dev/null; }
  [ -n "$SRV" ] && kill -9 "$SRV" 2> /dev/null
  set +e
  (exit "$rc")
  _cleanup
}
trap _ro_exit EXIT

# ------------------------------------------------------------ the checks

# vhdtool: every read-only command and option.
check_vhdtool () {
  local img=$1 rc f o out=$T/out.d
  rm -rf "$out"; mkdir -p "$out"
  vt info info "$img"
  vt "info --json" info --json "$img"
  "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" \
    || fail "$CASE: info --json is not JSON"
  vt map map "$img"
  vt "map --json" map --json "$img"
  for o in "" --json; do
    rc=0
    "$VHDTOOL" check $o "$img" > "$T/out" 2> "$T/err" || rc=$?
    case $rc in 0|2|3) ;; *) fail "$CASE: vhdtool check $o: exit $rc: $(head -c 400 "$T/err")" ;; esac
    unchanged "vhdtool check $o (exit $rc)"
  done
  # Convert with the image as source, into every format.
  "$VHDTOOL" convert "$img" - > "$out/stdout.raw" 2> "$T/err" \
    || fail "$CASE: vhdtool convert - failed: $(head -c 400 "$T/err")"
  unchanged "vhdtool convert IMAGE -"
  [ "$(md5_file "$out/stdout.raw")" = "$RAW" ] \
    || fail "$CASE: convert to stdout: content differs"
  rm -f "$out/stdout.raw"
  for f in out.raw out.vhd out.vhdx; do
    vt "convert to $f" convert "$img" "$out/$f"
    [ "$(raw_md5_of "$out/$f")" = "$RAW" ] || fail "$CASE: convert to $f: content differs"
    rm -f "$out/$f"
  done
  vt "convert -p -O vhdx -b 1M --logical-sector 4096" \
    convert -p -O vhdx -b 1M --logical-sector 4096 "$img" "$out/p.vhdx"
  rm -f "$out/p.vhdx"
  if [ "$SIZE" -le $((64 * MiB)) ]; then
    vt "convert -t fixed" convert -t fixed "$img" "$out/fixed.vhd"
    [ "$(raw_md5_of "$out/fixed.vhd")" = "$RAW" ] || fail "$CASE: convert -t fixed: content differs"
    rm -f "$out/fixed.vhd"
  fi
  # A new child over the image only reads the chain.
  vt "create --parent" create --parent "$img" "$out/child.vhdx"
  [ "$(raw_md5_of "$out/child.vhdx")" = "$RAW" ] || fail "$CASE: new child: content differs"
  vt "create -f vhd --parent" create -f vhd --parent "$img" "$out/child.vhd"
  [ "$(raw_md5_of "$out/child.vhd")" = "$RAW" ] || fail "$CASE: new VHD child: content differs"
  # Rebasing a copy of the child onto the chain's parent: only the copy
  # is written.
  if [ -n "$PARENT" ]; then
    cp "$img" "$out/moved.${img##*.}"
    vt "rebase of a copy" rebase --parent "$PARENT" "$out/moved.${img##*.}"
    [ "$(raw_md5_of "$out/moved.${img##*.}")" = "$RAW" ] || fail "$CASE: rebased copy: content differs"
  fi
  rm -rf "$out"
}

# vhdfuse -r: read everything, a write fails, unmount cleanly.
check_fuse () {
  local img=$1 mnt=$T/mnt rc=0 i
  if [ -n "$fuse_ok" ]; then note "$CASE: vhdfuse skipped: $fuse_ok"; return 0; fi
  mkdir -p "$mnt"
  "$VHDFUSE" -r -f "$img" "$mnt" 2> "$T/vhdfuse.log" &
  VF_PID=$!
  register_mount "$mnt"
  for i in $(seq 200); do
    mountpoint -q "$mnt" && break
    if ! kill -0 "$VF_PID" 2> /dev/null; then
      wait "$VF_PID" || true
      VF_PID=""
      if grep -qiE 'permission denied|not permitted|/dev/fuse' "$T/vhdfuse.log"; then
        fuse_ok="cannot mount FUSE here: $(head -1 "$T/vhdfuse.log")"
        note "$CASE: vhdfuse skipped: $fuse_ok"
        return 0
      fi
      fail "$CASE: vhdfuse -r did not mount: $(tail -3 "$T/vhdfuse.log")"
    fi
    sleep 0.05
  done
  mountpoint -q "$mnt" || fail "$CASE: vhdfuse -r: not mounted after 10 s"
  [ "$(md5_file "$mnt/disk")" = "$RAW" ] || fail "$CASE: vhdfuse -r: disk content differs"
  [ "$(file_size "$mnt/disk")" = "$SIZE" ] || fail "$CASE: vhdfuse -r: disk size differs"
  [ ! -w "$mnt/disk" ] || [ "$(id -u)" -eq 0 ] || fail "$CASE: vhdfuse -r: disk is writable"
  rc=0
  dd if=/dev/zero of="$mnt/disk" bs=512 count=1 conv=notrunc,fsync status=none \
    2> "$T/dd.err" || rc=$?
  [ $rc -ne 0 ] || fail "$CASE: vhdfuse -r: a write to disk succeeded"
  grep -qiE 'read-only|permission denied' "$T/dd.err" \
    || fail "$CASE: vhdfuse -r: write failed, but not with EROFS/EACCES: $(cat "$T/dd.err")"
  rc=0
  truncate -s 0 "$mnt/disk" 2> /dev/null || rc=$?
  [ $rc -ne 0 ] || fail "$CASE: vhdfuse -r: truncating disk succeeded"
  [ "$(md5_file "$mnt/disk")" = "$RAW" ] || fail "$CASE: vhdfuse -r: content changed after a refused write"
  fusermount3 -u "$mnt" || fail "$CASE: fusermount3 -u failed"
  rc=0
  wait "$VF_PID" || rc=$?
  VF_PID=""
  [ $rc -eq 0 ] || fail "$CASE: vhdfuse -r exited $rc: $(tail -3 "$T/vhdfuse.log")"
  unchanged "vhdfuse -r (mount, read, refused writes, unmount)"
  note "  vhdfuse -r: read $SIZE bytes; write refused: $(head -1 "$T/dd.err")"
}

# vhd-nbd-server -r: nbdcopy out; writes refused; clean stop.
check_nbd () {
  local img=$1 sock=$T/ro.sock rc=0 i uri
  if [ -n "$nbd_ok" ]; then note "$CASE: NBD skipped: $nbd_ok"; return 0; fi
  uri="nbd+unix:///?socket=$sock"
  rm -f "$sock"
  "$NBDSRV" -r -k "$sock" "$img" 2> "$T/server.log" &
  SRV=$!
  for i in $(seq 200); do
    nbdinfo --list "$uri" > /dev/null 2>&1 && break
    kill -0 "$SRV" 2> /dev/null || fail "$CASE: server exited: $(tail -3 "$T/server.log")"
    sleep 0.05
  done
  nbdcopy "$uri" "$T/nbd.raw" || fail "$CASE: nbdcopy from the read-only export failed"
  [ "$(md5_file "$T/nbd.raw")" = "$RAW" ] || fail "$CASE: nbdcopy: content differs"
  rm -f "$T/nbd.raw"
  "$PY" - "$uri" > "$T/nbd.out" <<'PYEOF' || fail "$CASE: vhd-nbd-server -r accepted a write (see above)"
import errno, nbd, sys
errs = []
h = nbd.NBD()
h.connect_uri(sys.argv[1])
# Send the writes anyway: libnbd would refuse them itself on a read-only
# export, and it is the server that must refuse them.
if hasattr(h, "set_strict_mode"):
    h.set_strict_mode(0)
bad = []
if not h.is_read_only():
    bad.append("export does not advertise read-only")
size = h.get_size()
for name, call in (("pwrite", lambda: h.pwrite(b"\xff" * 512, 0)),
                   ("pwrite at the end", lambda: h.pwrite(b"\xff" * 512, size - 512)),
                   ("zero", lambda: h.zero(4096, 0)),
                   ("trim", lambda: h.trim(4096, 0))):
    try:
        call()
        bad.append(name + " succeeded")
    except nbd.Error as e:
        errs.append("%s %s" % (name, errno.errorcode.get(e.errnum, e.errnum)))
        if e.errnum is not None and e.errnum not in (1, 30, 22, 95):
            bad.append("%s: unexpected error %s" % (name, e))
h.flush() if h.can_flush() else None
h.shutdown()
if bad:
    sys.exit("; ".join(bad))
print("writes refused: " + ", ".join(errs))
PYEOF
  # A second copy after the refused writes: still the same.
  nbdcopy "$uri" - | md5sum | grep -q "^$RAW " \
    || fail "$CASE: content changed after refused NBD writes"
  kill -TERM "$SRV"
  rc=0
  wait "$SRV" || rc=$?
  SRV=""
  [ $rc -eq 0 ] || fail "$CASE: vhd-nbd-server -r exited $rc: $(tail -3 "$T/server.log")"
  unchanged "vhd-nbd-server -r (nbdcopy, refused writes, stop)"
  note "  vhd-nbd-server -r: nbdcopy matched; $(cat "$T/nbd.out")"
}

# libvhd through a read-only handle: every writing call fails with EROFS.
check_api () {
  local img=$1
  py_libvhd - "$B/libvhd.so" "$img" <<'PYEOF' || fail "$CASE: a read-only handle accepted a write (see above)"
import ctypes, errno, sys
lib = ctypes.CDLL(sys.argv[1])
lib.vhd_open.restype = ctypes.c_void_p
lib.vhd_open.argtypes = [ctypes.c_char_p, ctypes.c_uint]
vp, u64 = ctypes.c_void_p, ctypes.c_uint64
lib.vhd_pwrite.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t, u64]
lib.vhd_write_zeroes.argtypes = [vp, u64, u64, ctypes.c_uint]
lib.vhd_discard.argtypes = [vp, u64, u64]
lib.vhd_resize.argtypes = [vp, u64, ctypes.c_uint]
lib.vhd_compact.argtypes = [vp, vp, vp]
lib.vhd_commit.argtypes = [vp, vp, vp]
lib.vhd_flush.argtypes = [vp]
lib.vhd_close.argtypes = [vp]
lib.vhd_get_size.restype = ctypes.c_int64
lib.vhd_get_size.argtypes = [vp]
lib.vhd_get_error.restype = ctypes.c_char_p
d = lib.vhd_open(sys.argv[2].encode(), 1)  # VHD_OPEN_RDONLY
if not d:
    sys.exit("vhd_open: %s" % lib.vhd_get_error().decode())
size = lib.vhd_get_size(d)
bad = []
for name, call in (("vhd_pwrite", lambda: lib.vhd_pwrite(d, b"\xff" * 4096, 4096, 0)),
                   ("vhd_write_zeroes", lambda: lib.vhd_write_zeroes(d, 0, 4096, 0)),
                   ("vhd_discard", lambda: lib.vhd_discard(d, 0, 1 << 20)),
                   ("vhd_resize", lambda: lib.vhd_resize(d, size + (1 << 20), 0)),
                   ("vhd_compact", lambda: lib.vhd_compact(d, None, None)),
                   ("vhd_commit", lambda: lib.vhd_commit(d, None, None))):
    if call() != -1:
        bad.append(name + " succeeded")
    elif lib.vhd_get_errno() != errno.EROFS:
        bad.append("%s: errno %d, not EROFS: %s" % (name, lib.vhd_get_errno(),
                                                    lib.vhd_get_error().decode()))
if lib.vhd_flush(d) != 0:
    bad.append("vhd_flush of a read-only handle failed: %s" % lib.vhd_get_error().decode())
lib.vhd_close(d)
if bad:
    sys.exit("; ".join(bad))
PYEOF
  unchanged "libvhd read-only handle (refused writes)"
  note "  libvhd read-only handle: 6 writing calls failed with EROFS"
}

# vhdtool's writing commands on files the user may not write.
check_denied () {
  local img=$1 c rc
  if [ -z "$other_user" ]; then return 0; fi
  chmod -R a-w "$DIR"
  chmod a+rx "$DIR"
  local cmds=("compact $img" "resize $img +1M" "check --repair $img")
  if [ -n "$PARENT" ]; then
    cmds+=("commit $img" "rebase --parent $PARENT $img")
  fi
  for c in "${cmds[@]}"; do
    rc=0
    # shellcheck disable=SC2086
    as_other_user "$VHDTOOL" $c > "$T/out" 2> "$T/err" || rc=$?
    # check --repair with nothing to repair may succeed without writing.
    if [ $rc -eq 0 ] && [ "${c%% *}" = check ]; then
      unchanged "vhdtool $c (as $other_user, files read-only)"
      continue
    fi
    [ $rc -ne 0 ] || fail "$CASE: vhdtool $c on read-only files succeeded"
    [ $rc -eq 1 ] || [ $rc -eq 2 ] \
      || fail "$CASE: vhdtool $c on read-only files: exit $rc (crash?): $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q '^vhdtool: ' "$T/err" \
      || fail "$CASE: vhdtool $c on read-only files: want one 'vhdtool: ' error line, got: $(cat "$T/err")"
    unchanged "vhdtool $c (as $other_user, files read-only)"
    note "  refused as $other_user: vhdtool ${c%% *}: exit $rc: $(cat "$T/err")"
  done
  chmod -R u+w "$DIR"
}

# run_case NAME DIR IMAGE [PARENT]: everything above on DIR/IMAGE.
run_case () {
  CASE=$1 DIR=$2
  local img=$2/$3
  PARENT=${4:+$2/$4}
  note "$CASE"
  BEFORE=$(snapshot "$DIR")
  [ -n "$BEFORE" ] || fail "$CASE: no files in $DIR"
  RAW=$(md5_raw "$img") || fail "$CASE: vhdtool convert $img - failed"
  unchanged "the first read"
  SIZE=$(info_json "$img" | json_get virtual_size)
  check_vhdtool "$img"
  check_fuse "$img"
  check_nbd "$img"
  check_api "$img"
  check_denied "$img"
  # Once more, after everything: the same content.
  [ "$(md5_raw "$img")" = "$RAW" ] || fail "$CASE: content changed"
  unchanged "the whole run"
}

# ------------------------------------------------------------ made here

note "building the images"
mkdir -p vhd-dyn vhd-chain vhdx-dyn vhdx-chain
"$VHDTOOL" create vhd-dyn/disk.vhd 8M > /dev/null
lib_pwrite vhd-dyn/disk.vhd 0:65536:1 $((3 * MiB + 512)):1536:2 $((8 * MiB - 4096)):4096:3

"$VHDTOOL" create vhd-chain/base.vhd 8M > /dev/null
lib_pwrite vhd-chain/base.vhd 0:$((2 * MiB)):4 $((5 * MiB)):65536:5
"$VHDTOOL" create --parent vhd-chain/base.vhd vhd-chain/mid.vhd > /dev/null
lib_pwrite vhd-chain/mid.vhd 4096:8192:6 $((5 * MiB + 512)):512:z
"$VHDTOOL" create --parent vhd-chain/mid.vhd vhd-chain/top.vhd > /dev/null
lib_pwrite vhd-chain/top.vhd $((MiB)):4096:7 $((7 * MiB)):$((MiB)):8

"$VHDTOOL" create -b 1M vhdx-dyn/disk.vhdx 8M > /dev/null
lib_pwrite vhdx-dyn/disk.vhdx 0:65536:9 $((3 * MiB + 512)):1536:10 $((8 * MiB - 4096)):4096:11

"$VHDTOOL" create -b 1M vhdx-chain/base.vhdx 8M > /dev/null
lib_pwrite vhdx-chain/base.vhdx 0:$((2 * MiB)):12 $((5 * MiB)):65536:13
"$VHDTOOL" create --parent vhdx-chain/base.vhdx vhdx-chain/top.avhdx > /dev/null
lib_pwrite vhdx-chain/top.avhdx 4096:8192:14 $((5 * MiB + 512)):512:z $((7 * MiB)):$((MiB)):15

run_case "VHD dynamic" "$T/vhd-dyn" disk.vhd
run_case "VHD differencing chain (3 files)" "$T/vhd-chain" top.vhd mid.vhd
run_case "VHDX dynamic" "$T/vhdx-dyn" disk.vhdx
run_case "VHDX differencing chain" "$T/vhdx-chain" top.avhdx base.vhdx

# ------------------------------------------------------------ the corpus

# corpus_case NAME IMAGE...: unpack the corpus images (gzip) into a folder.
corpus_unpack () {
  local dir=$1 f
  shift
  mkdir -p "$dir"
  for f in "$@"; do
    gzip -dc "$CORPUS_DIR/images/$f.gz" > "$dir/${f##*/}" || return 1
  done
}

if [ ! -d "$CORPUS_DIR/images" ]; then
  note "SKIP part: corpus cases: $CORPUS_DIR absent (the pending-log VHDX among them)"
else
  if corpus_unpack "$T/dirty" discutils/vhdx-log-replay.vhdx; then
    info_json "$T/dirty/vhdx-log-replay.vhdx" > "$T/dirty.json" \
      || fail "info of the pending-log image failed"
    [ "$(json_get log_dirty < "$T/dirty.json")" = true ] \
      || fail "discutils/vhdx-log-replay.vhdx: info does not report log_dirty"
    run_case "VHDX with a pending log (corpus)" "$T/dirty" vhdx-log-replay.vhdx
    # Replayed in memory, not on disk: the log is still pending.
    [ "$(info_json "$T/dirty/vhdx-log-replay.vhdx" | json_get log_dirty)" = true ] \
      || fail "the pending log was replayed on disk"
    [ "$RAW" = 671f96cf63f64ba869ce0fda80a48c6d ] \
      || fail "pending-log VHDX: read without replay ($RAW)"
  else
    note "SKIP part: discutils/vhdx-log-replay.vhdx not in the corpus"
  fi
  if corpus_unpack "$T/dfvfs" dfvfs-image-chain/image.vhd \
       dfvfs-image-chain/image-differential.vhd; then
    # Bad trailing footer checksums: a reader must not "fix" them.
    run_case "VHD chain with bad footer checksums (corpus)" "$T/dfvfs" \
      image-differential.vhd image.vhd
  else
    note "SKIP part: dfvfs-image-chain not in the corpus"
  fi
  if corpus_unpack "$T/hyperv-vhd" dissect-dynamic.vhd; then
    run_case "VHD dynamic by Windows (corpus)" "$T/hyperv-vhd" dissect-dynamic.vhd
  fi
  if corpus_unpack "$T/hyperv-vhdx" dissect-dynamic.vhdx; then
    run_case "VHDX dynamic by Windows (corpus)" "$T/hyperv-vhdx" dissect-dynamic.vhdx
  fi
fi

note "every read-only use left every file unchanged"
