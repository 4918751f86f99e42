#!/usr/bin/env bash
# Learn joint BPE codes over tokenized text with subword-nmt (ModelZoo's learn_subword.sh).
set -euo pipefail

usage() {
  cat <<EOF
Usage: bash scripts/learn_subword.sh -i <tokenized folder or file> -o <codes file> [-s merges] [-h]

  -i PATH   folder whose *.txt files are concatenated, or a single text file
  -o PATH   BPE codes file to write (written under a temporary name, then renamed)
  -s N      number of merge operations (default 46000, as ModelZoo)
  -h        show this help
EOF
}

input=""
output=""
merges=46000
while getopts ":i:o:s:h" opt; do
  case "$opt" in
    i) input="$OPTARG" ;;
    o) output="$OPTARG" ;;
    s) merges="$OPTARG" ;;
    h) usage; exit 0 ;;
    :) echo "error: option -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
    *) echo "error: unknown option -$OPTARG" >&2; usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [[ $# -gt 0 ]]; then
  echo "error: unexpected argument: $1" >&2; usage >&2; exit 2
fi
if [[ -z "$input" || -z "$output" ]]; then
  echo "error: -i and -o are required" >&2; usage >&2; exit 2
fi
if ! [[ "$merges" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: -s must be a positive integer, got '$merges'" >&2; exit 2
fi

# subword-nmt from PATH, else from the project's virtual environment.
if command -v subword-nmt >/dev/null 2>&1; then
  subword_nmt="subword-nmt"
elif [[ -x "${MASS_VENV:-$(dirname "$0")/../.venv}/bin/subword-nmt" ]]; then
  subword_nmt="${MASS_VENV:-$(dirname "$0")/../.venv}/bin/subword-nmt"
else
  echo "error: subword-nmt not found on PATH nor in ${MASS_VENV:-$(dirname "$0")/../.venv}/bin (pip install subword-nmt)" >&2
  exit 2
fi

files=()
if [[ -d "$input" ]]; then
  shopt -s nullglob
  files=("$input"/*.txt)
  shopt -u nullglob
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "error: no *.txt files in $input" >&2; exit 2
  fi
elif [[ -f "$input" ]]; then
  files=("$input")
else
  echo "error: input not found: $input" >&2; exit 2
fi

for f in "${files[@]}"; do
  bad="$(LC_ALL=C.UTF-8 grep -naxv '.*' "$f" | head -n 1 | cut -d: -f1 || true)"
  if [[ -n "$bad" ]]; then
    echo "error: $f:$bad: bytes that are not valid UTF-8" >&2; exit 2
  fi
done
if ! grep -q '[^[:space:]]' "${files[@]}"; then  # (not through a pipe: grep -q stops early, pipefail)
  echo "error: ${input}: no text to learn from (the input is empty)" >&2; exit 2
fi

if [[ -d "$output" ]]; then
  echo "error: $output: is a folder; -o names the codes file to write" >&2; exit 2
fi
out_dir="$(dirname "$output")"
if ! mkdir -p "$out_dir" 2>/dev/null; then
  echo "error: $out_dir: cannot create this folder" >&2; exit 2
fi
name="$(basename "$output")"
# temporaries as src/utils/fileio.py names them: .<name>.<pid>.<random>.tmp; a dead writer's are removed
for stale in "$out_dir/.$name".*.tmp; do
  [[ -e "$stale" ]] || continue
  pid="${stale#"$out_dir/.$name."}"; pid="${pid%%.*}"
  if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$stale"; fi
done
if ! tmp="$(mktemp --suffix=.tmp "$out_dir/.$name.$$.XXXXXXXX" 2>/dev/null)"; then
  echo "error: $out_dir: cannot write here" >&2; exit 2
fi
log="$(mktemp)"
trap 'rm -f "$tmp" "$log"' EXIT

echo "learning $merges BPE merges from ${#files[@]} file(s) into $output" >&2
if ! cat "${files[@]}" | "$subword_nmt" learn-bpe -s "$merges" > "$tmp" 2> "$log"; then
  echo "error: $output: learning the BPE codes failed: $(grep -v '^\s*$' "$log" | tail -n 1)" >&2; exit 2
fi
if ! grep -qv '^#' "$tmp"; then
  echo "error: ${input}: no BPE merge could be learned (too little text)" >&2; exit 2
fi
chmod "$(printf "%o" $(( 0666 & ~$(umask) )))" "$tmp"  # mktemp made it private
if ! mv -f "$tmp" "$output" 2>/dev/null; then
  echo "error: $output: cannot write here" >&2; exit 2
fi
echo "wrote $output" >&2
