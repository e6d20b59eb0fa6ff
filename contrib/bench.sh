#!/usr/bin/env bash
# Benchmark arctern against mbsync (isync) and offlineimap3 on the same private Dovecot and the
# same data, in one run, and write the table to BENCHMARKS.md.
#   contrib/bench.sh [--messages N] [--runs R] [--skip-offlineimap] [--profile realistic|small]
#                    [--append] [--search] [--only SCENARIO,...]
# --only runs just these scenarios (pull, nochange, changes, moves, adopt, push, migrate, pop3, limits); the
# ones that need a pulled Maildir get one from an unrecorded arctern pull.
# --search runs the search scenarios instead (contrib/bench/search.sh): arctern pulls the account
# once, then arctern, notmuch and mu index that Maildir, and arctern and notmuch answer the same
# query set (latency and agreement).
# --profile small keeps messages under ~100 KB (100,000 messages in about 1 GB); --append adds the
# run's table to BENCHMARKS.md as a new section instead of replacing the file.
# Scenarios, each tool from its own clean local side: initial pull; resync with no change; resync
# after 200 server-side changes (flags, new mail, expunges); the same with 50 of the 200 moves of
# messages with attachments (bytes the server sent); arctern adopting mbsync's Maildir
# with fresh state (bytes copied and IMAP traffic); push of 2,000 new local messages; a
# migration (`arctern push` of the whole pulled Maildir to an empty account, against mbsync
# pushing a copy of the same Maildir with `Sync Push` + `Create Far`); a
# POP3 pull of a 2,000-message maildrop (arctern against getmail6, both leaving mail on the server). The
# limits: one client streaming every body over IMAP, and writing the same files with an fsync each.
# Reports the median wall time of R runs (default 3), peak RSS, and each peer's time / arctern's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MESSAGES=10000
RUNS=3
SKIP_OFFLINEIMAP=0
PROFILE=realistic
APPEND=0
SEARCH=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) MESSAGES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --skip-offlineimap) SKIP_OFFLINEIMAP=1; shift ;;
    --profile) PROFILE=$2; shift 2 ;;
    --append) APPEND=1; shift ;;
    --search) SEARCH=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

contrib/install-deps.sh --bench
[ "$SEARCH" = 1 ] && { command -v notmuch >/dev/null && command -v mu >/dev/null || contrib/install-deps.sh --search; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time
cargo build --release --quiet
ARCTERN=$ROOT/target/release/arctern

B=/tmp/arctern-bench
PORT=${BENCH_PORT:-10993}
POP3_PORT=$((PORT + 1))
stop_server() { [ -f "$B/run/master.pid" ] && kill "$(cat "$B/run/master.pid")" 2>/dev/null || true; }
trap stop_server EXIT
stop_server
rm -rf "$B"
mkdir -p "$B"/{run,state,mail,results}
chmod 755 "$B"
# shellcheck source=contrib/lib/private-dovecot.sh
. contrib/lib/private-dovecot.sh
private_dovecot_users
: > "$B/passwd"
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
for u in bench pop push-arctern push-mbsync push-offlineimap mig-arctern mig-mbsync; do
  echo "$u:{PLAIN}secret:$MUID:$MGID::$B/mail/$u::" >> "$B/passwd"
done
write_private_dovecot_conf "$B" "$PORT" arctern-bench "$POP3_PORT"
D="doveadm -c $B/dovecot.conf"

echo "== seeding $MESSAGES messages"
SEED=$(python3 contrib/bench/seed.py "$B/mail/bench" "$MESSAGES" "$PROFILE")
echo "$SEED"
POP_SEED=$(python3 contrib/bench/seed.py "$B/mail/pop" 2000 "$PROFILE" inbox)
echo "POP3 maildrop: $POP_SEED"
chown -R "$MUID:$MGID" "$B/mail"
start_private_dovecot "$B"
$D force-resync -u bench '*'

# --- the tools -----------------------------------------------------------------------------
config_for() { # tool user localdir
  local tool=$1 user=$2 dir=$3
  case $tool in
    arctern) cat > "$dir/arctern.toml" <<EOT
state_dir = "$dir/state"
# The default config, as a user runs it: the search index is built and kept up to date in the
# same command (the peers index nothing). Search itself is measured by --search.
[accounts.b]
maildir = "$dir/Mail"
[accounts.b.imap]
host = "127.0.0.1"
port = $PORT
tls = "none"
user = "$user"
password = "secret"
EOT
    ;;
    mbsync) cat > "$dir/mbsyncrc" <<EOT
IMAPAccount b
Host 127.0.0.1
Port $PORT
User $user
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore b-far
Account b

MaildirStore b-near
Inbox $dir/Mail
SubFolders Maildir++

Channel b
Far :b-far:
Near :b-near:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
EOT
    ;;
    offlineimap) cat > "$dir/offlineimaprc" <<EOT
[general]
accounts = b
metadata = $dir/meta
[Account b]
localrepository = l
remoterepository = r
[Repository l]
type = Maildir
localfolders = $dir/Mail
[Repository r]
type = IMAP
remotehost = 127.0.0.1
remoteport = $PORT
remoteuser = $user
remotepass = secret
ssl = no
starttls = no
expunge = no
EOT
    ;;
  esac
}
run_tool() { # tool dir -> runs one sync, prints "seconds maxrss_kb"
  local tool=$1 dir=$2 out
  case $tool in
    arctern) cmd=("$ARCTERN" -c "$dir/arctern.toml" sync) ;;
    mbsync) cmd=(mbsync -c "$dir/mbsyncrc" -a -q) ;;
    offlineimap) cmd=(offlineimap -c "$dir/offlineimaprc" -o -u quiet) ;;
  esac
  out=$(/usr/bin/time -f "%e %M" "${cmd[@]}" 2>&1 >/dev/null | tail -n 1)
  echo "$out"
}
fresh_local() { # tool user -> dir
  local dir=$B/local-$1-$2
  rm -rf "$dir"; mkdir -p "$dir/Mail"
  config_for "$1" "$2" "$dir"
  echo "$dir"
}
TOOLS=(arctern mbsync)
[ "$SKIP_OFFLINEIMAP" = 1 ] || TOOLS+=(offlineimap)
record() { echo "$1 $2 $3" >> "$B/results/raw"; }   # scenario tool "secs rss"

if [ "$SEARCH" = 1 ]; then
  dir=$(fresh_local arctern bench)
  "$ARCTERN" -c "$dir/arctern.toml" sync
  # shellcheck source=contrib/bench/search.sh
  . contrib/bench/search.sh
else
if want pull; then
echo "== initial pull"
for tool in "${TOOLS[@]}"; do
  for r in $(seq "$RUNS"); do
    dir=$(fresh_local "$tool" bench)
    res=$(run_tool "$tool" "$dir"); record pull "$tool" "$res"; echo "  $tool pull #$r: $res"
  done
done
else
  dir=$(fresh_local arctern bench); "$ARCTERN" -c "$dir/arctern.toml" sync >/dev/null
  dir=$(fresh_local mbsync bench); run_tool mbsync "$dir" >/dev/null
fi
if want nochange; then
echo "== resync, no change"
for r in $(seq "$RUNS"); do
  for tool in "${TOOLS[@]}"; do
    res=$(run_tool "$tool" "$B/local-$tool-bench"); record nochange "$tool" "$res"; echo "  $tool no-change #$r: $res"
  done
done
fi
if want changes; then
echo "== resync after 200 server-side changes"
next=$MESSAGES
for r in $(seq "$RUNS"); do
  # 100 flag changes, 50 new messages, 50 expunges, spread over INBOX and Archive.
  lo=$(( (r - 1) * 60 + 1 ))
  $D flags add -u bench '\Flagged' mailbox INBOX uid "$lo:$((lo + 49))" >/dev/null
  $D flags remove -u bench '\Seen' mailbox Archive uid "$lo:$((lo + 49))" >/dev/null
  for i in $(seq 50); do
    next=$((next + 1))
    printf 'From: new@example.org\r\nSubject: new %d\r\nMessage-ID: <new%d@bench>\r\n\r\nnew mail %d\r\n' "$next" "$next" "$next" \
      | $D save -u bench -m INBOX
  done
  $D expunge -u bench mailbox Archive uid "$((lo + 100)):$((lo + 149))" >/dev/null
  for tool in "${TOOLS[@]}"; do
    res=$(run_tool "$tool" "$B/local-$tool-bench"); record changes "$tool" "$res"; echo "  $tool 200 changes #$r: $res"
  done
done
fi
if want moves; then
echo "== resync after 200 server-side changes, 50 of them moves of messages with attachments"
# 50 messages over 40 KB moved INBOX -> Archive (UID MOVE, as a mail client on another machine
# does), 100 flag changes, 25 new messages, 25 expunges. Bytes: what the server sent to each
# tool in its run (Dovecot's logout lines, out=); only the new mail needs fetching.
: > "$B/results/moves"
next=$((MESSAGES + 100000))
for r in $(seq "$RUNS"); do
  lo=$(( (r - 1) * 60 + 2001 ))
  # awk reads the whole listing (head would close the pipe early: SIGPIPE fails the pipeline).
  big=$($D search -u bench mailbox INBOX larger 40k | awk 'NR <= 50 {print $2}' | paste -sd, -)
  $D move -u bench Archive mailbox INBOX uid "$big" >/dev/null
  $D flags add -u bench '\Flagged' mailbox INBOX uid "$lo:$((lo + 49))" >/dev/null
  $D flags add -u bench '\Answered' mailbox Archive uid "$lo:$((lo + 49))" >/dev/null
  for i in $(seq 25); do
    next=$((next + 1))
    printf 'From: new@example.org\r\nSubject: new %d\r\nMessage-ID: <new%d@bench>\r\n\r\nnew mail %d\r\n' "$next" "$next" "$next" \
      | $D save -u bench -m INBOX
  done
  $D expunge -u bench mailbox Archive uid "$((lo + 100)):$((lo + 124))" >/dev/null
  for tool in "${TOOLS[@]}"; do
    mark=$(wc -l < "$B/dovecot.log")
    res=$(run_tool "$tool" "$B/local-$tool-bench"); record moves "$tool" "$res"
    out=$(tail -n +"$((mark + 1))" "$B/dovecot.log" | grep -o ' out=[0-9]*' | awk -F= '{o += $2} END {print o + 0}')
    echo "$tool $out" >> "$B/results/moves"
    echo "  $tool 200 changes with 50 moves #$r: $res; $out bytes from the server"
  done
done
fi
if want adopt; then
echo "== adopting mbsync's Maildir with fresh arctern state"
# A copy of the Maildir mbsync keeps (its state in each folder, SyncState *), current with the
# server: arctern pairs by mbsync's records, so what moves is only what is new (nothing here).
# Bytes: message bytes arctern copied (its metrics) and the whole IMAP traffic of the run
# (Dovecot's logout lines: in = sent by arctern, out = sent by the server).
: > "$B/results/adopt"
for r in $(seq "$RUNS"); do
  dir=$B/local-adopt-$r
  rm -rf "$dir"; mkdir -p "$dir"
  cp -a "$B/local-mbsync-bench/Mail" "$dir/Mail"
  config_for arctern bench "$dir"
  sed -i "1i metrics_file = \"$dir/metrics.prom\"" "$dir/arctern.toml"
  mark=$(wc -l < "$B/dovecot.log")
  res=$(run_tool arctern "$dir"); record adopt arctern "$res"; echo "  arctern adopt #$r: $res"
  traffic=$(tail -n +"$((mark + 1))" "$B/dovecot.log" | grep -o 'in=[0-9]* out=[0-9]*' \
    | awk -F'[= ]' '{i += $2; o += $4} END {print i + 0, o + 0}')
  down=$(grep '^arctern_bytes_synced_total' "$dir/metrics.prom" | grep 'down' | awk '{s += $2} END {print s + 0}')
  up=$(grep '^arctern_bytes_synced_total' "$dir/metrics.prom" | grep 'up' | awk '{s += $2} END {print s + 0}')
  files=$(find "$dir/Mail" -path '*/cur/*' -type f -o -path '*/new/*' -type f | wc -l)
  echo "$down $up $traffic $files" >> "$B/results/adopt"
  echo "    message bytes down $down, up $up; IMAP traffic from arctern $(echo "$traffic" | cut -d' ' -f1), from the server $(echo "$traffic" | cut -d' ' -f2); $files files"
done
fi
if want push; then
echo "== push of 2000 new local messages"
for tool in "${TOOLS[@]}"; do
  for r in $(seq "$RUNS"); do
    stop_user="push-$tool"
    rm -rf "$B/mail/$stop_user"
    $D mailbox create -u "$stop_user" Archive >/dev/null 2>&1 || true
    dir=$(fresh_local "$tool" "$stop_user")
    run_tool "$tool" "$dir" >/dev/null   # first contact: empty both sides, state created
    inbox="$dir/Mail"; [ "$tool" = offlineimap ] && inbox="$dir/Mail/INBOX"   # offlineimap keeps INBOX in a subfolder
    python3 - "$inbox" <<'PY'
import os, sys
root = sys.argv[1]
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
for n in range(2000):
    body = f"From: local@example.org\nSubject: local {n}\nMessage-ID: <local{n}@bench>\n\n" + ("local text line\n" * (50 + n % 400))
    with open(os.path.join(root, "cur", f"1700000000.L{n}.bench:2,S"), "w") as fh:
        fh.write(body)
PY
    res=$(run_tool "$tool" "$dir"); record push "$tool" "$res"; echo "  $tool push #$r: $res"
  done
done
fi
if want migrate; then
echo "== migration: the whole pulled Maildir pushed to an empty account"
src=$B/local-arctern-bench/Mail
total=$(find "$src" -path '*/cur/*' -type f -o -path '*/new/*' -type f | wc -l)
for r in $(seq "$RUNS"); do
  for tool in arctern mbsync; do
    user="mig-$tool"
    rm -rf "$B/mail/$user"
    dir=$B/migrate-$tool; rm -rf "$dir"; mkdir -p "$dir/state"
    cp -a "$src" "$dir/Mail"; rm -f "$dir/Mail/arctern-state"* 2>/dev/null || true
    if [ "$tool" = arctern ]; then
      cat > "$dir/arctern.toml" <<EOT
state_dir = "$dir/state"
index = false
[accounts.b]
maildir = "$dir/Mail"
[accounts.b.imap]
host = "127.0.0.1"
port = $PORT
tls = "none"
user = "bench"
password = "secret"
[targets.mig]
[targets.mig.imap]
host = "127.0.0.1"
port = $PORT
tls = "none"
user = "$user"
password = "secret"
EOT
      cmd=("$ARCTERN" -c "$dir/arctern.toml" push b --to mig)
    else
      cat > "$dir/mbsyncrc" <<EOT
IMAPAccount m
Host 127.0.0.1
Port $PORT
User $user
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore m-far
Account m

MaildirStore m-near
Inbox $dir/Mail
SubFolders Maildir++

Channel m
Far :m-far:
Near :m-near:
Patterns *
Create Far
Sync Push
SyncState $dir/state/
EOT
      cmd=(mbsync -c "$dir/mbsyncrc" -a -q)
      # mbsync 1.4 sends Maildir folder names to the server as they are and keeps non-ASCII
      # names in modified UTF-7 on disk (its own pulls write .Entw&APw-rfe): give its copy the
      # names it would have written, so both tools push the same messages and folders.
      python3 - "$dir/Mail" <<'PY'
import base64, os, sys
def mutf7(name):
    out, run = [], []
    def flush():
        if run:
            b = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b.replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) < 0x7f:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)
root = sys.argv[1]
for entry in os.listdir(root):
    if entry.startswith(".") and not entry.isascii():
        os.rename(os.path.join(root, entry), os.path.join(root, mutf7(entry)))
PY
    fi
    sync
    res=$( { /usr/bin/time -f "%e %M" "${cmd[@]}" >/dev/null; } 2>&1 | tail -n 1 )
    record migrate "$tool" "$res"; echo "  $tool migration #$r: $res"
    got=$($D mailbox status -u "$user" messages '*' | awk -F= '{s += $2} END {print s}')
    [ "$got" = "$total" ] || { echo "$tool: the target holds $got of $total messages" >&2; exit 1; }
  done
  # The server's own cost: a client that does nothing but send the same messages, 100 per
  # MULTIAPPEND, into an empty account.
  rm -rf "$B/mail/mig-arctern"; sync
  res=$( { /usr/bin/time -f "%e %M" python3 contrib/bench/limits.py append "$PORT" mig-arctern secret "$src" >/dev/null; } 2>&1 | tail -n 1 )
  record upload limit "$res"; echo "  bare MULTIAPPEND upload #$r: $res"
done
fi
if want pop3; then
echo "== POP3 pull of a 2000-message maildrop (left on the server)"
for r in $(seq "$RUNS"); do
  dir=$B/local-pop-arctern; rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir/arctern.toml" <<EOT
state_dir = "$dir/state"
index = false
[accounts.p]
maildir = "$dir/Mail"
[accounts.p.pop3]
host = "127.0.0.1"
port = $POP3_PORT
tls = "none"
user = "pop"
password = "secret"
EOT
  res=$( { /usr/bin/time -f "%e %M" "$ARCTERN" -c "$dir/arctern.toml" sync >/dev/null; } 2>&1 | tail -n 1 )
  record pop3 arctern "$res"; echo "  arctern POP3 #$r: $res"
  dir=$B/local-pop-getmail; rm -rf "$dir"; mkdir -p "$dir/Mail/cur" "$dir/Mail/new" "$dir/Mail/tmp" "$dir/state"
  cat > "$dir/getmailrc" <<EOT
[retriever]
type = SimplePOP3Retriever
server = 127.0.0.1
port = $POP3_PORT
username = pop
password = secret

[destination]
type = Maildir
path = $dir/Mail/

[options]
read_all = true
delete = false
verbose = 0
message_log_syslog = false
EOT
  # getmail refuses to deliver as root: run it as the unprivileged mail user.
  as_user=()
  if [ "$(id -u)" -eq 0 ]; then chown -R "$MUID:$MGID" "$dir"; as_user=(runuser -u "$MAILUSER" --); fi
  res=$( { /usr/bin/time -f "%e %M" "${as_user[@]}" getmail --getmaildir "$dir/state" --rcfile "$dir/getmailrc" >/dev/null; } 2>&1 | tail -n 1 )
  record pop3 getmail "$res"; echo "  getmail POP3 #$r: $res"
  got=$(find "$dir/Mail/new" "$dir/Mail/cur" -type f | wc -l)
  [ "$got" = 2000 ] || { echo "getmail stored $got of 2000 messages" >&2; exit 1; }
  got=$(find "$B/local-pop-arctern/Mail/new" -type f | wc -l)
  [ "$got" = 2000 ] || { echo "arctern stored $got of 2000 messages" >&2; exit 1; }
done
fi

fi # not --search

if [ "$SEARCH" = 0 ] && want limits; then
echo "== physical limits"
for r in $(seq "$RUNS"); do
  res=$( { /usr/bin/time -f "%e %M" python3 contrib/bench/limits.py fetch "$PORT" bench secret >/dev/null; } 2>&1 | tail -n 1 )
  record fetch limit "$res"; echo "  raw fetch #$r: $res"
  rm -rf "$B/fsync-copy"; sync
  res=$( { /usr/bin/time -f "%e %M" python3 contrib/bench/limits.py fsync "$B/local-arctern-bench/Mail" "$B/fsync-copy" >/dev/null; } 2>&1 | tail -n 1 )
  record fsync limit "$res"; echo "  fsync writes #$r: $res"
done

fi

echo "== report"
COMMIT=$(git describe --always --dirty)
if [ "$APPEND" = 1 ]; then OUT=$B/results/section.md; else OUT=BENCHMARKS.md; fi
python3 - "$B/results/raw" "$MESSAGES" "$SEED" "$RUNS" "$PROFILE" "$APPEND" "$POP_SEED" > "$OUT" <<'PY'
import statistics, subprocess, sys, platform, collections
raw, messages, seed, runs, profile, append, pop_seed = sys.argv[1:8]
data = collections.defaultdict(list)
for line in open(raw):
    scen, tool, secs, rss = line.split()
    data[(scen, tool)].append((float(secs), int(rss)))
def med(k):
    v = data.get(k)
    return (statistics.median(x[0] for x in v), max(x[1] for x in v)) if v else None
def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
if append == "1":
    print(f"\n## {messages} messages, {profile} sizes\n")
    print("Added by `contrib/bench.sh --append`: one more run, its figures comparable only among themselves.\n")
else:
    print("# Benchmarks\n")
    print("Produced by `contrib/bench.sh` (do not edit by hand). Every figure comes from the same run, on the")
    print(f"same machine, against the same private Dovecot over loopback (plain IMAP for every client).\n")
sizes = "1.5 KB to 100 KB" if profile == "small" else "2 KB to 2 MB"
print(f"- data: {seed}, six folders (one non-ASCII), {sizes}, about 10% with attachments, mixed flags")
print(f"- machine: {platform.machine()}, {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, Linux {platform.release()}")
print(f"- POP3 maildrop: {pop_seed}, same mix, all in INBOX")
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(f"- versions: {ver(['target/release/arctern', '--version'])} (commit {commit}); {ver(['mbsync', '--version'])}; offlineimap {ver(['offlineimap', '--version'])}; {ver(['getmail', '--version'])}; {ver(['dovecot', '--version'])} (Dovecot)")
print(f"- each figure: median wall time of {runs} runs; RSS is the peak over those runs\n")
tools = [t for t in ("arctern", "mbsync", "offlineimap", "getmail", "notmuch", "mu") if any(k[1] == t for k in data)]
names = {"pull": f"initial pull of {messages} messages", "nochange": "resync, no change",
         "changes": "resync after 200 server changes",
         "moves": "resync after 200 server changes, 50 of them moves (messages over 40 KB)", "push": "push of 2,000 new local messages",
         "migrate": f"migration: push of the whole Maildir ({messages}+ messages) to an empty account",
         "pop3": "POP3 pull of 2,000 messages",
         "adopt": "adopting mbsync's Maildir (fresh arctern state, mbsync's records)", "index": f"indexing {messages} messages",
         "index200": "index update after 200 changes", "search": "search latency, p50 of the query set"}
names = {k: v for k, v in names.items() if any(key[0] == k for key in data)}
import json, os
json.dump(names, open(os.path.join(os.path.dirname(raw), "names.json"), "w"))
print(f"![Each peer's time / arctern's, per scenario (right of 1: arctern faster)](docs/bench-{messages}-{profile}.svg)\n")
print("| scenario | " + " | ".join(tools) + " | " + " | ".join(f"{t} / arctern" for t in tools if t != "arctern") + " |")
print("|---|" + "---|" * (len(tools) * 2 - 1))
for scen, label in names.items():
    a = med((scen, "arctern"))
    cells = []
    for t in tools:
        m = med((scen, t))
        if scen == "search":
            cells.append(f"{m[0] * 1000:.1f} ms" if m else "-")
        else:
            cells.append(f"{m[0]:.2f} s, {m[1] / 1024:.0f} MB" if m else "-")
    for t in tools:
        if t == "arctern":
            continue
        m = med((scen, t))
        cells.append(f"{m[0] / a[0]:.1f}x" if m and a and a[0] > 0 else "-")
    print(f"| {label} | " + " | ".join(cells) + " |")
f, s = med(("fetch", "limit")), med(("fsync", "limit"))
if f and s:
    print(f"\nPhysical limits in the same run: streaming every body over IMAP {f[0]:.2f} s; writing the same files with an fsync each {s[0]:.2f} s.")
import os
adopt = os.path.join(os.path.dirname(raw), "adopt")
if os.path.exists(adopt) and os.path.getsize(adopt) > 0:
    rows = [list(map(int, l.split())) for l in open(adopt) if l.strip()]
    d, up, tin, tout, files = rows[-1]
    print(f"\nAdopting mbsync's Maildir ({files} files) in the same run: message bytes copied {d} down, {up} up; the whole IMAP conversation {tout / 1e6:.1f} MB from the server, {tin / 1e6:.2f} MB from arctern (the pairing needs headers and sizes, never bodies).")
moves = os.path.join(os.path.dirname(raw), "moves")
if os.path.exists(moves) and os.path.getsize(moves) > 0:
    by_tool = collections.defaultdict(list)
    for l in open(moves):
        if l.strip():
            t, n = l.split()
            by_tool[t].append(int(n))
    cells = ", ".join(f"{t} {statistics.median(v) / 1e6:.2f} MB" for t, v in by_tool.items())
    print(f"\nBytes the server sent in the resync with 50 moves (median per run, the whole IMAP conversation; the 25 new messages are about 2 KB): {cells}.")
u = med(("upload", "limit"))
if u:
    print(f"\nThe server's cost of taking the migrated messages in the same run (a bare client sending them over one connection, 100 per MULTIAPPEND, into an empty account): {u[0]:.2f} s.")
import os
results = os.path.dirname(raw)
if os.path.exists(os.path.join(results, "sizes")):
    parts = open(os.path.join(results, "sizes")).read().split()
    idx, md = int(parts[1]), int(parts[3])
    print(f"\nIndex size: {idx / 1e6:.0f} MB for a {md / 1e6:.0f} MB Maildir ({100 * idx / md:.0f} %).")
if os.path.exists(os.path.join(results, "latency")):
    print("\nSearch latency per query (median of 30 runs each, in three rounds alternating the two tools):\n")
    print("| query (arctern / notmuch) | arctern | notmuch |")
    print("|---|---|---|")
    rows = [l.rsplit(" ", 2) for l in open(os.path.join(results, "latency")) if l.strip()]
    for a, n in zip(rows[0::2], rows[1::2]):
        q = a[0].split(" ", 1)[1]
        nq = n[0].split(" ", 1)[1]
        print(f"| `{q}` / `{nq}` | {float(a[2]) * 1000:.1f} ms | {float(n[2]) * 1000:.1f} ms |")
if os.path.exists(os.path.join(results, "agreement")):
    print("\nSame queries through arctern and notmuch (Message-IDs found by each, and by both):\n")
    print("| arctern query | arctern | notmuch | both |")
    print("|---|---|---|---|")
    for line in open(os.path.join(results, "agreement")):
        q, a, n, both = line.rstrip("\n").split("|")
        print(f"| `{q}` | {a} | {n} | {both} |")
PY
mkdir -p docs
python3 contrib/bench/chart.py "$B/results/raw" "$(cat "$B/results/names.json")" \
  "docs/bench-$MESSAGES-$PROFILE.svg" "arctern against its peers: $MESSAGES messages, $PROFILE sizes"
if [ "$APPEND" = 1 ]; then cat "$OUT" >> BENCHMARKS.md; fi
# BENCHMARKS.md leads with the latest chart of each data size and profile: the block between
# the markers under its title is rewritten with every run.
python3 - "$MESSAGES" "$PROFILE" "$COMMIT" <<'PY'
import re, sys
messages, profile, commit = sys.argv[1:4]
text = open("BENCHMARKS.md").read()
start, end = "<!-- latest charts -->", "<!-- end of latest charts -->"
entries = {}
if start in text:
    block = text.split(start, 1)[1].split(end, 1)[0]
    for line in block.strip().splitlines():
        m = re.search(r"docs/bench-(\d+)-(\w+)\.svg", line)
        if m:
            entries[(m.group(1), m.group(2))] = line
    text = text.split(start, 1)[0] + text.split(end, 1)[1].lstrip("\n")
entries[(messages, profile)] = (f"![{messages} messages, {profile} sizes, commit {commit}: each peer's time / arctern's]"
                                f"(docs/bench-{messages}-{profile}.svg)")
lines = "\n\n".join(entries[k] for k in sorted(entries, key=lambda k: (int(k[0]), k[1])))
head, rest = text.split("\n", 1)
open("BENCHMARKS.md", "w").write(f"{head}\n\n{start}\n{lines}\n{end}\n{rest}")
PY
cat "$OUT"
