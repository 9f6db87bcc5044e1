#!/usr/bin/env python3
"""Independent structural check of a VHD file, written from the VHD spec
(Virtual Hard Disk Image Format Specification, October 2006), for images
that libvhd writes.  qemu-img has no `check` for vpc, so this is the test
suite's own.

usage: vhd-validate.py [--creator XXXX] [--type fixed|dynamic|differencing]
                       [--size BYTES] [--block-size BYTES] [--blocks I,J,...] FILE

--blocks: the exact set of allocated BAT entries ("" for none).

Checks: trailing footer (cookie, checksum, version, data offset, disk type,
CHS geometry from the current size per the spec's algorithm); for dynamic
and differencing disks the footer copy at offset 0 equal to the trailing
one, the dynamic header (cookie, checksum, table offset, block size, BAT
size), and every BAT entry (sector-aligned, past the BAT, before the
trailing footer, blocks not overlapping, each block's bitmap + data inside
the file); for differencing disks a parent unique ID and at least one
W2ku/W2ru parent locator whose data lies inside the file.  Prints what
it found and exits 1 with the first problem.
"""
import argparse
import struct
import sys

SECTOR = 512


def checksum(buf, skip_off):
    s = 0
    for i, b in enumerate(buf):
        if skip_off <= i < skip_off + 4:
            continue
        s += b
    return (~s) & 0xFFFFFFFF


def chs(size):
    """CHS geometry from the spec's algorithm (appendix: CHS calculation)."""
    total = size // SECTOR
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = (cth + 1023) // 1024
        if heads < 4:
            heads = 4
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


class Bad(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def parse_footer(buf, where):
    need(len(buf) == SECTOR, "%s: short footer" % where)
    need(buf[0:8] == b"conectix", "%s: cookie %r, expected b'conectix'" % (where, buf[0:8]))
    (features, version, data_off, ts, creator, cver, chost, orig, cur,
     cyl, heads, spt, dtype, csum) = struct.unpack(">IIQI4sI4sQQHBBII", buf[8:68])
    want = checksum(buf, 64)
    need(csum == want, "%s: checksum %#x, computed %#x" % (where, csum, want))
    need(version == 0x00010000, "%s: file format version %#x" % (where, version))
    need(features & 2, "%s: features %#x lacks the reserved bit 0x2" % (where, features))
    return dict(data_off=data_off, creator=creator, orig=orig, cur=cur,
                geom=(cyl, heads, spt), dtype=dtype, uuid=buf[68:84],
                saved=buf[84])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--creator")
    ap.add_argument("--type", choices=["fixed", "dynamic", "differencing"])
    ap.add_argument("--size", type=int)
    ap.add_argument("--block-size", type=int)
    ap.add_argument("--blocks")
    ap.add_argument("file")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        data = f.read()
    fsize = len(data)
    need(fsize >= SECTOR and fsize % SECTOR == 0,
         "file size %d is not a positive multiple of 512" % fsize)
    ft = parse_footer(data[-SECTOR:], "trailing footer")
    types = {2: "fixed", 3: "dynamic", 4: "differencing"}
    need(ft["dtype"] in types, "disk type %d" % ft["dtype"])
    typ = types[ft["dtype"]]
    size = ft["cur"]
    need(size % SECTOR == 0, "current size %d not a multiple of 512" % size)
    if a.type:
        need(typ == a.type, "disk type %s, expected %s" % (typ, a.type))
    if a.size is not None:
        need(size == a.size, "current size %d, expected %d" % (size, a.size))
    if a.creator:
        need(ft["creator"] == a.creator.encode(),
             "creator %r, expected %r" % (ft["creator"], a.creator))
    need(ft["geom"] == chs(size),
         "CHS %s, spec algorithm gives %s for %d bytes" % (ft["geom"], chs(size), size))
    need(ft["uuid"] != bytes(16), "unique ID is all zero")
    print("%s: %s, current size %d, CHS %d/%d/%d, creator %r"
          % (a.file, typ, size, *ft["geom"], ft["creator"].decode("latin-1")))

    if typ == "fixed":
        need(ft["data_off"] == 0xFFFFFFFFFFFFFFFF,
             "fixed disk data offset %#x, expected all ones" % ft["data_off"])
        need(fsize == size + SECTOR,
             "fixed disk file is %d bytes, expected size + 512 = %d" % (fsize, size + SECTOR))
        return

    head = parse_footer(data[:SECTOR], "footer copy at offset 0")
    need(data[:SECTOR] == data[-SECTOR:],
         "footer copy at offset 0 differs from the trailing footer")
    hoff = ft["data_off"]
    need(hoff % SECTOR == 0 and hoff + 1024 <= fsize - SECTOR,
         "dynamic header offset %d outside the file" % hoff)
    dh = data[hoff:hoff + 1024]
    need(dh[0:8] == b"cxsparse", "dynamic header cookie %r" % dh[0:8])
    (d_off, bat_off, hver, max_ent, bsize, csum) = struct.unpack(">QQIIII", dh[8:40])
    want = checksum(dh, 36)
    need(csum == want, "dynamic header checksum %#x, computed %#x" % (csum, want))
    need(d_off == 0xFFFFFFFFFFFFFFFF, "dynamic header data offset %#x" % d_off)
    need(hver == 0x00010000, "dynamic header version %#x" % hver)
    need(bsize >= SECTOR and bsize & (bsize - 1) == 0,
         "block size %d not a power of two" % bsize)
    need(max_ent == (size + bsize - 1) // bsize,
         "max table entries %d, expected %d for %d bytes in %d-byte blocks"
         % (max_ent, (size + bsize - 1) // bsize, size, bsize))
    need(bat_off % SECTOR == 0, "BAT offset %d not sector-aligned" % bat_off)
    bat_bytes = (max_ent * 4 + SECTOR - 1) // SECTOR * SECTOR
    need(bat_off >= hoff + 1024 or bat_off + bat_bytes <= hoff,
         "BAT overlaps the dynamic header")
    need(bat_off + bat_bytes <= fsize - SECTOR, "BAT runs past the trailing footer")
    bat = struct.unpack(">%dI" % max_ent, data[bat_off:bat_off + max_ent * 4])
    bitmap = (bsize // SECTOR + 7) // 8
    bitmap = (bitmap + SECTOR - 1) // SECTOR * SECTOR
    meta_end = max(bat_off + bat_bytes, hoff + 1024)
    used = []
    for i, e in enumerate(bat):
        if e == 0xFFFFFFFF:
            continue
        start = e * SECTOR
        end = start + bitmap + bsize
        need(start >= meta_end,
             "BAT[%d] = sector %d lies inside the metadata (ends at %d)" % (i, e, meta_end))
        need(end <= fsize - SECTOR,
             "BAT[%d] = sector %d: block ends at %d, past the trailing footer at %d"
             % (i, e, end, fsize - SECTOR))
        used.append((start, end, i))
    used.sort()
    for (s1, e1, i1), (s2, e2, i2) in zip(used, used[1:]):
        need(e1 <= s2, "blocks %d and %d overlap in the file" % (i1, i2))
    print("  block size %d, %d of %d blocks allocated" % (bsize, len(used), max_ent))
    if a.block_size is not None:
        need(bsize == a.block_size, "block size %d, expected %d" % (bsize, a.block_size))
    if a.blocks is not None:
        want = sorted(int(x) for x in a.blocks.split(",") if x)
        got = sorted(i for _s, _e, i in used)
        need(got == want, "allocated blocks %s, expected %s" % (got, want))

    if typ == "differencing":
        need(dh[40:56] != bytes(16), "parent unique ID is all zero")
        name = dh[64:64 + 512].decode("utf-16-be", "replace").rstrip("\0")
        found = []
        for k in range(8):
            ent = dh[576 + 24 * k:576 + 24 * (k + 1)]
            code, space, length, _res, off = struct.unpack(">4sIII Q".replace(" ", ""), ent)
            if code == bytes(4):
                continue
            need(off + space <= fsize - SECTOR and off >= SECTOR,
                 "parent locator %r data at %d+%d outside the file" % (code, off, space))
            need(length <= space, "parent locator %r length %d > space %d" % (code, length, space))
            if code in (b"W2ku", b"W2ru"):
                found.append((code.decode(),
                              data[off:off + length].decode("utf-16-le", "replace")))
        need(found, "no W2ku or W2ru parent locator")
        print("  parent %r, locators %s" % (name, found))


if __name__ == "__main__":
    try:
        main()
    except Bad as e:
        sys.exit("vhd-validate: %s: %s" % (sys.argv[-1], e))
