"""Loopback HTTP latency of /v1/classify (see benches/results/sidecar.md).

    python sidecar/examples/bench_http.py http://127.0.0.1:18582/v1/classify
"""
import json, sys, threading, time, urllib.request
URL = sys.argv[1]
SENT = ["Can you summarise the attached quarterly report and list the three main risks?",
        "Write a polite email to the customer explaining that the shipment is delayed by a week.",
        "What is the difference between a process and a thread in an operating system?",
        "How do I configure retries and timeouts for an upstream cluster in Envoy?"]
def client(n, out, c):
    for i in range(n):
        body = json.dumps({"policy": "standard", "texts": [SENT[(i + c) % len(SENT)]]}).encode()
        req = urllib.request.Request(URL, data=body, headers={"content-type": "application/json"})
        t = time.perf_counter(); urllib.request.urlopen(req).read(); out.append(time.perf_counter() - t)
for clients in (1, 8):
    lat = []; threads = [threading.Thread(target=client, args=(200 // clients, lat, c)) for c in range(clients)]
    t0 = time.perf_counter(); [t.start() for t in threads]; [t.join() for t in threads]; wall = time.perf_counter() - t0
    lat.sort(); p = lambda q: lat[min(len(lat) - 1, round((len(lat) - 1) * q))] * 1000
    print(f"| {clients} | {len(lat)} | {p(0.5):.1f} | {p(0.99):.1f} | {len(lat) / wall:.1f} |")
