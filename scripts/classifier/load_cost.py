"""What the classifier costs an Envoy that loads meshguard: module size,
time from process start to `/ready` = LIVE, resident memory once ready, and
the time one 1 KB user message adds inside V8 (the filter's own
`added_latency_us`, with and without `injection` in the policy), and with
`injection` the classifier's own share (the record's `scoring_us`).

Usage (from the repository root, after building the variants):
  .venv/bin/python scripts/classifier/load_cost.py --wasm full=PATH --wasm lean=PATH [--runs 5]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import stack as stack_mod  # noqa: E402

# About 1 KB of ordinary prose: no detector fires, so the difference between
# the two policies is the classifier's work alone.
MESSAGE = ("Our team is planning the quarterly offsite and needs help with the agenda. We want a morning "
           "session on the product roadmap, a working lunch, and an afternoon of customer interviews reviewed "
           "together. Please suggest timings, a short description of each block, and two icebreaker ideas "
           "that work for a group of twenty people who mostly know each other. ") * 3
MESSAGE = MESSAGE[:1024]


def plugin_config(injection):
    config = json.loads(stack_mod.PLUGIN_CONFIG.read_text())
    config["auth"] = {"mode": "none"}
    config["policies"]["standard"].pop("injection", None)
    if injection:
        config["policies"]["standard"]["injection"] = {"block_threshold": 0.9, "uncertain_band": [0.5, 0.9]}
    return json.dumps(config)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(run_dir, wasm, config_text, upstream_port, bare=False):
    ports = stack_mod.Ports.free()
    ports.upstream = upstream_port
    access_log = run_dir / "access.log"
    yaml = stack_mod.render_envoy_config(ports, config_text, access_log, wasm_path=wasm, bare=bare)
    (run_dir / "envoy.yaml").write_text(yaml)
    argv = [stack_mod.envoy_binary(), "-c", str(run_dir / "envoy.yaml"), "--concurrency", "1",
            "--disable-hot-restart", "--log-path", str(run_dir / "envoy.log"), "--file-flush-interval-msec", "100"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited; see {run_dir}/envoy.log")
        if stack_mod.http_get(f"http://127.0.0.1:{ports.admin}/ready", timeout=0.2)[1].strip() == "LIVE":
            break
        if time.monotonic() - started > 60:
            raise RuntimeError("envoy not ready after 60 s")
        time.sleep(0.01)
    return proc, ports, time.monotonic() - started, access_log


def added_latency(ports, access_log, requests):
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": MESSAGE}]}).encode()
    for _ in range(requests):
        req = urllib.request.Request(f"http://127.0.0.1:{ports.listen}/v1/chat/completions", data=body,
                                     headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as response:
            response.read()
    time.sleep(0.5)
    records = [json.loads(json.loads(line)["meshguard"]) for line in access_log.read_text().splitlines()]
    records = records[20:]  # the first requests warm V8's tiers up
    lat = [r["added_latency_us"] for r in records]
    scoring = [r["classifier"]["scoring_us"] for r in records if (r.get("classifier") or {}).get("scoring_us") is not None]
    return lat, scoring


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wasm", action="append", required=True, help="NAME=PATH; a NAME of `lean` is the build without the classifier")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    variants = dict(item.split("=", 1) for item in args.wasm)
    results = {"message_bytes": len(MESSAGE.encode()), "runs": args.runs, "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        upstream = stack_mod.Stack(stack_mod.Ports.free(), tmp / "upstream")
        upstream.start_upstream()
        try:
            cases = [("bare envoy", next(iter(variants.values())), False, True)]
            for name, wasm in variants.items():
                cases.append((name, wasm, False, False))
                if name != "lean":
                    cases.append((name + " + injection policy", wasm, True, False))
            for label, wasm, injection, bare in cases:
                ready, rss, lat, scoring = [], [], [], []
                for run in range(args.runs):
                    run_dir = tmp / f"{label.replace(' ', '_')}-{run}"
                    run_dir.mkdir()
                    proc, ports, seconds, access_log = start(run_dir, wasm, plugin_config(injection),
                                                             upstream.ports.upstream, bare)
                    try:
                        time.sleep(1.0)
                        ready.append(seconds)
                        rss.append(rss_kib(proc.pid) / 1024)
                        if run == 0 and not bare:
                            lat, scoring = added_latency(ports, access_log, args.requests)
                    finally:
                        proc.terminate()
                        proc.wait(10)
                results[label] = {
                    "module_bytes": None if bare else Path(wasm).stat().st_size,
                    "ready_s_median": round(statistics.median(ready), 3), "ready_s_max": round(max(ready), 3),
                    "rss_mib_median": round(statistics.median(rss), 1),
                    "added_latency_us_median": statistics.median(lat) if lat else None,
                    "added_latency_us_p90": sorted(lat)[int(len(lat) * 0.9)] if lat else None,
                    # The classifier's own time per message, from the record.
                    "scoring_us_median": statistics.median(scoring) if scoring else None,
                    "scoring_us_p90": sorted(scoring)[int(len(scoring) * 0.9)] if scoring else None,
                }
                print(label, results[label], file=sys.stderr, flush=True)
        finally:
            upstream.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
