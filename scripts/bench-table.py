#!/usr/bin/env python3
"""Turn build/bench/results.tsv (written by scripts/bench.sh through
../shared/bench/peerbench.sh) into a markdown table: medians over the runs,
ours vs peer, ratio > 1 when we are better.

Usage: bench-table.py RESULTS.TSV  (the table goes to standard output)

Input lines:
  # bench<TAB>key=value ...           run description (bench.sh)
  # pair<TAB>GROUP<TAB>OURS<TAB>PEER<TAB>FILTER<TAB>NOTE
                                      which targets to compare; FILTER is a
                                      regex on the workload ('' = all)
  # <date> <host> nproc=.. load=a b c mode=..   peerbench invocation header
  suite<TAB>target<TAB>workload<TAB>...   peerbench's column header
  16 tab-separated fields                 one measurement (peerbench row)

The compact suite (bench.sh's own rows, same format) gets a section of its
own: its pairs' rows are suite "compact", and target "read-once" (cat of the
image) is the reference every compact row is also divided by.

So does the memory suite (suite "memory"): per server lifetime a
randread4k-qd16 row (fio), an nbdcopy-read row (wall time; "not finished in
Ns" when the cap stopped it) and a "(server lifetime" row whose maxrss= is
the server's VmHWM; the table shows the peak RSS against MEM_GOAL_MIB.
"""
import re
import statistics
import sys

COLS = ("suite target workload wall_s MBps_logical MBps_data iops lat_avg_us "
        "lat_p99_us srv_cpu_s srv_cpu_pct cli_cpu_pct other_cpu_pct out_bytes "
        "out_alloc note").split()
RSS = "peak RSS"
MEM_GOAL_MIB = 64        # the issue: serving a 2 TiB dynamic VHDX costs <= 64 MiB


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def note_field(note, key):
    m = re.search(r"(?:^|[;\s])" + re.escape(key) + r"=([^;\s]*)", note or "")
    return m.group(1) if m else None


def failed(r):
    n = r["note"]
    if r["workload"] == "mount" or "server failed" in n or "fio failed" in n \
            or "json parse failed" in n:
        return "failed"
    if "nbdcopy rc=" in n:
        return "nbdcopy rc=" + (note_field(n.replace("nbdcopy rc=", "rc="), "rc") or "?")
    v = note_field(n, "verify")
    if v and v.startswith("rc"):
        return "exit " + v[2:]
    if v == "FAIL":  # a wrong output's time is no result
        return "verify FAIL"
    return None


def metric(r):
    """-> (value, unit, higher_is_better) of one main row, or None."""
    wl, suite = r["workload"], r["suite"]
    if wl == RSS:
        kb = num(r["rss_kb"])
        return (kb / 1024 if kb is not None else None), "MiB", False
    if suite == "memory" and wl.startswith("nbdcopy"):
        done = "not finished" not in r["note"]
        return (num(r["wall_s"]) if done else None), "s", False
    if suite in ("convert", "compact"):
        w = num(r["wall_s"])
        f = num((note_field(r["note"], "fsync_after") or "").rstrip("s")) or 0.0
        return (w + f if w is not None else None), "s", False
    if wl.startswith("rand"):
        return num(r["iops"]), "IOPS", True
    return num(r["MBps_logical"]), "MB/s", True


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "IOPS":
        return "%.1fk IOPS" % (v / 1000) if v >= 1000 else "%.0f IOPS" % v
    if unit == "s":
        return "%.2f s" % v
    if unit == "MiB":
        return "%.1f MiB" % v
    return "%.0f %s" % (v, unit)


def human(b):
    b = num(b)
    if b is None:
        return "-"
    for u in ("B", "K", "M", "G", "T"):
        if abs(b) < 1024 or u == "T":
            return ("%.0f%s" if u == "B" else "%.2f%s") % (b, u)
        b /= 1024


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def last(xs):
    xs = [x for x in xs if x not in (None, "", "-")]
    return xs[-1] if xs else None


def main(path):
    meta, pairs, loads = [], [], []
    rows = {}            # (target, workload) -> [row dict]
    order = {}           # target -> [workload] in first-seen order
    aux = {}             # (target, main workload) -> [aux row]
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("# bench\t"):
            meta.append(line.split("\t", 1)[1])
            continue
        if line.startswith("# pair\t"):
            f = line.split("\t")[1:] + [""] * 5
            pairs.append(dict(group=f[0], ours=f[1], peer=f[2], filt=f[3], note=f[4]))
            continue
        if line.startswith("#"):
            m = re.search(r" load=([\d.]+) ([\d.]+) ([\d.]+)", line)
            if m:
                loads.append(float(m.group(1)))
            continue
        f = line.split("\t")
        if f[0] == "suite" or len(f) < len(COLS):
            continue
        r = dict(zip(COLS, f[:len(COLS)]))
        t, wl = r["target"], r["workload"]
        m = re.match(r"\s*\(image after (write-\S+)\)", wl)
        if m:
            aux.setdefault((t, "nbdcopy-" + m.group(1)), []).append(r)
            continue
        if re.match(r"\s*\((server|daemon) lifetime", wl):
            r["rss_kb"] = (note_field(r["note"], "maxrss") or "").rstrip("KB")
            r["workload"] = wl = RSS
        r["fail"] = failed(r)
        rows.setdefault((t, wl), []).append(r)
        if wl not in order.setdefault(t, []):
            order[t].append(wl)

    out = []
    kv = dict(x.split("=", 1) for m in meta for x in m.split() if "=" in x)
    out.append("## libvhd vs peers")
    out.append("")
    head = "%s on %s, %s cores; %s run(s) per row, medians; QUICK=%s; rev %s" % (
        kv.get("date", "?"), kv.get("host", "?"), kv.get("nproc", "?"), kv.get("runs", "?"),
        kv.get("quick", "0"), kv.get("rev", "?"))
    if kv.get("tools"):
        head += " (tools from %s)" % kv["tools"]
    out.append(head + "  ")
    load = "load average (1/5/15 min): start %s, end %s" % (
        " ".join(m.split("=", 1)[1] for m in meta if m.startswith("load_start=")) or "?",
        " ".join(m.split("=", 1)[1] for m in meta if m.startswith("load_end=")) or "?")
    if loads:
        load += "; 1-min load at each step %.2f-%.2f" % (min(loads), max(loads))
    out.append(load + (" (elapsed %s)" % kv["elapsed"] if "elapsed" in kv else "") + "  ")
    out.append("ratio > 1 means ours is better (throughput ours/peer; time and memory "
               "peer/ours). Convert time = wall + fsync of the output. "
               "Shared 2-core host: differences under ~1.5x are noise.")
    main_rows, compact_rows, memory_rows = [], [], []

    def agg(target, wl):
        rs = rows.get((target, wl), [])
        good = [r for r in rs if not r["fail"]]
        vals = [metric(r) for r in good]
        unit = metric(rs[0])[1] if rs else None
        hib = metric(rs[0])[2] if rs else True
        v = median([x[0] for x in vals])
        fails = [r["fail"] for r in rs if r["fail"]]
        return dict(rows=rs, good=good, v=v, unit=unit, hib=hib, fails=fails, n=len(rs))

    def cell(a):
        if not a["rows"]:
            return "-"
        if a["v"] is None:
            return "**FAIL** (%s)" % ", ".join(sorted(set(a["fails"]))) if a["fails"] else "-"
        s = fmt(a["v"], a["unit"])
        if a["fails"]:
            s += " (%d/%d runs failed)" % (len(a["fails"]), a["n"])
        return s

    def verify(rs):
        vs = [note_field(r["note"], "verify") for r in rs]
        vs = [v for v in vs if v]
        if not vs:
            return None
        bad = [v for v in vs if v != "ok"]
        if not bad:
            return "ok"
        return "**%s** (%d/%d)" % ("/".join(sorted(set(bad))), len(bad), len(vs))

    def compact_row(p, wl, o, q, ratio):
        ref = agg("read-once", wl)
        notes = [p["note"]] if p["note"] else []
        notes.append("n=%d/%d/%d" % (o["n"], q["n"], ref["n"]))
        row = lambda rel, notes: "| %s %s | %s | %s | %s | %s | %s | %s |" % (
            p["group"], wl, cell(o), cell(q), ratio, cell(ref), rel, "; ".join(notes))
        if not o["rows"]:           # not measured: the rest is in the row above
            return row("-", notes)
        rel = "%.2f" % (o["v"] / ref["v"]) if o["v"] and ref["v"] else "-"
        notes.append("verify %s/%s" % (verify(o["rows"]) or "-", verify(q["rows"]) or "-"))
        ob = lambda rs, k: human(last([r[k] for r in rs]))
        notes.append("file after: ours %s (alloc %s), peer %s (alloc %s), image %s (alloc %s)" % (
            ob(o["rows"], "out_bytes"), ob(o["rows"], "out_alloc"),
            ob(q["rows"], "out_bytes"), ob(q["rows"], "out_alloc"),
            ob(ref["rows"], "out_bytes"), ob(ref["rows"], "out_alloc")))
        fq = median([num((note_field(r["note"], "fsync_after") or "").rstrip("s")) for r in q["good"]])
        if fq is not None:
            notes.append("peer fsync %.2fs" % fq)
        rs = lambda a: median([num((note_field(r["note"], "maxrss") or "").rstrip("KB"))
                               for r in a["good"]])
        ro, rq = rs(o), rs(q)
        notes.append("maxrss %s vs %s" % (fmt(ro / 1024, "MiB") if ro else "-",
                                          fmt(rq / 1024, "MiB") if rq else "-"))
        for a, who in ((o, "ours"), (q, "peer")):
            if a["fails"] and a["v"] is not None:
                notes.append("%s: %s" % (who, ", ".join(sorted(set(a["fails"])))))
        return row(rel, notes)

    def memory_section(p):
        """The memory pair -> its two table rows."""
        o, q = agg(p["ours"], RSS), agg(p["peer"], RSS)
        mib = lambda kb: fmt(kb / 1024, "MiB") if kb is not None else "-"
        ratio = "%.2f" % (q["v"] / o["v"]) if o["v"] and q["v"] else "-"
        peak = [metric(r)[0] for r in o["good"]]
        peak = [x for x in peak if x is not None]
        if not peak or o["fails"]:
            goal = "-" if not o["fails"] else "**not measured** (failed)"
        else:
            goal = ("met" if max(peak) <= MEM_GOAL_MIB else "**not met**") + \
                " (max %s <= %d MiB)" % (fmt(max(peak), "MiB"), MEM_GOAL_MIB)
            if max(peak) > MEM_GOAL_MIB:
                goal = goal.replace("<=", ">")
        notes = [p["note"]] if p["note"] else []
        notes.append("n=%d/%d" % (o["n"], q["n"]))
        ro, rq = agg(p["ours"], "randread4k-qd16"), agg(p["peer"], "randread4k-qd16")
        s = "random 4k reads qd16 over the 2 TiB: %s vs %s" % (cell(ro), cell(rq))
        lat = lambda a: median([num(r["lat_avg_us"]) for r in a["good"]])
        lo, lq = lat(ro), lat(rq)
        if lo is not None and lq is not None:
            s += " (lat %.0f vs %.0f us)" % (lo, lq)
        notes.append(s)
        kb = lambda a, k: median([num((note_field(r["note"], k) or "").rstrip("KB"))
                                  for r in a["good"]])
        notes.append("RSS serving idle %s vs %s, peak after the random reads %s vs %s" % (
            mib(kb(o, "rss_serving")), mib(kb(q, "rss_serving")),
            mib(kb(o, "hwm_after_randread")), mib(kb(q, "hwm_after_randread"))))
        notes.append("verify %s/%s" % (verify(o["rows"]) or "-", verify(q["rows"]) or "-"))
        cpu = lambda a: median([num(r["srv_cpu_s"]) for r in a["good"]])
        co, cq = cpu(o), cpu(q)
        notes.append("server CPU %s vs %s s" % ("%.1f" % co if co is not None else "-",
                                                "%.1f" % cq if cq is not None else "-"))
        for a, who in ((o, "ours"), (q, "peer")):
            if a["fails"] and a["v"] is not None:
                notes.append("%s: %s" % (who, ", ".join(sorted(set(a["fails"])))))
        rows_ = ["| 2 TiB VHDX served: peak RSS | %s | %s | %s | %s | %s | %s |" % (
            cell(o), cell(q), ratio, goal, p["peer"], "; ".join(notes))]

        co, cq = agg(p["ours"], "nbdcopy-read"), agg(p["peer"], "nbdcopy-read")
        def ccell(a):
            unf = [r for r in a["good"] if "not finished" in r["note"]]
            if a["good"] and len(unf) == len(a["good"]):
                return "not finished in %s" % "/".join(sorted(set(
                    re.search(r"not finished in (\S+)", r["note"]).group(1) for r in unf)))
            s = cell(a)
            if unf:
                s += " (%d/%d runs not finished)" % (len(unf), len(a["good"]))
            return s
        ratio = "-"
        if co["v"] and cq["v"]:
            ratio = "%.2f" % (cq["v"] / co["v"])
        elif co["v"] and cq["good"]:        # the peer never finished: a lower bound
            w = median([num(r["wall_s"]) for r in cq["good"]])
            if w:
                ratio = "> %.0f" % (w / co["v"])
        notes = ["n=%d/%d" % (co["n"], cq["n"])]
        md = lambda a: median([num(r["MBps_data"]) for r in a["good"]])
        if md(co) is not None:
            notes.append("ours %.0f MB/s of written data" % md(co))
        notes.append("extent-aware: reads what base:allocation calls data (qemu's "
                     "vhdx driver reports all 2 TiB as data)")
        for a, who in ((co, "ours"), (cq, "peer")):
            if a["fails"]:
                notes.append("%s: %s" % (who, ", ".join(sorted(set(a["fails"])))))
        rows_.append("| 2 TiB VHDX: nbdcopy export -> null: | %s | %s | %s | - | %s | %s |" % (
            ccell(co), ccell(cq), ratio, p["peer"], "; ".join(notes)))
        return rows_

    for p in pairs:
        if any(r["suite"] == "memory" for t in (p["ours"], p["peer"])
               for (tt, _), rs in rows.items() if tt == t for r in rs):
            memory_rows += memory_section(p)
            continue
        wls = []
        for t in (p["ours"], p["peer"]):
            for wl in order.get(t, []):
                if wl not in wls:
                    wls.append(wl)
        if p["filt"]:
            wls = [w for w in wls if re.search(p["filt"], w)]
        wls = [w for w in wls if w != RSS] + [w for w in wls if w == RSS]
        for wl in wls:
            o, q = agg(p["ours"], wl), agg(p["peer"], wl)
            ratio = "-"
            if o["v"] and q["v"]:
                hib = (o if o["rows"] else q)["hib"]
                ratio = "%.2f" % (o["v"] / q["v"] if hib else q["v"] / o["v"])
            notes = []
            if p["note"]:
                notes.append(p["note"])
            if o["n"] or q["n"]:
                notes.append("n=%d/%d" % (o["n"], q["n"]))
            suite = (o["rows"] or q["rows"])[0]["suite"]
            if suite == "compact":
                compact_rows.append(compact_row(p, wl, o, q, ratio))
                continue
            if suite == "convert":
                vo, vq = verify(o["rows"]), verify(q["rows"])
                notes.append("verify %s/%s" % (vo or "-", vq or "-"))
                ob = lambda a, k: last([r[k] for r in a["rows"]])
                notes.append("out_bytes %s vs %s, out_alloc %s vs %s" % (
                    human(ob(o, "out_bytes")), human(ob(q, "out_bytes")),
                    human(ob(o, "out_alloc")), human(ob(q, "out_alloc"))))
                fs = lambda a: median([num((note_field(r["note"], "fsync_after") or "").rstrip("s"))
                                       for r in a["good"]])
                fo, fq = fs(o), fs(q)
                notes.append("fsync %s vs %s" % ("%.2fs" % fo if fo is not None else "-",
                                                 "%.2fs" % fq if fq is not None else "-"))
                rs = lambda a: median([num((note_field(r["note"], "maxrss") or "").rstrip("KB"))
                                       for r in a["good"]])
                ro, rq = rs(o), rs(q)
                notes.append("maxrss %s vs %s" % (fmt(ro / 1024, "MiB") if ro else "-",
                                                  fmt(rq / 1024, "MiB") if rq else "-"))
            elif wl == RSS:
                cpu = lambda a: median([num(r["srv_cpu_s"]) for r in a["good"]])
                co, cq = cpu(o), cpu(q)
                notes.append("%s CPU %s vs %s s" % (
                    "server" if suite == "nbd" else "daemon",
                    "%.1f" % co if co is not None else "-", "%.1f" % cq if cq is not None else "-"))
            else:
                if wl.startswith("nbdcopy-write"):
                    ao = aux.get((p["ours"], wl), [])
                    aq = aux.get((p["peer"], wl), [])
                    notes.append("verify %s/%s" % (verify(ao) or "-", verify(aq) or "-"))
                    if ao or aq:
                        notes.append("image out_bytes %s vs %s, out_alloc %s vs %s" % (
                            human(last([r["out_bytes"] for r in ao])),
                            human(last([r["out_bytes"] for r in aq])),
                            human(last([r["out_alloc"] for r in ao])),
                            human(last([r["out_alloc"] for r in aq]))))
                sc = lambda a: median([num(r["srv_cpu_pct"]) for r in a["good"]])
                so, sq = sc(o), sc(q)
                if so is not None or sq is not None:
                    notes.append("%s CPU %s vs %s%%" % (
                        "server" if suite == "nbd" else "daemon",
                        "%.0f" % so if so is not None else "-", "%.0f" % sq if sq is not None else "-"))
                if wl.startswith("rand"):
                    lat = lambda a: median([num(r["lat_avg_us"]) for r in a["good"]])
                    lo, lq = lat(o), lat(q)
                    if lo is not None and lq is not None:
                        notes.append("lat %.0f vs %.0f us" % (lo, lq))
            for a, who in ((o, "ours"), (q, "peer")):
                if a["fails"] and a["v"] is not None:
                    notes.append("%s: %s" % (who, ", ".join(sorted(set(a["fails"])))))
            label = "%s %s" % (p["group"], wl)
            main_rows.append("| %s | %s | %s | %s | %s | %s |" % (
                label, cell(o), cell(q), ratio, p["peer"], "; ".join(notes)))
    if main_rows:
        out += ["", "### peerbench workloads (4 GiB disk, 1 GiB of data; the "
                "\"NBD vhdx flush\" rows: a 2 GiB VHDX, fully allocated)", "",
                "| workload | ours | peer | ratio | peer name | notes |",
                "|---|---|---|---|---|---|"] + main_rows
    if compact_rows:
        out += ["", "### compact (2 GiB disk: 128 blocks of 16 MiB, the odd ones allocated zeros)", "",
                "ours = vhdtool compact in place (it flushes before it exits); peer = "
                "qemu-img convert to a new image + fsync of it (qemu-img has no in-place "
                "compact); read once = `cat` of the image. Every run on a fresh copy of the "
                "image, in the page cache (-cold: the page cache dropped after the copy, for "
                "every tool alike). The goal: ours / read once <= ~1.", "",
                "| workload | ours | peer | ratio | read once | ours / read once | notes |",
                "|---|---|---|---|---|---|---|"] + compact_rows
    if memory_rows:
        out += ["", "### memory (2 TiB dynamic VHDX, 1 MiB blocks, %s file, %s allocated: "
                "2048 x 64 KiB written all over the disk)" % (
                    human(kv.get("memory_image_bytes")), human(kv.get("memory_image_alloc"))), "",
                "Read-only servers; peak RSS = the server's VmHWM over its life: start, a "
                "qemu-io check of a few extents, fio random 4k reads qd16 over the whole "
                "export (%s), nbdcopy of the export to null: (cap %s, ours/qemu-nbd). "
                "The goal: ours <= %d MiB." % (kv.get("memory_fio_runtime", "?"),
                                              kv.get("memory_nbdcopy_cap", "?"), MEM_GOAL_MIB), "",
                "| workload | ours | peer | ratio | goal | peer name | notes |",
                "|---|---|---|---|---|---|---|"] + memory_rows
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
