// Runs a wasm32-wasip1 command module in Node's V8, to time code the way
// Envoy runs it (Envoy starts V8 with --no-liftoff: every function compiled
// by TurboFan up front):
//
//   cargo build --release -p meshguard-benches --bin detect-profile --target wasm32-wasip1
//   node --no-liftoff benches/run-wasi.mjs target/wasm32-wasip1/release/detect-profile.wasm 100 clean warm
//
// It also runs the engine's unit tests as a wasm module (`scripts/test`).
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const [path, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [path, ...args], env: {} });
const module = await WebAssembly.compile(readFileSync(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
// The module's exit status (a failing test run exits non-zero) is ours.
process.exitCode = wasi.start(instance);
