# Sourced by contrib/bench.sh --search (not run on its own): indexing and search on the Maildir
# arctern pulled, against notmuch and mu (maildir-utils), in the same run. Uses B, RUNS, ARCTERN,
# MESSAGES and record() from bench.sh. Writes the query-set comparison to $B/results/agreement.

MD=$B/local-arctern-bench/Mail
S=$B/search
rm -rf "$S"; mkdir -p "$S"
cat > "$S/arctern.toml" <<EOT
state_dir = "$S/arctern-state"
index = false
[accounts.b]
maildir = "$MD"
[accounts.b.imap]
host = "127.0.0.1"
port = 1
tls = "none"
user = "unused"
password = "unused"
EOT
cat > "$S/notmuch-config" <<EOT
[database]
path=$S/notmuch-db
mail_root=$MD
[new]
tags=
ignore=
[search]
exclude_tags=
[maildir]
synchronize_flags=true
EOT
export NOTMUCH_CONFIG=$S/notmuch-config

echo "== indexing $MESSAGES messages"
for r in $(seq "$RUNS"); do
  sync
  res=$( { /usr/bin/time -f "%e %M" "$ARCTERN" -c "$S/arctern.toml" index --rebuild >/dev/null; } 2>&1 | tail -n 1 )
  record index arctern "$res"; echo "  arctern index --rebuild #$r: $res"
  rm -rf "$S/notmuch-db"; mkdir -p "$S/notmuch-db"; sync
  res=$( { /usr/bin/time -f "%e %M" notmuch new --quiet >/dev/null; } 2>&1 | tail -n 1 )
  record index notmuch "$res"; echo "  notmuch new #$r: $res"
  rm -rf "$S/mu"; mu init --muhome="$S/mu" --maildir="$MD" >/dev/null; sync
  res=$( { /usr/bin/time -f "%e %M" mu index --muhome="$S/mu" --quiet >/dev/null; } 2>&1 | tail -n 1 )
  record index mu "$res"; echo "  mu index #$r: $res"
done
du -sb "$S/arctern-state/index" | cut -f1 > "$S/index-bytes"
du -sb --exclude=.notmuch "$MD" | cut -f1 > "$S/maildir-bytes"

echo "== index update after 200 local changes"
for r in $(seq "$RUNS"); do
  python3 - "$MD" "$r" <<'PY'
import os, sys, random
root, r = sys.argv[1], int(sys.argv[2])
rng = random.Random(r)
files = sorted(os.path.join(d, f) for d, _, names in os.walk(root) if d.endswith("/cur")
               and ".notmuch" not in d for f in names)
picked = rng.sample(files, min(150, len(files)))
for p in picked[:100]:            # flag changes: rename with F added
    base, _, letters = p.rpartition(":2,")
    if "F" not in letters:
        os.rename(p, base + ":2," + "".join(sorted(letters + "F")))
for p in picked[100:150]:         # deletions
    os.remove(p)
for i in range(50):               # new mail
    name = f"1800000000.bench{r}x{i}.host"
    with open(os.path.join(root, "new", name), "w") as fh:
        fh.write(f"From: new@example.org\nSubject: fresh mail {r} {i}\nMessage-ID: <fresh{r}x{i}@bench>\n\nnew text\n")
PY
  sleep 2   # let directory mtimes settle (arctern does not trust an mtime from the current second)
  res=$( { /usr/bin/time -f "%e %M" "$ARCTERN" -c "$S/arctern.toml" index >/dev/null; } 2>&1 | tail -n 1 )
  record index200 arctern "$res"; echo "  arctern index #$r: $res"
  res=$( { /usr/bin/time -f "%e %M" notmuch new --quiet >/dev/null; } 2>&1 | tail -n 1 )
  record index200 notmuch "$res"; echo "  notmuch new #$r: $res"
  res=$( { /usr/bin/time -f "%e %M" mu index --muhome="$S/mu" --quiet >/dev/null; } 2>&1 | tail -n 1 )
  record index200 mu "$res"; echo "  mu index #$r: $res"
done

echo "== search latency (50 newest hits, default output; median of 30 runs each, alternating) and agreement with notmuch (all hits)"
# arctern query | notmuch query: the same question in each language.
QUERIES=(
  "kernel|kernel"
  "subject:rust|subject:rust"
  "from:sender5@example.org|from:sender5@example.org"
  "\"offline search\"|\"offline search\""
  "kernel NOT patch|kernel and not patch"
  "subject:backup OR subject:review|subject:backup or subject:review"
  "id:bench42@arctern.example|id:bench42@arctern.example"
  "release debian archive|release and debian and archive"
)
: > "$B/results/agreement"
for pair in "${QUERIES[@]}"; do
  aq=${pair%%|*}; nq=${pair#*|}
  # Latency: what a user types, the 50 newest hits in each tool's default output. Both tools in
  # one hyperfine call, three rounds of 10 runs each, alternating, so that a drift in the
  # machine's speed (this VM's timings wander by 20-30 % over minutes) falls on both alike.
  : > "$S/h.times"
  for round in 1 2 3; do
    hyperfine -N --runs 10 --warmup 2 --export-json "$S/h.json" \
      "$ARCTERN -c $S/arctern.toml search --limit 50 '$aq'" "notmuch search --limit=50 '$nq'" >/dev/null 2>&1
    python3 -c "import json;r=json.load(open('$S/h.json'))['results'];print(' '.join(map(str,r[0]['times'])),'|',' '.join(map(str,r[1]['times'])))" >> "$S/h.times"
  done
  read -r a n < <(python3 -c "
import statistics
a, n = [], []
for line in open('$S/h.times'):
    x, y = line.split('|')
    a += map(float, x.split()); n += map(float, y.split())
print(statistics.median(a), statistics.median(n))")
  echo "search $aq arctern $a" >> "$S/latency"; echo "search $nq notmuch $n" >> "$S/latency"
  echo "  $aq: arctern ${a}s, notmuch ${n}s"
  "$ARCTERN" -c "$S/arctern.toml" search --json --limit 100000 "$aq" \
    | python3 -c "import sys,json;[print(json.loads(l)['message-id']) for l in sys.stdin]" | sort -u > "$S/a.ids"
  notmuch search --output=messages "$nq" | sed 's/^id://' | sort -u > "$S/n.ids"
  echo "$aq|$(wc -l < "$S/a.ids")|$(wc -l < "$S/n.ids")|$(comm -12 "$S/a.ids" "$S/n.ids" | wc -l)" >> "$B/results/agreement"
done
python3 - "$S/latency" >> "$B/results/raw" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    *_, tool, secs = line.split()
    d[tool].append(float(secs))
for tool, v in d.items():
    print(f"search {tool} {statistics.median(v):.4f} 0")
PY
echo "index $(cat "$S/index-bytes") maildir $(cat "$S/maildir-bytes")" > "$B/results/sizes"
cp "$S/latency" "$B/results/latency"
