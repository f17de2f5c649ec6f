#!/usr/bin/env python3
"""Instructions per `POST /v1/actions`, counted rather than timed (valgrind's callgrind), for
one or more release binaries of `countersign`: the server runs under callgrind with the
benchmark policy, takes 300 warm-up requests, its counters are zeroed, then it takes N requests
on one keep-alive connection and its counters are dumped. Prints all instructions per request,
those in software SHA-256 (valgrind hides the CPU's SHA extensions), and the rest.

  bench/submit-instructions.py [-n 2000] BINARY [BINARY ...]     (needs valgrind)
"""
import argparse, glob, http.client, os, re, subprocess, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument('-n', type=int, default=2000)
ap.add_argument('binaries', nargs='+')
args = ap.parse_args()
root = os.path.dirname(os.path.abspath(__file__))
server_rs = open(os.path.join(root, 'src', 'server.rs')).read()
POLICY = re.search(r'pub const POLICY: &str = r#"\n(.*?)"#;', server_rs, re.S).group(1)


def measure(binary, n):
    d = tempfile.mkdtemp(prefix='cs-instr-')
    open(f'{d}/policy.yaml', 'w').write(POLICY)
    open(f'{d}/countersign.yaml', 'w').write(
        'listen: 127.0.0.1:0\ndatabase: countersign.db\npolicy: policy.yaml\nprincipals:\n'
        '  - {id: agent:bench, owner: user:owner@example.com}\n  - {id: user:owner@example.com}\n'
        '  - {id: user:approver@example.com, groups: [sre]}\n')
    p = subprocess.Popen(['valgrind', '--tool=callgrind', '--separate-threads=yes',
                          f'--callgrind-out-file={d}/cg.%p', binary, 'serve', '--config',
                          f'{d}/countersign.yaml'], cwd=d, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, COUNTERSIGN_LOG='warn'),
                         text=True)
    addr = key = None
    for line in p.stdout:
        if line.startswith('Countersign gateway listening on http://'):
            addr = line.split('http://')[1].strip()
        w = line.split()
        if len(w) == 2 and w[0] == 'agent:bench' and w[1].startswith('cs_'):
            key = w[1]
        if addr and key:
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    host, port = addr.rsplit(':', 1)
    c = http.client.HTTPConnection(host, int(port), timeout=120)

    def send(i):
        body = ('{"kind":"bench.allow","resource":"bench://item/%d","params":{"n":%d,'
                '"note":"load"},"justification":"bench"}') % (i, i)
        c.request('POST', '/v1/actions', body,
                  {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'})
        r = c.getresponse()
        r.read()
        assert r.status in (200, 201), r.status

    for i in range(300):
        send(i)
    time.sleep(1)
    subprocess.run(['callgrind_control', '-z', str(p.pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    for i in range(300, 300 + n):
        send(i)
    time.sleep(1)
    subprocess.run(['callgrind_control', '-d', str(p.pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    p.terminate()
    p.wait()
    total = sha = 0
    for f in glob.glob(f'{d}/cg.*.1-*'):
        total += int(re.search(r'^summary: (\d+)', open(f).read(), re.M).group(1))
        out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100',
                              '--auto=no', f], capture_output=True, text=True).stdout
        for line in out.splitlines():
            fn = re.sub(r' \[[^\]]*\]$', '', line)
            m = re.match(r'^\s*([\d,]+)', line)
            if m and re.search(r':sha2::sha256::(soft|compress)\S*$', fn):
                sha += int(m.group(1).replace(',', ''))
    return total / n, sha / n


for b in args.binaries:
    total, sha = measure(b, args.n)
    print(f'{b}: {total:,.0f} instructions per request; SHA-256 {sha:,.0f}; rest {total - sha:,.0f}')
