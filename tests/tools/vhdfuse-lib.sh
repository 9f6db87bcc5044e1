# shellcheck shell=bash
# Mount helpers shared by the test-vhdfuse-*.sh scripts; source it after
# tests/lib.sh.  Gives $VHDFUSE, vf_mount, vf_unmount and put, and unmounts
# and stops every vhdfuse it started on exit.
need_vhdtool
VHDFUSE=${VHDFUSE:-$B/vhdfuse}
[ -x "$VHDFUSE" ] || fail "vhdfuse not built: $VHDFUSE (run make)"
[ -e /dev/fuse ] || skip "/dev/fuse is absent: FUSE mounts are impossible here"
need_cmd fusermount3 mountpoint
VF_PIDS=()
VF_LOG=$T/vhdfuse.log

# On exit: unmount what is still mounted (a loop mount inside first), then
# stop our vhdfuse processes.
_vf_exit () {
  local rc=$? m p
  if [ -n "${LOOP_FS:-}" ] && mountpoint -q "$LOOP_FS" 2>/dev/null; then
    umount "$LOOP_FS" 2>/dev/null || true
  fi
  for m in "${_mounts[@]+"${_mounts[@]}"}"; do
    if mountpoint -q "$m" 2>/dev/null; then
      fusermount3 -u "$m" 2>/dev/null || true
    fi
  done
  for p in "${VF_PIDS[@]+"${VF_PIDS[@]}"}"; do
    kill "$p" 2>/dev/null || true
  done
  set +e          # hand lib.sh's _cleanup our status in $?
  (exit "$rc")
  _cleanup
}
trap _vf_exit EXIT

# vf_mount IMAGE DIR [OPTION...]: vhdfuse -f in the background ($VF_PID),
# back when DIR is mounted.  A first mount that fails for lack of
# permission skips the test.
vf_mount () {
  local img=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  : > "$VF_LOG"
  "$VHDFUSE" -f "$@" "$img" "$dir" 2>> "$VF_LOG" &
  VF_PID=$!
  VF_PIDS+=("$VF_PID")
  register_mount "$dir"
  for _ in $(seq 200); do
    if mountpoint -q "$dir"; then
      VF_MOUNTED_ONCE=1
      return 0
    fi
    if ! kill -0 "$VF_PID" 2>/dev/null; then
      wait "$VF_PID" || true
      if [ -z "${VF_MOUNTED_ONCE:-}" ] \
        && grep -qiE 'permission denied|not permitted|/dev/fuse' "$VF_LOG"; then
        skip "cannot mount FUSE here: $(head -2 "$VF_LOG")"
      fi
      fail "vhdfuse $* $img $dir did not mount: $(tail -3 "$VF_LOG")"
    fi
    sleep 0.05
  done
  fail "vhdfuse $img: $dir not mounted after 10 s"
}

# vf_unmount DIR: fusermount3 -u; vhdfuse must then flush, close, exit 0.
vf_unmount () {
  local rc=0
  fusermount3 -u "$1" || fail "fusermount3 -u $1 failed"
  wait "$VF_PID" || rc=$?
  [ "$rc" -eq 0 ] \
    || fail "vhdfuse exited with status $rc: $(tail -3 "$VF_LOG")"
}

# put SRC SRC_OFF DST OFF LEN: copy bytes without truncating DST.
put () {
  dd if="$1" of="$3" bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes \
    skip="$2" seek="$4" count="$5" conv=notrunc status=none
}
