#!/usr/bin/env bash
# Build every distribution's wheel; for each, make a fresh venv holding only that wheel, the
# workspace wheels it depends on and their locked (hash-checked) dependencies, then run the
# distribution's own test folder against the installed wheel.
#
# chat-shell-core is installed twice: alone (litellm is an extra, so it is absent: the tests
# that need it are left out, the rest must pass, and a non-OpenAI model must name the install
# command), then as chat-shell-core[litellm] (the tests that need litellm).
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"

# distribution -> its test folder (tests/postgres needs CHAT_SHELL_TEST_POSTGRES_URL: .ci/run
# starts a server for it)
declare -A TESTS=(
    [chat-shell-core]=tests/core
    [chat-shell-sqlite]=tests/sqlite
    [chat-shell-postgres]=tests/postgres
    [chat-shell-cli]=tests/cli
    [chat-shell-http]=tests/http
    [chat-shell-mcp]=tests/mcp
)
# pytest, its asyncio plugin, hypothesis (the SQLite property test) and the terminal emulator
# the CLI tests use, as the lock file pins them
TEST_TOOLS=(pytest==9.2.0 pytest-asyncio==1.5.0 hypothesis==6.170.17 pyte==0.8.2)
# what a distribution's tests need beyond those (the MCP tests: a real MCP server from PyPI, and
# psutil to count the processes left behind), as the lock file pins them
declare -A EXTRA_TEST_TOOLS=(
    [chat-shell-mcp]="mcp-server-time==2026.10.19 psutil==7.2.2"
)

all=()
for dir in packages/*/; do all+=("$(basename "$dir")"); done
selected=("${@:-${all[@]}}")  # default: every distribution

# what to install and test: a distribution, or a distribution with an extra
installs=()
for dist in "${selected[@]}"; do
    installs+=("$dist")
    [[ "$dist" == chat-shell-core ]] && installs+=("chat-shell-core[litellm]")
done

rm -rf dist .wheel-venvs
mkdir -p .wheel-venvs
for dist in "${all[@]}"; do
    [[ -n "${TESTS[$dist]:-}" ]] || { echo "no test folder known for $dist" >&2; exit 1; }
    "$UV" build --package "$dist" --wheel --out-dir dist --quiet
done

for install in "${installs[@]}"; do
    dist="${install%%\[*}"
    extra=""
    [[ "$install" == *"["* ]] && { extra="${install#*[}"; extra="${extra%]}"; }
    tests="${TESTS[$dist]}"
    # the litellm tests run where litellm is installed; everything else where it is not
    marks=()
    if [[ "$dist" == chat-shell-core ]]; then
        if [[ -n "$extra" ]]; then marks=(-m litellm); else marks=(-m "not litellm"); fi
    fi
    venv=".wheel-venvs/${install//[\[\]]/_}"
    echo "=== $install: wheel alone, $tests ${marks[*]}"
    "$UV" venv --quiet --python python3 "$venv"
    requirements="$venv/requirements.txt"
    extras=()
    [[ -n "$extra" ]] && extras=(--extra "$extra")
    "$UV" export --package "$dist" "${extras[@]}" --frozen --no-dev --no-emit-workspace \
        --no-header --format requirements-txt --output-file "$requirements" --quiet
    "$UV" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$requirements"
    # the distribution's own wheel plus the workspace wheels it depends on
    wheels=()
    for name in $("$UV" export --package "$dist" --frozen --no-dev --only-emit-workspace \
            --no-header --format requirements-txt --quiet | sed -n 's|^\./packages/\([^ ]*\).*|\1|p;s|^-e \./packages/\([^ ]*\).*|\1|p'); do
        wheels+=(dist/"${name//-/_}"-*.whl)
    done
    "$UV" pip install --quiet --python "$venv/bin/python" --no-deps "${wheels[@]}"
    # shellcheck disable=SC2206  # the extra tools are a space-separated list
    extra_tools=(${EXTRA_TEST_TOOLS[$dist]:-})
    "$UV" pip install --quiet --python "$venv/bin/python" "${TEST_TOOLS[@]}" "${extra_tools[@]}"
    "$venv/bin/python" - "$dist" <<'PY'
import importlib.metadata, sys
dist = sys.argv[1]
files = importlib.metadata.distribution(dist).files or []
assert not any(str(f).endswith(".pth") for f in files), f"{dist} is installed editable"
print(f"{dist} {importlib.metadata.version(dist)} installed from its wheel")
PY
    if [[ "$install" == chat-shell-core ]]; then
        # core alone: no litellm, and a model that needs it says what to install
        "$venv/bin/python" - <<'PY'
import importlib.util, os
from chat_shell import ModelRouter, Settings, UserError
assert importlib.util.find_spec("litellm") is None, "litellm came with chat-shell-core"
router = ModelRouter(Settings(), {"ANTHROPIC_API_KEY": "sk-ant-test"})
try:
    router.backend(router.resolve("anthropic/claude-haiku-4-5"))
except UserError as exc:
    assert "pip install 'chat-shell-core[litellm]'" in exc.message, exc.message
    print(f"without litellm: {exc.message}")
else:
    raise AssertionError("no install hint without litellm")
PY
    fi
    set +e
    (cd "$venv" && ./bin/python -m pytest -q -p no:cacheprovider --rootdir ../.. -c ../../pyproject.toml "${marks[@]}" ../../"$tests")
    status=$?
    set -e
    if [[ $status -eq 5 ]]; then
        echo "$install: no tests ran in $tests — that is a failure" >&2
        exit 1
    elif [[ $status -ne 0 ]]; then
        exit "$status"
    fi
done
echo "all distributions pass their tests from their wheels alone"
