// The console in a real browser: Debian's Chromium driven by playwright-core, signing in
// through the OpenID provider (oidc_provider.mjs), approving a pending request, approving an
// `mfa: true` request with a one-time code and another with a passkey (a CDP virtual
// authenticator), watching a page update live when a vote arrives
// through the API, and the CSRF and missing-session refusals.
//
// node console_browser.mjs '<scenario JSON>'
//   {url, approve, live, mfa, passkey, localUrl, carolKey, screenshots}: the gateway, the ids
//   of four pending requests (one sre review, one to be decided through the API meanwhile, two
//   iam.grant with MFA), the gateway at `localhost` (the passkeys' relying party) with carol's
//   API key to sign in there, and the folder for screenshots (or null).
// Prints one line per step (`STEP name`), `LIVE_READY <id>` when the live page listens (the
// caller then votes through the API), and `DONE` at the end; exits non-zero on any failure.
import crypto from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';

const scenario = JSON.parse(process.argv[2]);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const step = (name) => console.log(`STEP ${name}`);

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

function totp(secret, offsetSteps = 0) {
  const counter = Math.floor(Date.now() / 1000 / 30) + offsetSteps;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac('sha1', base32(secret)).update(msg).digest();
  const o = mac[mac.length - 1] & 15;
  const n = ((mac[o] & 127) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1e6).padStart(6, '0');
}

async function signIn(context, login) {
  const page = await context.newPage();
  await page.goto(`${scenario.url}/console/`);
  // No session: the console sends us to its sign-in page.
  await page.waitForURL(/\/console\/sign-in/);
  await page.getByRole('link', { name: /Sign in with/ }).click();
  // The provider's own login and consent forms.
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
  await page.waitForURL(`${scenario.url}/console/`);
  return page;
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  // 1. Sign in as bob through the provider; the inbox lists the pending request.
  const bob = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await signIn(bob, 'bob@example.com');
  step('signed-in');
  const mine = page.locator('#mine');
  await mine.locator(`a[href="/console/requests/${scenario.approve}"]`).waitFor();
  expect(await page.locator('.who').innerText().then((t) => t.includes('bob@example.com')), 'bob shown as signed in');
  if (scenario.screenshots) {
    await page.screenshot({ path: path.join(scenario.screenshots, 'console-inbox.png'), fullPage: true });
  }
  step('inbox-lists-pending');

  // 2. Open it (keyboard: the link is focusable), approve with a comment.
  await mine.locator(`a[href="/console/requests/${scenario.approve}"]`).click();
  await page.waitForURL(`**/console/requests/${scenario.approve}`);
  if (scenario.screenshots) {
    await page.screenshot({ path: path.join(scenario.screenshots, 'console-request.png'), fullPage: true });
  }
  await page.locator('#comment').fill('checked the migration plan');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('#badge .badge', { hasText: 'approved' }).waitFor();
  step('approved');

  // 3. Live: a page open on another request updates when a vote arrives through the API.
  await page.goto(`${scenario.url}/console/requests/${scenario.live}`);
  await page.waitForFunction(() => document.body.dataset.liveReady === '1');
  console.log(`LIVE_READY ${scenario.live}`);
  await page.locator('#badge .badge', { hasText: 'approved' }).waitFor({ timeout: 15000 });
  await page.locator('#progress', { hasText: 'via api' }).waitFor();
  step('live-update');

  // 4. CSRF: a form whose token was removed is refused, and nothing changes.
  await page.goto(`${scenario.url}/console/requests/${scenario.mfa}`);
  const refusal = await page.evaluate(async (id) => {
    const r = await fetch(`/console/requests/${id}/decide`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'decision=approve&digest=x',
    });
    return { status: r.status, code: r.headers.get('x-countersign-error') };
  }, scenario.mfa);
  expect(refusal.status === 403 && refusal.code === 'csrf_invalid', `403 csrf_invalid, got ${JSON.stringify(refusal)}`);
  step('csrf-refused');

  // 5. Missing session: a fresh browser is sent to sign-in, and a form post is refused.
  const anon = await browser.newContext();
  const anonPage = await anon.newPage();
  await anonPage.goto(`${scenario.url}/console/requests/${scenario.mfa}`);
  await anonPage.waitForURL(/\/console\/sign-in\?next=/);
  const anonPost = await anonPage.evaluate(async (id) => {
    const r = await fetch(`/console/requests/${id}/decide`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'csrf=x&decision=approve&digest=x',
    });
    return r.status;
  }, scenario.mfa);
  expect(anonPost === 401, `401 without a session, got ${anonPost}`);
  step('no-session-refused');

  // 6. MFA: carol (security) enrols TOTP in the console and approves the iam.grant with a code.
  const carol = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const cpage = await signIn(carol, 'carol@example.com');
  await cpage.goto(`${scenario.url}/console/mfa`);
  await cpage.getByRole('button', { name: /Enrol/ }).click();
  const secret = await cpage.locator('[data-secret]').getAttribute('data-secret');
  await cpage.goto(`${scenario.url}/console/requests/${scenario.mfa}`);
  await cpage.locator('#otp').fill(totp(secret));
  await cpage.getByRole('button', { name: 'Approve' }).click();
  await cpage.locator('#badge .badge', { hasText: 'approved' }).waitFor();
  await cpage.locator('#progress .mfa').waitFor();
  step('mfa-totp-approved');

  // 7. Passkey: carol, signed in at localhost (the relying party id), registers a passkey on a
  // virtual authenticator (user verification on), then approves the other iam.grant with it.
  const keyed = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const kpage = await keyed.newPage();
  const cdp = await keyed.newCDPSession(kpage);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  await kpage.goto(`${scenario.localUrl}/console/sign-in`);
  await kpage.locator('#key').fill(scenario.carolKey);
  await kpage.locator('#key').press('Enter');
  await kpage.waitForURL(`${scenario.localUrl}/console/`);
  // She has a TOTP app already (step 6), so adding a passkey takes a current code from it
  // (the next step's: this step's code was used for her vote).
  await kpage.goto(`${scenario.localUrl}/console/mfa`);
  await kpage.getByRole('button', { name: 'Add a passkey' }).click();
  await kpage.locator('#passkey-status', { hasText: 'factor_required' }).waitFor();
  await kpage.locator('#passkey-otp').fill(totp(secret, 1));
  await kpage.getByRole('button', { name: 'Add a passkey' }).click();
  await kpage.locator('[data-passkey-added]').waitFor({ timeout: 15000 });
  expect(await kpage.locator('li[data-credential]').count() === 1, 'one passkey listed');
  expect(await kpage.locator('[data-factor-change="passkey_added"]').count() === 1,
    'the banner tells her a passkey was added');
  const stored = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  expect(stored.credentials.length === 1, 'the authenticator holds the new credential');
  step('passkey-enrolled');
  await kpage.goto(`${scenario.localUrl}/console/requests/${scenario.passkey}`);
  await kpage.locator('#comment').fill('confirmed with my passkey');
  await kpage.getByRole('button', { name: 'Approve with passkey' }).click();
  await kpage.locator('#badge .badge', { hasText: 'approved' }).waitFor({ timeout: 15000 });
  await kpage.locator('#progress .mfa', { hasText: 'webauthn' }).waitFor();
  step('mfa-passkey-approved');

  // 7b. The ceremony is bound, with real signatures: an assertion made to approve this request
  // is refused for a deny, for another request and for another digest (and stays usable),
  // counts once (the request is decided, so that vote is refused as such), is then refused as
  // replayed; a tampered signature does not verify, and five failures rate-limit the next try.
  const binding = await kpage.evaluate(async ({ id, other }) => {
    const csrf = document.querySelector('input[name=csrf]').value;
    const u2b = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=')), (c) => c.charCodeAt(0)).buffer;
    const b2u = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const form = (fields) => ({
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, ...fields }).toString(),
    });
    const page = await (await fetch(`/console/requests/${id}`)).text();
    const digest = page.match(/name="digest" value="([^"]+)"/)?.[1] || page.match(/title="(sha256:[0-9a-f]+)"/)[1];
    async function assert(decision) {
      const begun = await (await fetch(`/console/requests/${id}/passkey`, form({ digest, decision }))).json();
      const pk = begun.options.publicKey;
      pk.challenge = u2b(pk.challenge);
      pk.allowCredentials.forEach((c) => { c.id = u2b(c.id); });
      const c = await navigator.credentials.get({ publicKey: pk });
      const r = c.response;
      return {
        ceremony: begun.ceremony,
        cred: {
          id: c.id, rawId: b2u(c.rawId), type: c.type, extensions: {},
          response: {
            authenticatorData: b2u(r.authenticatorData), clientDataJSON: b2u(r.clientDataJSON),
            signature: b2u(r.signature), userHandle: r.userHandle ? b2u(r.userHandle) : null,
          },
        },
      };
    }
    async function decide(req, fields, a) {
      const r = await fetch(`/console/requests/${req}/decide`, form({ ...fields, ceremony: a.ceremony, credential: JSON.stringify(a.cred) }));
      return `${r.status} ${r.headers.get('x-countersign-error')}`;
    }
    const a = await assert('approve');
    const out = {
      deny: await decide(id, { digest, decision: 'deny' }, a),
      otherRequest: await decide(other, { digest, decision: 'approve' }, a),
      otherDigest: await decide(id, { digest: `sha256:${'0'.repeat(64)}`, decision: 'approve' }, a),
      bound: await decide(id, { digest, decision: 'approve' }, a),
      replayed: await decide(id, { digest, decision: 'approve' }, a),
    };
    const b = await assert('approve');
    const sig = new Uint8Array(u2b(b.cred.response.signature));
    sig[sig.length - 1] ^= 1;
    b.cred.response.signature = b2u(sig.buffer);
    out.tampered = await decide(id, { digest, decision: 'approve' }, b);
    // Failed assertions count with wrong codes: after five, the next try is refused.
    const tries = [];
    for (let i = 0; i < 5; i++) {
      const t = await assert('approve');
      const bad = new Uint8Array(u2b(t.cred.response.signature));
      bad[bad.length - 1] ^= 1;
      t.cred.response.signature = b2u(bad.buffer);
      tries.push(await decide(id, { digest, decision: 'approve' }, t));
    }
    out.limited = tries.slice(-1)[0];
    out.beforeLimit = tries.slice(0, 4);
    return out;
  }, { id: scenario.passkey, other: scenario.mfa });
  const want = {
    deny: '403 webauthn_mismatch', otherRequest: '403 webauthn_mismatch',
    otherDigest: '403 webauthn_mismatch', replayed: '409 webauthn_replayed',
    tampered: '403 webauthn_invalid', limited: '429 mfa_rate_limited',
  };
  for (const [k, v] of Object.entries(want)) expect(binding[k] === v, `${k}: ${v}, got ${JSON.stringify(binding)}`);
  expect(binding.beforeLimit.every((t) => t === '403 webauthn_invalid'), `four more invalid, got ${JSON.stringify(binding)}`);
  expect(/^409 (already_voted|request_closed)$/.test(binding.bound), `bound: counted once, got ${JSON.stringify(binding)}`);
  step('passkey-ceremony-bound');

  // 8. Small screens: the request page has no horizontal scroll at phone width.
  const phone = await carol.newPage();
  await phone.setViewportSize({ width: 390, height: 800 });
  await phone.goto(`${scenario.url}/console/requests/${scenario.mfa}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `no horizontal overflow on a phone (got ${overflow}px)`);
  step('responsive');
  console.log('DONE');
} finally {
  await browser.close();
}
