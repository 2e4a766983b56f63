#!/usr/bin/env bash
# Time the README's two commands as a new user meets them: each on its own fresh clone (so the
# venv is built from nothing), with an empty GENSEMBLE_CACHE, one after the other, nothing else
# started by this script in between. Writes docs/results/readme_times.json in the repo it was run
# from; the README quotes its times from that file (tests/test_readme_times.py checks they agree).
#
#   bash scripts/time_readme.sh            # times `make demo` and `make test`
#   bash scripts/time_readme.sh demo       # only one of them (the other keeps its recorded entry)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
which="${1:-both}"
work="$(mktemp -d /tmp/gensemble-readme-times-XXXXXX)"
out="$repo/docs/results/readme_times.json"
commit="$(git -C "$repo" rev-parse --short HEAD)"

run_one() {  # name, make target
  local name="$1" target="$2" clone="$work/$1"
  git clone -q "$repo" "$clone"
  local start end
  start="$(date +%s.%N)"
  (cd "$clone" && GENSEMBLE_CACHE="$work/cache-$name" make "$target") > "$work/$name.log" 2>&1
  end="$(date +%s.%N)"
  python3 - "$out" "$name" "$start" "$end" "$clone" "$work/$name.log" "$commit" <<'PY'
import json, os, re, sys, time
from pathlib import Path
out, name, start, end, clone, log, commit = sys.argv[1:]
path = Path(out)
data = json.loads(path.read_text()) if path.exists() else {}
entry = {"wall_s": round(float(end) - float(start), 1), "commit": commit,
         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count()}
text = Path(log).read_text(errors="replace")
if name == "demo":
    timings = json.loads((Path(clone) / "demo-out" / "timings.json").read_text())
    entry["timings"] = timings
    entry["train_s"] = timings["train"]
    entry["after_training_s"] = timings["after_training"]
    entry["after_over_train"] = round(timings["after_training"] / timings["train"], 3)
else:
    found = re.findall(r"(\d+) passed.* in ([\d.]+)s", text)
    entry["tests_passed"], entry["pytest_s"] = int(found[-1][0]), float(found[-1][1])
data[name] = entry
path.write_text(json.dumps(data, indent=2) + "\n")
print(f"{name}: {entry}")
PY
}

if [[ "$which" == both || "$which" == demo ]]; then run_one demo demo; fi
if [[ "$which" == both || "$which" == test ]]; then run_one test test; fi
echo "logs in $work; times in $out"
