#!/usr/bin/env bash
# Re-execute the notebooks at FULL length, in place, so the committed outputs are what a reader should see.
#
#   SHAKESPEARE_LM_DATA=/path/to/input.txt notebooks/regenerate.sh            # all notebooks
#   notebooks/regenerate.sh notebooks/03_self_attention.ipynb                 # just some
#
# Quick mode is switched off, each cell may run for CELL_TIMEOUT seconds (default 1800), widget state
# is stripped afterwards (the widgets need a live kernel anyway), and the run fails if an output
# contains an absolute path of this machine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cell_timeout="${CELL_TIMEOUT:-1800}"
unset SHAKESPEARE_LM_QUICK
if [[ -z "${SHAKESPEARE_LM_DATA:-}" && -f "$repo/../shared/data/tinyshakespeare/input.txt" ]]; then
    export SHAKESPEARE_LM_DATA="$repo/../shared/data/tinyshakespeare/input.txt"
fi

if [[ $# -gt 0 ]]; then
    notebooks=("$@")
else
    notebooks=("$here"/[0-9][0-9]_*.ipynb)
fi

for nb in "${notebooks[@]}"; do
    echo "== $nb"
    start=$SECONDS
    jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.timeout="$cell_timeout" \
        --ExecutePreprocessor.kernel_name=python3 "$nb"
    python - "$nb" "$repo" "${SHAKESPEARE_LM_DATA:-}" <<'PY'
import json, os, sys
path, repo, data = sys.argv[1], sys.argv[2], sys.argv[3]
nb = json.load(open(path, encoding="utf-8"))
nb["metadata"].pop("widgets", None)  # no stale widget state
text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
for secret in {os.path.realpath(repo), repo, os.path.expanduser("~"), data, os.path.dirname(data)} - {"", "/"}:
    if secret in text:
        sys.exit(f"{path}: an output contains the absolute path {secret!r}; fix the cell that prints it")
errors = [c for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
if errors:
    sys.exit(f"{path}: {len(errors)} cell(s) raised")
with open(path, "w", encoding="utf-8") as f:
    json.dump(nb, f, indent=1, ensure_ascii=False, sort_keys=True)
    f.write("\n")
PY
    echo "   done in $((SECONDS - start)) s"
done
