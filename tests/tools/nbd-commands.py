"""nbd-commands.py: libnbd (nbdsh's Python module) checks of vhd-nbd-server.

    python3 nbd-commands.py CHECK URI [ARG...]

Checks (each exits 0 on success, prints "FAIL: ..." and exits 1 otherwise):
  rw URI            every command on a writable export of at least 64 MiB
                    whose first 64 MiB are unallocated: pread, pwrite (+FUA),
                    flush, trim, zero (+NO_HOLE, +FAST_ZERO), cache,
                    block_status with both contexts, sparse structured reads
  errors URI        error replies: out of range, misaligned, oversized,
                    zero-length, bad flags (libnbd strict mode off)
  ro URI            a read-only export: flags, reads work, writes EPERM
  multi URI N       N connections, many requests in flight on each, replies
                    matched by libnbd; a flush on one connection, reads of
                    everything on another
  map URI EXPECT    base:allocation and qemu:allocation-depth of the whole
                    export equal EXPECT (a JSON file: {"base": [[start,
                    length, flags]...], "depth": [[start, length, depth]...]})
  simple URI        a client without structured replies: reads and errors
  ack URI OUT       write 4 KiB pieces over the first 64 MiB, round after
                    round, 32 in flight, until the server goes away; print
                    "started" once 2000 writes were acknowledged; save in OUT
                    which writes each piece must show (ack-verify checks it)
  ack-verify RAW OUT  every acknowledged write is in RAW (a raw dump)
"""
import errno
import json
import random
import struct
import sys

import nbd

MiB = 1 << 20


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def connect(uri, contexts=True, structured=True, strict=True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    if contexts:
        h.add_meta_context("base:allocation")
        h.add_meta_context("qemu:allocation-depth")
    if not strict:
        h.set_strict_mode(0)
    h.connect_uri(uri)
    return h


def expect_error(what, err, fn, *args, **kw):
    """fn(*args) must fail with the NBD error err (an errno number)."""
    try:
        fn(*args, **kw)
    except nbd.Error as e:
        check(e.errnum == err, "%s: expected %s, got %s (%s)"
              % (what, errno.errorcode[err], e.errno, e.string))
        return
    fail("%s: succeeded, expected %s" % (what, errno.errorcode[err]))


def status(h, offset, count, flags=0):
    """{context: [(offset, length, flags)...]} of one block status call."""
    out = {}

    def cb(context, off, entries, err):
        lst = out.setdefault(context, [])
        for i in range(0, len(entries), 2):
            lst.append((off, entries[i], entries[i + 1]))
            off += entries[i]
        return 0
    h.block_status(count, offset, cb, flags)
    return out


def full_map(h, context):
    """Merged [start, length, flags] of context over the whole export."""
    size = h.get_size()
    off, res = 0, []
    while off < size:
        got = status(h, off, min(size - off, 1 << 30))[context]
        for (o, ln, fl) in got:
            ln = min(ln, size - o)
            if res and res[-1][2] == fl and res[-1][0] + res[-1][1] == o:
                res[-1][1] += ln
            else:
                res.append([o, ln, fl])
        off = got[-1][0] + got[-1][1]
    return res


def chunks(h, count, offset, flags=0):
    """[(offset, length, status)] of the chunks of a structured read."""
    got = []

    def cb(subbuf, off, st, err):
        got.append((off, len(subbuf), st))
        return 0
    h.pread_structured(count, offset, cb, flags)
    return sorted(got)


def fast_zero(h, count, offset):
    """A fast zero either works or fails with ENOTSUP leaving the data."""
    before = h.pread(count, offset)
    try:
        h.zero(count, offset, nbd.CMD_FLAG_FAST_ZERO)
        check(h.pread(count, offset) == bytes(count), "fast zero")
    except nbd.Error as e:
        check(e.errnum == errno.ENOTSUP, "fast zero: %s" % e.string)
        check(h.pread(count, offset) == before,
              "a failed fast zero changed the data")


def check_rw(uri):
    h = connect(uri)
    size = h.get_size()
    check(size >= 64 * MiB, "export too small: %d" % size)
    for cap in ("can_flush", "can_fua", "can_trim", "can_zero",
                "can_fast_zero", "can_cache", "can_multi_conn", "can_df"):
        check(getattr(h, cap)(), cap + " is false")
    check(not h.is_read_only(), "writable export reports read-only")
    check(h.can_meta_context("base:allocation"), "no base:allocation")
    check(h.can_meta_context("qemu:allocation-depth"),
          "no qemu:allocation-depth")
    check(h.get_block_size(nbd.SIZE_MINIMUM) in (512, 4096), "min block")
    check(h.get_block_size(nbd.SIZE_PREFERRED) >= 4096, "preferred block")
    check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB, "max block")

    # An unallocated disk reads as zeros, and is sent as holes.
    check(h.pread(MiB, 0) == bytes(MiB), "fresh disk does not read zeros")
    c = chunks(h, MiB, 0)
    check(c == [(0, MiB, nbd.READ_HOLE)], "expected one hole chunk, got %s" % c)
    c = chunks(h, 65536, 0, nbd.CMD_FLAG_DF)
    check(c == [(0, 65536, nbd.READ_DATA)], "DF read: %s" % c)

    # Write, read back, FUA, flush.
    data = random.Random(1).randbytes(65536)
    h.pwrite(data, MiB)
    check(h.pread(65536, MiB) == data, "pwrite/pread mismatch")
    h.pwrite(data, 3 * MiB + 512, nbd.CMD_FLAG_FUA)
    check(h.pread(65536, 3 * MiB + 512) == data, "FUA write mismatch")
    h.flush()

    # A read across the end of the data and the hole after it: a data
    # chunk and a hole chunk (where the format's blocks are small enough
    # for a hole to follow within the first 64 MiB).  Stored data that the
    # host file has as a hole is ZERO, and may be sent as a hole too.
    base = full_map(h, "base:allocation")
    edges = [(max(a[0], b[0] - MiB), b[0]) for a, b in zip(base, base[1:])
             if a[2] == 0 and b[2] == 3]
    if edges:
        start, edge = edges[0]
        c = chunks(h, edge - start + MiB, start)
        kinds = [st for (o, ln, st) in c]
        check(nbd.READ_HOLE in kinds and nbd.READ_DATA in kinds,
              "read across %d: chunks %s" % (edge, c))
        check(sum(ln for (o, ln, st) in c) == edge - start + MiB,
              "chunks do not cover")
    buf = h.pread(4 * MiB, 0)
    check(buf[3 * MiB + 512:3 * MiB + 512 + 65536] == data, "read content")
    check(buf[2 * MiB:3 * MiB + 512] == bytes(MiB + 512), "read zeros")

    # Block status: both contexts, data where written (stored ranges that
    # are holes of the host file are ZERO, but never HOLE).
    st = status(h, 0, 8 * MiB)
    base, depth = st["base:allocation"], st["qemu:allocation-depth"]
    check(not base[0][2] & nbd.STATE_HOLE and base[0][0] == 0,
          "block 0 is data: %s" % base)
    check(any(fl == 0 and o <= MiB < o + ln for (o, ln, fl) in base),
          "written data not reported as data: %s" % base)
    check(depth[0][2] == 1, "block 0 is in layer 1: %s" % depth)
    for (o, ln, fl) in base:
        dh = [e for e in depth if e[0] <= o < e[0] + e[1]]
        check(dh and (dh[0][2] == 0) == (fl == 3),
              "contexts disagree at %d: %s / %s" % (o, base, depth))
    one = status(h, 0, 8 * MiB, nbd.CMD_FLAG_REQ_ONE)
    check(all(len(v) == 1 for v in one.values()), "REQ_ONE: %s" % one)

    # Zero: plain, NO_HOLE, FAST_ZERO.
    h.zero(4096, MiB)
    check(h.pread(4096, MiB) == bytes(4096), "zero")
    check(h.pread(4096, MiB + 4096) == data[4096:8192], "zero too much")
    h.zero(4096, MiB + 8192, nbd.CMD_FLAG_NO_HOLE)
    check(h.pread(4096, MiB + 8192) == bytes(4096), "zero NO_HOLE")
    fast_zero(h, 4 * MiB, 8 * MiB)                # reads as zeros already
    h.pwrite(data, 10 * MiB)
    fast_zero(h, 4096, 10 * MiB)                  # over data
    h.zero(65536, 10 * MiB, nbd.CMD_FLAG_FUA)
    check(h.pread(65536, 10 * MiB) == bytes(65536), "zero + FUA")

    # Trim a whole block: it reads as zeros (the server may or may not
    # give the space back).
    h.pwrite(data, 12 * MiB)
    h.trim(2 * MiB, 12 * MiB)
    check(h.pread(65536, 12 * MiB) == bytes(65536), "trim")

    h.cache(MiB, 0)
    h.flush()
    h.shutdown()


def check_errors(uri):
    h = connect(uri, strict=False)
    size = h.get_size()
    MAX = h.get_block_size(nbd.SIZE_MAXIMUM)
    sector = h.get_block_size(nbd.SIZE_MINIMUM)
    E = errno
    expect_error("read past the end", E.EINVAL, h.pread, 4096, size)
    expect_error("read across the end", E.EINVAL, h.pread, 8192, size - 4096)
    expect_error("read at 2^63", E.EINVAL, h.pread, 512, 1 << 63)
    expect_error("write past the end", E.ENOSPC, h.pwrite, bytes(4096), size)
    expect_error("zero past the end", E.ENOSPC, h.zero, 4096, size)
    expect_error("trim past the end", E.EINVAL, h.trim, 4096, size)
    expect_error("cache past the end", E.EINVAL, h.cache, 4096, size)
    expect_error("block status past the end", E.EINVAL, status, h, size, 512)
    expect_error("misaligned read", E.EINVAL, h.pread, 100, 1)
    expect_error("misaligned write", E.EINVAL, h.pwrite, bytes(sector),
                 sector // 2)
    expect_error("misaligned trim", E.EINVAL, h.trim, 100, 0)
    expect_error("oversized read", E.EINVAL, h.pread, MAX + sector, 0)
    expect_error("oversized cache", E.EINVAL, h.cache, MAX + sector, 0)
    expect_error("zero-length read", E.EINVAL, h.pread, 0, 0)
    expect_error("zero-length write", E.EINVAL, h.pwrite, b"", 0)
    expect_error("REQ_ONE on a read", E.EINVAL, h.pread, 512, 0,
                 nbd.CMD_FLAG_REQ_ONE)
    expect_error("NO_HOLE on a write", E.EINVAL, h.pwrite, bytes(512), 0,
                 nbd.CMD_FLAG_NO_HOLE)
    # Still fine afterwards.
    check(len(h.pread(4096, 0)) == 4096, "read after errors")
    h.shutdown()

    # Without contexts, block status is invalid.
    h = connect(uri, contexts=False, strict=False)
    expect_error("block status without contexts", E.EINVAL, status, h, 0,
                 4096)
    h.shutdown()


def check_ro(uri):
    h = connect(uri, strict=False)
    check(h.is_read_only(), "read-only export not flagged read-only")
    check(not h.can_trim() and not h.can_zero() and not h.can_fua(),
          "read-only export advertises writes")
    check(h.can_flush() and h.can_multi_conn(), "flush/multi-conn")
    h.pread(65536, 0)
    expect_error("write", errno.EPERM, h.pwrite, bytes(4096), 0)
    expect_error("trim", errno.EPERM, h.trim, 4096, 0)
    expect_error("zero", errno.EPERM, h.zero, 4096, 0)
    expect_error("write + FUA", errno.EINVAL, h.pwrite, bytes(4096), 0,
                 nbd.CMD_FLAG_FUA)  # FUA not advertised: a bad flag
    h.flush()
    h.shutdown()


def wait_all(handles):
    for h in handles:
        while h.aio_in_flight() > 0:
            h.poll(-1)


def check_multi(uri, n):
    """n connections writing interleaved 64 KiB pieces of a 16 MiB area with
    32 requests in flight each; then one flush, then every connection reads
    the whole area back (with reads of mixed sizes in flight)."""
    handles = [connect(uri) for _ in range(n)]
    for h in handles:
        check(h.can_multi_conn(), "can_multi_conn")
    area, piece, base = 16 * MiB, 65536, 16 * MiB
    data = random.Random(7).randbytes(area)
    bufs = []
    for i in range(area // piece):
        h = handles[i % n]
        while h.aio_in_flight() >= 32:
            h.poll(-1)
        b = nbd.Buffer.from_bytearray(bytearray(data[i * piece:(i + 1) * piece]))
        bufs.append(b)
        h.aio_pwrite(b, base + i * piece)
    wait_all(handles)
    handles[-1].flush()
    rng = random.Random(3)
    for h in handles:
        reads, off = [], 0
        while off < area:
            ln = min(rng.choice([512, 4096, 65536, 1 << 20]), area - off)
            b = nbd.Buffer(ln)
            reads.append((off, ln, b, h.aio_pread(b, base + off)))
            off += ln
            while h.aio_in_flight() >= 48:
                h.poll(-1)
        wait_all([h])
        for (o, ln, b, cookie) in reads:
            check(h.aio_command_completed(cookie), "read not completed")
            check(b.to_bytearray() == data[o:o + ln],
                  "connection read mismatch at %d+%d" % (base + o, ln))
    for h in handles:
        h.shutdown()


def merged(extents, mask):
    """extents with their flags masked, neighbours with equal flags merged."""
    res = []
    for (o, ln, fl) in extents:
        fl &= mask
        if res and res[-1][2] == fl:
            res[-1][1] += ln
        else:
            res.append([o, ln, fl])
    return res


def check_map(uri, expect_file):
    """base:allocation's HOLE bit and qemu:allocation-depth exactly as
    expected.  ZERO is set on every hole, and also on stored data that
    lies in holes of the host file (the server asks the file, as qemu-nbd
    does): every range flagged ZERO must read as zeros."""
    with open(expect_file) as f:
        expect = json.load(f)
    h = connect(uri)
    base = full_map(h, "base:allocation")
    depth = full_map(h, "qemu:allocation-depth")
    got, exp = merged(base, nbd.STATE_HOLE), merged(expect["base"],
                                                    nbd.STATE_HOLE)
    check(got == exp, "base:allocation (HOLE bit)\n got    %s\n expect %s"
          % (got, exp))
    for (o, ln, fl) in base:
        check(not (fl & nbd.STATE_HOLE) or fl & nbd.STATE_ZERO,
              "hole without ZERO at %d+%d" % (o, ln))
        off = o
        while fl & nbd.STATE_ZERO and off < o + ln:
            n = min(o + ln - off, 1 << 20)
            check(h.pread(n, off) == bytes(n),
                  "ZERO extent %d+%d reads non-zero near %d" % (o, ln, off))
            off += n
    check(depth == expect["depth"], "qemu:allocation-depth\n got    %s\n"
          " expect %s" % (depth, expect["depth"]))
    h.shutdown()


def check_simple(uri):
    h = connect(uri, contexts=False, structured=False, strict=False)
    check(not h.get_structured_replies_negotiated(), "structured?")
    check(not h.can_df(), "DF advertised without structured replies")
    size = h.get_size()
    buf = h.pread(1 << 20, 0)
    check(len(buf) == 1 << 20, "simple read")
    expect_error("simple read past the end", errno.EINVAL, h.pread, 512,
                 size)
    check(h.pread(512, 0) == buf[:512], "read after a simple error")
    h.shutdown()


PIECE = 4096


def piece_data(offset, seed):
    return struct.pack(">QQ", offset, seed) * (PIECE // 16)


def check_ack(uri, out):
    """Acknowledged writes survive the server's shutdown.  Each piece is
    rewritten every round with a new seed; what it holds afterwards must be
    the last acknowledged write or one issued after it."""
    h = connect(uri, contexts=False)
    n = 64 * MiB // PIECE
    state = {}            # offset -> [last acked seed, [seeds after it]]
    acked = [0]
    dead = [False]
    order = list(range(n))
    random.Random(5).shuffle(order)

    def done(off, seed, err):
        if err.value:
            dead[0] = True
            return 1
        st = state[off]
        if seed in st[1]:
            idx = st[1].index(seed)
            st[0], st[1] = seed, st[1][idx + 1:]
        acked[0] += 1
        if acked[0] == 2000:
            print("started", flush=True)
        return 1
    seed = 0
    try:
        while not dead[0]:
            for i in order:
                off = i * PIECE
                seed += 1
                st = state.setdefault(off, [0, []])
                st[1].append(seed)
                buf = nbd.Buffer.from_bytearray(bytearray(piece_data(off, seed)))
                h.aio_pwrite(buf, off, lambda err, o=off, s=seed: done(o, s, err))
                while h.aio_in_flight() >= 32 and not dead[0]:
                    h.poll(-1)
                if dead[0]:
                    break
        while h.aio_in_flight() > 0:
            h.poll(-1)
    except nbd.Error:
        pass                  # the server went away: that was the point
    with open(out, "w") as f:
        json.dump({str(k): v for k, v in state.items()}, f)
    check(acked[0] >= 2000, "only %d writes acknowledged" % acked[0])


def check_ack_verify(raw, out):
    with open(out) as f:
        state = json.load(f)
    with open(raw, "rb") as f:
        img = f.read()
    for off, (last, later) in state.items():
        off = int(off)
        got = img[off:off + PIECE]
        allowed = [last] + later
        ok = any(got == (piece_data(off, s) if s else bytes(PIECE))
                 for s in allowed)
        check(ok, "piece at %d lost an acknowledged write (seed %d); holds "
              "%r..." % (off, last, got[:16]))


def main():
    what, uri = sys.argv[1], sys.argv[2]
    if what == "rw":
        check_rw(uri)
    elif what == "errors":
        check_errors(uri)
    elif what == "ro":
        check_ro(uri)
    elif what == "multi":
        check_multi(uri, int(sys.argv[3]))
    elif what == "map":
        check_map(uri, sys.argv[3])
    elif what == "simple":
        check_simple(uri)
    elif what == "ack":
        check_ack(uri, sys.argv[3])
    elif what == "ack-verify":
        check_ack_verify(uri, sys.argv[3])
    else:
        fail("unknown check " + what)


if __name__ == "__main__":
    main()
