#!/usr/bin/env python3
"""Added latency of an allowed MCP call through Countersign, seen by real client libraries (the
TypeScript SDK and the official Python SDK): starts server-everything over Streamable HTTP and a
release `countersign` in front of it, then each client alternates calls through the gateway and
straight to the upstream. Needs `npm ci --prefix tests/peers` and `pip install mcp`.

  bench/clients/run.py [--bin target/release/countersign] [-n 1000] [--only ts|python]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
ap = argparse.ArgumentParser()
ap.add_argument('--bin', default=os.path.join(root, 'target/release/countersign'))
ap.add_argument('-n', type=int, default=1000)
ap.add_argument('--only', choices=['ts', 'python'], help='run one client only')
args = ap.parse_args()
args.bin = os.path.abspath(args.bin)

s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
everything = os.path.join(root, 'tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js')
upstream = subprocess.Popen(['node', everything, 'streamableHttp'], env=dict(os.environ, PORT=str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
d = tempfile.mkdtemp(prefix='cs-clients-')
open(f'{d}/policy.yaml', 'w').write('version: 1\ndefault: deny\nrules:\n  - name: echo\n'
                                    '    match: {kind: "mcp.tool.*.echo"}\n    effect: allow\n')
open(f'{d}/countersign.yaml', 'w').write(
    'listen: 127.0.0.1:0\ndatabase: countersign.db\npolicy: policy.yaml\nprincipals:\n'
    '  - {id: agent:bench, owner: user:owner@example.com}\n  - {id: user:owner@example.com}\n'
    f'mcp:\n  upstreams:\n    - name: remote\n      url: http://127.0.0.1:{port}/mcp\n')
for _ in range(200):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.1).close(); break
    except OSError:
        time.sleep(0.1)
cs = subprocess.Popen([args.bin, 'serve', '--config', f'{d}/countersign.yaml'], cwd=d,
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                      env=dict(os.environ, COUNTERSIGN_LOG='warn'))
addr = key = None
for line in cs.stdout:
    if line.startswith('Countersign gateway listening on http://'):
        addr = line.split('http://')[1].strip()
    w = line.split()
    if len(w) == 2 and w[0] == 'agent:bench':
        key = w[1]
    if addr and key:
        break
gateway, direct = f'http://{addr}/mcp', f'http://127.0.0.1:{port}/mcp'
try:
    clients = [('ts', 'TypeScript SDK 1.32', ['node', os.path.join(here, 'latency.mjs')]),
               ('python', 'Python mcp 2.3 Client', [sys.executable, os.path.join(here, 'latency_py.py')])]
    for which, name, cmd in clients:
        if args.only and args.only != which:
            continue
        out = subprocess.run(cmd + [gateway, key, direct, str(args.n)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f'{name}: {out.stderr}')
        t = json.loads(out.stdout.strip().splitlines()[-1])
        q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] / 1000
        g, dr = t['gateway'], t['direct']
        print(f'{name:<22} direct p50 {q(dr,.5):6.2f} ms p99 {q(dr,.99):6.2f} ms | through Countersign '
              f'p50 {q(g,.5):6.2f} ms p99 {q(g,.99):6.2f} ms | added p50 {q(g,.5)-q(dr,.5):+.2f} ms '
              f'p99 {q(g,.99)-q(dr,.99):+.2f} ms (n={len(g)})')
finally:
    cs.terminate(); upstream.terminate(); cs.wait(); upstream.wait()
