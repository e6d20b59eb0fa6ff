#!/usr/bin/env python3
"""Writes a realistic benchmark account straight into a Dovecot Maildir++ tree.

Sizes from 2 KB to 2 MB (about 10% carry a base64 attachment of 200 KB - 2 MB), six folders
including a non-ASCII one, mixed flags. Deterministic: the same arguments give the same bytes.
Usage: seed.py MAILDIR COUNT [PROFILE] [inbox]
With "inbox" every message goes to INBOX (a POP3 maildrop).
PROFILE "realistic" (default) is the mix above; "small" keeps every message under ~100 KB (text
1.5 - 8 KB, attachments 20 - 100 KB) so that 100,000 messages fit in about 1 GB.
"""
import os
import random
import sys

FOLDERS = ["", ".Archive", ".Sent", ".Lists.rust", ".Lists.debian", ".Entw&APw-rfe"]
WEIGHTS = [40, 25, 10, 10, 10, 5]
WORDS = ("mail sync archive server folder message rust debian release backup offline search "
         "index flag seen answered draft thread reply forward attachment kernel patch review").split()


def body(rng, n, size):
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def message(rng, n, profile):
    attach = rng.random() < 0.10
    if profile == "small":
        text_size = rng.randint(1500, 8000)
    else:
        text_size = rng.randint(1500, 40000) if rng.random() < 0.9 else rng.randint(40000, 200000)
    head = (f"From: Sender {n % 97} <sender{n % 97}@example.org>\n"
            f"To: bench@example.org\n"
            f"Subject: benchmark message {n} about {rng.choice(WORDS)}\n"
            f"Message-ID: <bench{n}@arctern.example>\n"
            f"Date: Mon, 2 Nov 2026 10:00:00 +0000\n"
            f"MIME-Version: 1.0\n")
    if not attach:
        return (head + "Content-Type: text/plain; charset=utf-8\n\n" + body(rng, n, text_size)).encode()
    size = rng.randint(20_000, 100_000) if profile == "small" else rng.randint(200_000, 2_000_000)
    raw = rng.randbytes(size * 3 // 4)
    import base64
    b64 = base64.encodebytes(raw).decode()
    return (head + "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\n"
            "Content-Type: text/plain\n\n" + body(rng, n, 2000) +
            "--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
            f"filename=\"file{n}.bin\"\nContent-Transfer-Encoding: base64\n\n" + b64 + "--b--\n").encode()


def flags(rng):
    r = rng.random()
    if r < 0.55:
        return "S"
    if r < 0.65:
        return "FS"
    if r < 0.72:
        return "RS"
    return ""


def main():
    root, count = sys.argv[1], int(sys.argv[2])
    profile = sys.argv[3] if len(sys.argv) > 3 else "realistic"
    inbox_only = len(sys.argv) > 4 and sys.argv[4] == "inbox"
    if profile not in ("realistic", "small"):
        sys.exit(f"unknown size profile {profile!r}: realistic or small")
    rng = random.Random(42)
    for f in FOLDERS:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, f, sub), exist_ok=True)
    total = 0
    base_time = 1_700_000_000
    for n in range(count):
        folder = rng.choices(FOLDERS, WEIGHTS)[0]
        if inbox_only:
            folder = ""
        data = message(rng, n, profile)
        total += len(data)
        crlf = len(data) + data.count(b"\n")
        name = f"{base_time + n}.M{n}P1.bench,S={len(data)},W={crlf}:2,{flags(rng)}"
        path = os.path.join(root, folder, "cur", name)
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (base_time + n, base_time + n))
    print(f"{count} messages, {total / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
