#!/usr/bin/env bash
# Build every distribution's wheel; for each, make a fresh venv holding only that wheel, the
# workspace wheels it depends on and their locked (hash-checked) dependencies, then run the
# distribution's own test folder against the installed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"

# distribution -> its test folder
declare -A TESTS=(
    [chat-shell-core]=tests/core
    [chat-shell-sqlite]=tests/sqlite
    [chat-shell-cli]=tests/cli
    [chat-shell-http]=tests/http
)
# pytest, its asyncio plugin and the terminal emulator the CLI tests use, as the lock file pins them
TEST_TOOLS=(pytest==9.2.0 pytest-asyncio==1.5.0 pyte==0.8.2)

all=()
for dir in packages/*/; do all+=("$(basename "$dir")"); done
selected=("${@:-${all[@]}}")  # default: every distribution

rm -rf dist .wheel-venvs
mkdir -p .wheel-venvs
for dist in "${all[@]}"; do
    [[ -n "${TESTS[$dist]:-}" ]] || { echo "no test folder known for $dist" >&2; exit 1; }
    "$UV" build --package "$dist" --wheel --out-dir dist --quiet
done

for dist in "${selected[@]}"; do
    tests="${TESTS[$dist]}"
    venv=".wheel-venvs/$dist"
    echo "=== $dist: wheel alone, $tests"
    "$UV" venv --quiet --python python3 "$venv"
    requirements="$venv/requirements.txt"
    "$UV" export --package "$dist" --frozen --no-dev --no-emit-workspace --no-header \
        --format requirements-txt --output-file "$requirements" --quiet
    "$UV" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$requirements"
    # the distribution's own wheel plus the workspace wheels it depends on
    wheels=()
    for name in $("$UV" export --package "$dist" --frozen --no-dev --only-emit-workspace \
            --no-header --format requirements-txt --quiet | sed -n 's|^\./packages/\([^ ]*\).*|\1|p;s|^-e \./packages/\([^ ]*\).*|\1|p'); do
        wheels+=(dist/"${name//-/_}"-*.whl)
    done
    "$UV" pip install --quiet --python "$venv/bin/python" --no-deps "${wheels[@]}"
    "$UV" pip install --quiet --python "$venv/bin/python" "${TEST_TOOLS[@]}"
    "$venv/bin/python" - "$dist" <<'PY'
import importlib.metadata, sys
dist = sys.argv[1]
files = importlib.metadata.distribution(dist).files or []
assert not any(str(f).endswith(".pth") for f in files), f"{dist} is installed editable"
print(f"{dist} {importlib.metadata.version(dist)} installed from its wheel")
PY
    set +e
    (cd "$venv" && ./bin/python -m pytest -q -p no:cacheprovider --rootdir ../.. -c ../../pyproject.toml ../../"$tests")
    status=$?
    set -e
    if [[ $status -eq 5 ]]; then
        echo "$dist: no tests ran in $tests — that is a failure" >&2
        exit 1
    elif [[ $status -ne 0 ]]; then
        exit "$status"
    fi
done
echo "all distributions pass their tests from their wheels alone"
