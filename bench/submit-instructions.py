#!/usr/bin/env python3
"""Instructions per `POST /v1/actions`, counted rather than timed (valgrind's callgrind), for
one or more release binaries of `countersign`: the server runs under callgrind with the
benchmark policy, takes 300 warm-up requests, its counters are zeroed, then it takes N requests
on one keep-alive connection and its counters are dumped. Prints all instructions per request,
those in software SHA-256 (valgrind hides the CPU's SHA extensions), and the rest.

With `--standing`, the same server then takes as many actions covered by a standing approval
(formed once, for the one resource they share; counted the same way, after their own warm-up),
so the two figures compare within one run. At most 600 covered actions (1,000 uses in all).

  bench/submit-instructions.py [-n 2000] [--standing] BINARY [BINARY ...]     (needs valgrind)
"""
import argparse, glob, http.client, json, os, re, subprocess, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument('-n', type=int, default=2000)
ap.add_argument('--standing', action='store_true')
ap.add_argument('binaries', nargs='+')
args = ap.parse_args()
root = os.path.dirname(os.path.abspath(__file__))
server_rs = open(os.path.join(root, 'src', 'server.rs')).read()
POLICY = re.search(r'pub const POLICY: &str = r#"\n(.*?)"#;', server_rs, re.S).group(1)


def measure(binary, n, standing):
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
    addr = None
    keys = {}
    for line in p.stdout:
        if line.startswith('Countersign gateway listening on http://'):
            addr = line.split('http://')[1].strip()
        w = line.split()
        if len(w) == 2 and w[1].startswith('cs_'):
            keys[w[0]] = w[1]
        if addr and 'agent:bench' in keys and 'user:approver@example.com' in keys:
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    host, port = addr.rsplit(':', 1)
    c = http.client.HTTPConnection(host, int(port), timeout=120)

    def post(path, body, who='agent:bench'):
        c.request('POST', path, body,
                  {'Authorization': 'Bearer ' + keys[who], 'Content-Type': 'application/json'})
        r = c.getresponse()
        out = json.loads(r.read() or b'null')
        assert r.status in (200, 201), (r.status, out)
        return out

    def send(kind, i):
        out = post('/v1/actions', ('{"kind":"%s","resource":"bench://item/0","params":{"n":%d,'
                                   '"note":"load"},"justification":"bench"}') % (kind, i))
        assert out['state'] == 'approved', out

    def counted(kind, first, dump):
        for i in range(first, first + 300):
            send(kind, i)
        time.sleep(1)
        subprocess.run(['callgrind_control', '-z', str(p.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(first + 300, first + 300 + n):
            send(kind, i)
        time.sleep(1)
        subprocess.run(['callgrind_control', '-d', str(p.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = sha = 0
        for f in glob.glob(f'{d}/cg.*.{dump}-*'):
            total += int(re.search(r'^summary: (\d+)', open(f).read(), re.M).group(1))
            out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100',
                                  '--auto=no', f], capture_output=True, text=True).stdout
            for line in out.splitlines():
                fn = re.sub(r' \[[^\]]*\]$', '', line)
                m = re.match(r'^\s*([\d,]+)', line)
                if m and re.search(r':sha2::sha256::(soft|compress)\S*$', fn):
                    sha += int(m.group(1).replace(',', ''))
        return total / n, sha / n

    figures = [('auto-allowed', counted('bench.allow', 0, 1))]
    if standing:
        held = post('/v1/actions', '{"kind":"bench.standing","resource":"bench://item/0",'
                    '"params":{"n":-1}}')
        vote = post(f"/v1/requests/{held['id']}/votes",
                    '{"decision":"approve","digest":"%s","standing":{"for":"1h","uses":1000}}'
                    % held['digest'], 'user:approver@example.com')
        assert vote['standing']['state'] == 'active', vote
        figures.append(('standing approval', counted('bench.standing', 0, 2)))
    p.terminate()
    p.wait()
    return figures


for b in args.binaries:
    assert not args.standing or args.n <= 600, 'a standing approval has 1,000 uses: -n 600 at most'
    for name, (total, sha) in measure(b, args.n, args.standing):
        print(f'{b} {name}: {total:,.0f} instructions per request; SHA-256 {sha:,.0f}; '
              f'rest {total - sha:,.0f}')
