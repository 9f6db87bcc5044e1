"""nbd-hostile.py: a raw-socket NBD client that misbehaves on purpose.

    python3 nbd-hostile.py SOCKET SIZE

SOCKET is vhd-nbd-server's Unix socket, serving the default export ""
(writable, SIZE bytes).  Each case opens its own connection, breaks the
protocol in one way, and checks that the server answers as proto.md says
(an error reply, or closing this connection only).  Exits 1 with a
"FAIL:" line on the first surprise.
"""
import socket
import struct
import sys
import threading
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCT_MAGIC = 0x668E33EF

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META = 6, 7, 8, 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR = 1 << 31
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_UNKNOWN = ERR + 1, ERR + 3, ERR + 6
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EINVAL, ENOSPC, EPERM = 22, 28, 1

SOCK = sys.argv[1]
SIZE = int(sys.argv[2])


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(SOCK)
    return s


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise EOFError("server closed after %d of %d bytes" % (len(out), n))
        out += b
    return out


def expect_closed(s, what):
    """The server must close this connection (it may send nothing more)."""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return
    except (ConnectionResetError, BrokenPipeError):
        return
    except socket.timeout:
        fail(what + ": server did not close the connection")


def greet(s, cflags=1):
    magic, opt, gflags = struct.unpack(">QQH", recv_exact(s, 18))
    check(magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting")
    check(gflags & 1, "server is not fixed newstyle")
    if cflags is not None:
        s.sendall(struct.pack(">I", cflags))


def send_opt(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def read_reply(s, opt):
    magic, ropt, rtype, ln = struct.unpack(">QIII", recv_exact(s, 20))
    check(magic == REP_MAGIC, "bad option reply magic %x" % magic)
    check(ropt == opt, "reply to option %d, expected %d" % (ropt, opt))
    return rtype, recv_exact(s, ln)


def final_reply(s, opt):
    """Skip informational replies; return the final reply type."""
    while True:
        rtype, data = read_reply(s, opt)
        if rtype not in (REP_SERVER, REP_INFO, REP_META):
            return rtype, data


def negotiated(structured=False):
    """A connection in transmission on export "" (via NBD_OPT_GO)."""
    s = connect()
    greet(s, 3)
    if structured:
        send_opt(s, OPT_STRUCTURED)
        check(final_reply(s, OPT_STRUCTURED)[0] == REP_ACK, "structured")
    send_opt(s, OPT_GO, struct.pack(">IH", 0, 0))
    rtype, _ = final_reply(s, OPT_GO)
    check(rtype == REP_ACK, "GO failed: %x" % rtype)
    return s


def request(s, cmd, offset, count, cookie, flags=0, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, cookie, offset,
                          count) + payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    check(magic == SIMPLE_MAGIC, "expected a simple reply, magic %x" % magic)
    return err, cookie


def structured_chunk(s):
    magic, flags, typ, cookie, ln = struct.unpack(">IHHQI", recv_exact(s, 20))
    check(magic == STRUCT_MAGIC, "expected a structured reply, magic %x"
          % magic)
    return flags, typ, cookie, recv_exact(s, ln)


# ---------------------------------------------------------------- handshake

def case_connect_close():
    s = connect()
    s.close()


def case_garbage_flags():
    s = connect()
    greet(s, None)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    expect_closed(s, "garbage client flags")


def case_unknown_client_flags():
    s = connect()
    greet(s, 0xFFFFFFFF)
    expect_closed(s, "unknown client flags")


def case_bad_option_magic():
    s = connect()
    greet(s)
    s.sendall(struct.pack(">QII", 0x1122334455667788, OPT_LIST, 0))
    expect_closed(s, "bad option magic")


def case_huge_option():
    s = connect()
    greet(s)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_INFO, 0xFFFFFFFF))
    expect_closed(s, "4 GiB option data")


def case_short_handshake():
    for n in (1, 7, 12):
        s = connect()
        greet(s)
        s.sendall(struct.pack(">QII", IHAVEOPT, OPT_LIST, 0)[:n])
        s.close()
    s = connect()
    recv_exact(s, 5)
    s.close()


def case_unknown_options():
    s = connect()
    greet(s)
    for opt in (0x1234, OPT_STARTTLS, 11, 4, 0):
        send_opt(s, opt, b"some data")
        rtype, _ = read_reply(s, opt)
        check(rtype == REP_ERR_UNSUP, "option %d: reply %x" % (opt, rtype))
    send_opt(s, OPT_LIST)                       # the stream is still in sync
    rtype, _ = final_reply(s, OPT_LIST)
    check(rtype == REP_ACK, "LIST after unknown options: %x" % rtype)
    send_opt(s, OPT_ABORT)
    check(read_reply(s, OPT_ABORT)[0] == REP_ACK, "ABORT")
    expect_closed(s, "after ABORT")


def case_malformed_options():
    s = connect()
    greet(s)
    bad = [
        (OPT_LIST, b"x"),                            # LIST takes no data
        (OPT_STRUCTURED, b"xx"),
        (OPT_INFO, struct.pack(">I", 100) + b"ab"),  # name beyond the data
        (OPT_GO, struct.pack(">IH", 0, 3) + b"\0\0"),  # 3 infos, 1 sent
        (OPT_INFO, b"\0\0"),
        (OPT_SET_META, struct.pack(">I", 0)),       # before STRUCTURED
    ]
    for opt, data in bad:
        send_opt(s, opt, data)
        rtype, _ = final_reply(s, opt)
        check(rtype == REP_ERR_INVALID, "option %d %r: reply %x"
              % (opt, data, rtype))
    send_opt(s, OPT_STRUCTURED)
    check(final_reply(s, OPT_STRUCTURED)[0] == REP_ACK, "structured")
    for data in (struct.pack(">II", 0, 1),                  # query missing
                 struct.pack(">III", 0, 1, 5000) + b"x",    # query too long
                 struct.pack(">III", 0, 1, 4) + b"base",    # no namespace
                 struct.pack(">II", 0, 0) + b"trailing"):
        send_opt(s, OPT_LIST_META, data)
        rtype, _ = final_reply(s, OPT_LIST_META)
        check(rtype == REP_ERR_INVALID, "LIST_META %r: %x" % (data, rtype))
    name = b"no-such-export"
    send_opt(s, OPT_GO, struct.pack(">I", len(name)) + name
             + struct.pack(">H", 0))
    rtype, _ = final_reply(s, OPT_GO)
    check(rtype == REP_ERR_UNKNOWN, "GO to a missing export: %x" % rtype)
    # Unknown namespaces are ignored: ACK with no context.
    q = b"x-foo:bar"
    send_opt(s, OPT_SET_META, struct.pack(">III", 0, 1, len(q)) + q)
    rtype, data = read_reply(s, OPT_SET_META)
    check(rtype == REP_ACK, "SET_META x-foo:bar: %x" % rtype)
    # Still usable: go, and read.
    send_opt(s, OPT_GO, struct.pack(">IH", 0, 0))
    check(final_reply(s, OPT_GO)[0] == REP_ACK, "GO after errors")
    request(s, CMD_READ, 0, 512, 1)
    flags, typ, cookie, _ = structured_chunk(s)
    check(cookie == 1, "read after handshake errors")
    s.close()


def case_export_name_missing():
    s = connect()
    greet(s)
    send_opt(s, OPT_EXPORT_NAME, b"missing")
    expect_closed(s, "EXPORT_NAME of a missing export")


def case_old_newstyle():
    s = connect()
    greet(s, 0)                     # not fixed newstyle
    send_opt(s, OPT_LIST)
    expect_closed(s, "LIST without fixed newstyle")
    s = connect()
    greet(s, 0)
    send_opt(s, OPT_EXPORT_NAME, b"")
    size, flags = struct.unpack(">QH", recv_exact(s, 10))
    check(size == SIZE, "EXPORT_NAME size %d" % size)
    recv_exact(s, 124)                          # zeroes: NO_ZEROES not set
    request(s, CMD_DISC, 0, 0, 1)
    expect_closed(s, "after DISC")


# ---------------------------------------------------------------- transmission

def case_bad_requests_simple():
    s = negotiated()
    request(s, 99, 0, 512, 1)                       # unknown command
    request(s, CMD_READ, SIZE, 512, 2)              # past the end
    request(s, CMD_WRITE, SIZE - 512, 1024, 3, payload=bytes(1024))
    request(s, CMD_FLUSH, 1, 0, 4)                  # flush with an offset
    request(s, CMD_READ, 0, 512, 5, flags=1 << 3)   # REQ_ONE on a read
    request(s, CMD_READ, 0, 512, 6, flags=1 << 2)   # DF, not negotiated
    request(s, 7, 0, 512, 7)                        # block status, no ctx
    request(s, CMD_READ, 0, 100, 8)                 # misaligned: allowed
    want = {1: EINVAL, 2: EINVAL, 3: ENOSPC, 4: EINVAL, 5: EINVAL,
            6: EINVAL, 7: EINVAL, 8: 0}
    for _ in range(len(want)):
        err, cookie = simple_reply(s)
        check(cookie in want, "unknown cookie %d" % cookie)
        check(err == want[cookie], "request %d: error %d, expected %d"
              % (cookie, err, want[cookie]))
        if cookie == 8:
            recv_exact(s, 100)
        del want[cookie]
    request(s, 0x1234, 0, 0, 9, flags=0xFFFF)
    err, cookie = simple_reply(s)
    check(err == EINVAL and cookie == 9, "garbage request")
    s.sendall(b"\xde\xad\xbe\xef" + bytes(24))      # bad request magic
    expect_closed(s, "bad request magic")


def case_bad_requests_structured():
    s = negotiated(structured=True)
    request(s, CMD_READ, SIZE - 512, 1024, 0xABCDEF)
    flags, typ, cookie, data = structured_chunk(s)
    check(cookie == 0xABCDEF and flags & 1, "structured error chunk")
    check(typ == (1 << 15) + 1, "error chunk type %d" % typ)
    err, mlen = struct.unpack(">IH", data[:6])
    check(err == EINVAL and mlen == len(data) - 6, "error chunk payload")
    request(s, CMD_DISC, 0, 0, 2)
    expect_closed(s, "after DISC")


def case_oversized_write():
    s = negotiated()
    request(s, CMD_WRITE, 0, 0x7FFFFFFF, 1)         # 2 GiB payload announced
    try:
        s.sendall(bytes(4096))
    except (BrokenPipeError, ConnectionResetError):
        return                                      # already closed: fine
    expect_closed(s, "2 GiB write")


def case_vanish_mid_write():
    s = negotiated()
    request(s, CMD_WRITE, 0, 1 << 20, 1, payload=bytes(1000))
    s.close()
    s = negotiated()                # vanish with requests in flight
    for i in range(16):
        request(s, CMD_WRITE, i << 20, 1 << 20, i, payload=bytes(1 << 20))
    s.close()
    s = negotiated()
    s.sendall(struct.pack(">IHH", REQ_MAGIC, 0, CMD_READ))   # half a header
    s.close()


def case_no_reader():
    """Pipeline reads and never read the replies, then vanish."""
    s = negotiated()
    s.settimeout(2)
    for i in range(200):
        try:
            request(s, CMD_READ, 0, 1 << 20, i)
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            break
    s.close()


def case_pipelined():
    """Many requests in flight: every cookie answered exactly once."""
    s = negotiated()
    n = 300

    def send_all():
        for i in range(n):
            request(s, CMD_READ, (i * 4096) % (SIZE - 65536),
                    4096 + i % 8 * 512, 1000 + i)
    sender = threading.Thread(target=send_all)
    sender.start()
    seen = set()
    for _ in range(n):
        err, cookie = simple_reply(s)
        check(err == 0 and 1000 <= cookie < 1000 + n and cookie not in seen,
              "pipelined reply %d error %d" % (cookie, err))
        seen.add(cookie)
        recv_exact(s, 4096 + (cookie - 1000) % 8 * 512)
    sender.join()
    request(s, CMD_DISC, 0, 0, 1)
    expect_closed(s, "after DISC")


def case_idle_crowd():
    """Fifty idle half-open connections while a client works."""
    crowd = [connect() for _ in range(50)]
    case_pipelined()
    for c in crowd:
        c.close()


CASES = [
    case_connect_close, case_garbage_flags, case_unknown_client_flags,
    case_bad_option_magic, case_huge_option, case_short_handshake,
    case_unknown_options, case_malformed_options, case_export_name_missing,
    case_old_newstyle, case_bad_requests_simple,
    case_bad_requests_structured, case_oversized_write,
    case_vanish_mid_write, case_no_reader, case_pipelined, case_idle_crowd,
]


def main():
    for case in CASES:
        t = time.monotonic()
        try:
            case()
        except (EOFError, OSError) as e:
            fail("%s: %s" % (case.__name__, e))
        print("ok %s (%.2fs)" % (case.__name__, time.monotonic() - t))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
