#!/usr/bin/env python3
"""The physical limits a sync engine competes with.

fetch PORT USER PASS: one client that only streams `UID FETCH 1:* BODY.PEEK[]` of every folder to
nowhere (no parsing beyond finding the tagged OK).
fsync SRC DST: writes every file under SRC again under DST, each with its own fsync.
append PORT USER PASS MAILDIR: one client that only uploads every message of a Maildir++ tree
(LF turned into CRLF) into folders of an empty account, 100 messages (at most 32 MB) per
MULTIAPPEND command: what the server costs for taking the bytes, with nothing else to do.
"""
import os
import socket
import sys


def fetch(port, user, password):
    s = socket.create_connection(("127.0.0.1", int(port)))
    f = s.makefile("rb", buffering=1 << 20)
    sink = bytearray(1 << 20)
    view = memoryview(sink)

    def response(tag):
        """Reads up to the tagged line, discarding literals; returns the untagged lines."""
        lines = []
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            while line.endswith(b"}\r\n") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-3])
                while n > 0:
                    got = f.readinto(view[: min(n, len(sink))])
                    if not got:
                        raise SystemExit("connection closed")
                    n -= got
                line = f.readline()
            if line.startswith(tag.encode() + b" "):
                return lines
            lines.append(line)

    f.readline()  # greeting
    s.sendall(f"a LOGIN {user} {password}\r\n".encode())
    response("a")
    s.sendall(b'l LIST "" "*"\r\n')
    names = [l.rstrip(b"\r\n").rsplit(b" ", 1)[1].decode() for l in response("l") if l.startswith(b"* LIST")]
    for i, name in enumerate(names):
        s.sendall(f"s{i} SELECT {name}\r\nf{i} UID FETCH 1:* BODY.PEEK[]\r\n".encode())
        response(f"s{i}")
        response(f"f{i}")
    s.sendall(b"z LOGOUT\r\n")


def fsync_copy(src, dst):
    for dirpath, _, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(dirpath, src))
        os.makedirs(out, exist_ok=True)
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                data = fh.read()
            fd = os.open(os.path.join(out, f), os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)


def append(port, user, password, root):
    s = socket.create_connection(("127.0.0.1", int(port)))
    f = s.makefile("rb")
    f.readline()  # greeting

    def command(data):
        s.sendall(data)
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            if line.startswith(b"t "):
                if not line.startswith(b"t OK"):
                    raise SystemExit(line.decode(errors="replace"))
                return

    command(f"t LOGIN {user} {password}\r\n".encode())
    folders = [(b"INBOX", root)]
    for i, d in enumerate(sorted(os.listdir(root))):
        if d.startswith(".") and os.path.isdir(os.path.join(root, d, "cur")):
            folders.append((b"F%d" % i, os.path.join(root, d)))
    for wire, path in folders:
        if wire != b"INBOX":
            command(b"t CREATE %s\r\n" % wire)
        batch, size = [], 0

        def flush():
            if batch:
                out = bytearray(b"t APPEND " + wire)
                for m in batch:
                    out += b" (\\Seen) {%d+}\r\n" % len(m) + m
                command(bytes(out + b"\r\n"))
            batch.clear()

        for sub in ("cur", "new"):
            for name in os.listdir(os.path.join(path, sub)):
                with open(os.path.join(path, sub, name), "rb") as fh:
                    data = fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                if batch and (len(batch) >= 100 or size + len(data) > 32 << 20):
                    flush()
                    size = 0
                batch.append(data)
                size += len(data)
        flush()
    s.sendall(b"z LOGOUT\r\n")


if __name__ == "__main__":
    if sys.argv[1] == "fetch":
        fetch(*sys.argv[2:5])
    elif sys.argv[1] == "append":
        append(*sys.argv[2:6])
    else:
        fsync_copy(sys.argv[2], sys.argv[3])
