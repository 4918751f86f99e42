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

out_dir="$(dirname "$output")"
mkdir -p "$out_dir"
tmp="$(mktemp "$out_dir/.$(basename "$output").XXXXXX")"
trap 'rm -f "$tmp"' EXIT

echo "learning $merges BPE merges from ${#files[@]} file(s) into $output" >&2
cat "${files[@]}" | "$subword_nmt" learn-bpe -s "$merges" > "$tmp"
mv -f "$tmp" "$output"
echo "wrote $output" >&2
