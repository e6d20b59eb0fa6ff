#!/usr/bin/env python3
"""The physical limits a sync engine competes with.

fetch PORT USER PASS: one client that only streams `UID FETCH 1:* BODY.PEEK[]` of every folder to
nowhere (no parsing beyond finding the tagged OK).
fsync SRC DST: writes every file under SRC again under DST, each with its own fsync.
"""
import os
import socket
import sys


def fetch(port, user, password):
    s = socket.create_connection(("127.0.0.1", int(port)))
    buf = b""

    def until(tag):
        nonlocal buf
        marker = tag.encode() + b" "
        while True:
            i = buf.find(b"\r\n" + marker)
            if buf.startswith(marker):
                i = -2
            if i != -1:
                end = buf.find(b"\r\n", i + 2)
                if end != -1:
                    line, buf = buf[: end + 2], buf[end + 2:]
                    return line
            chunk = s.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed")
            # Keep only the tail: bodies go to nowhere.
            buf = (buf + chunk)[-4096:]

    buf = s.recv(4096)
    s.sendall(f"a LOGIN {user} {password}\r\n".encode())
    until("a")
    s.sendall(b'l LIST "" "*"\r\n')
    names = []
    data = b""
    while b"\r\nl OK" not in data and not data.startswith(b"l OK"):
        data += s.recv(65536)
    for line in data.split(b"\r\n"):
        if line.startswith(b"* LIST"):
            names.append(line.rsplit(b" ", 1)[1].decode())
    buf = b""
    for i, name in enumerate(names):
        s.sendall(f"s{i} SELECT {name}\r\nf{i} UID FETCH 1:* BODY.PEEK[]\r\n".encode())
        until(f"s{i}")
        until(f"f{i}")
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


if __name__ == "__main__":
    if sys.argv[1] == "fetch":
        fetch(*sys.argv[2:5])
    else:
        fsync_copy(sys.argv[2], sys.argv[3])
