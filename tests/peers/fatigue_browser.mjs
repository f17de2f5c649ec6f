// The console against approval fatigue (issue 18) in a real browser: Debian's Chromium driven by
// playwright-core. Approvers sign in with their API keys; the agent speaks the HTTP API (its own
// key, no cookie). Three parts, each through the pages a person uses:
//   plan      bob reads a plan as a numbered list and approves it as one; the agent's first step
//             is then approved at once, naming the plan, and the same step again is not.
//   standing  bob approves a rollout choosing "don't ask again" (1h, 2 uses); the agent's next
//             rollout is covered; the Standing page shows it used 1 of 2; bob revokes it there and
//             the agent's next rollout waits for people again.
//   amend     carol (security) edits an export's params in the editor and approves them; bob
//             approves the amended action; the agent gets the amended params, and the requester's
//             owner (alice) is offered no editor.
//
// node fatigue_browser.mjs '<scenario JSON>'
//   {url, plan, rollout, amend, keys: {agent, bob, carol, alice}, screenshots}: the gateway, the
//   ids of three pending requests (the plan, erin and carol having approved it already; a
//   deploy.rollout on svc://api whose rule allows standing approvals; a data.export whose rule
//   allows amending), the API keys, and a folder for screenshots.
// Prints `STEP name` per step and `DONE` at the end; exits non-zero on any failure.
import path from 'node:path';
import { chromium, request } from 'playwright-core';

const scenario = JSON.parse(process.argv[2]);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const step = (name) => console.log(`STEP ${name}`);

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

async function signIn(browser, key) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${scenario.url}/console/sign-in`);
  await page.locator('#key').fill(key);
  await page.locator('#key').press('Enter');
  await page.waitForURL(`${scenario.url}/console/`);
  return page;
}

const agent = await request.newContext({
  baseURL: scenario.url,
  extraHTTPHeaders: { Authorization: `Bearer ${scenario.keys.agent}` },
});
async function submit(action) {
  const r = await agent.post('/v1/actions', { data: action });
  expect(r.ok(), `the submission is accepted, got ${r.status()} ${await r.text()}`);
  return r.json();
}

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const bob = await signIn(browser, scenario.keys.bob);

  // 1. Plan: three numbered steps in the submitted order, each naming what the policy decided.
  await bob.goto(`${scenario.url}/console/requests/${scenario.plan}`);
  const steps = bob.locator('ol.plan-steps > li');
  expect((await steps.count()) === 3, 'three steps listed');
  const heads = await steps.locator('.step-head code').allInnerTexts();
  expect(JSON.stringify(heads) === JSON.stringify(['db.export', 'db.query', 'infra.rollback']),
    `the steps in order, got ${JSON.stringify(heads)}`);
  expect(await bob.locator('ol.plan-steps .e-review').count() >= 1, 'a step marked review');
  // A numbered list, as a person reads it: the browser numbers the items 1, 2, 3.
  const numbered = await bob.evaluate(() => getComputedStyle(document.querySelector('ol.plan-steps > li')).display === 'list-item'
    && getComputedStyle(document.querySelector('ol.plan-steps')).listStyleType !== 'none');
  expect(numbered, 'the steps are shown as a numbered list');
  if (scenario.screenshots) {
    await bob.screenshot({ path: path.join(scenario.screenshots, 'console-plan.png'), fullPage: true });
  }
  step('plan-numbered');
  await bob.locator('#comment').fill('read all three steps');
  await bob.getByRole('button', { name: 'Approve', exact: true }).click();
  await bob.locator('#badge .badge', { hasText: 'approved' }).waitFor();
  step('plan-approved');
  const first = await submit({
    kind: 'db.export', resource: scenario.customers, params: { rows: 5000 },
    justification: 'step 1 of the migration',
  });
  expect(first.state === 'approved' && first.planned_by?.plan === scenario.plan && first.planned_by?.step === 1,
    `the first step covered by the plan, got ${JSON.stringify(first)}`);
  const again = await submit({
    kind: 'db.export', resource: scenario.customers, params: { rows: 5000 },
    justification: 'step 1 once more',
  });
  expect(again.state === 'pending' && !again.planned_by, `a step is used once, got ${JSON.stringify(again)}`);
  // The plan's page names the request that used its first step.
  await bob.goto(`${scenario.url}/console/requests/${scenario.plan}`);
  await bob.locator(`ol.plan-steps > li:first-child a[href="/console/requests/${first.id}"]`).waitFor();
  step('plan-step-covered-once');

  // 2. Standing: bob approves the rollout choosing "don't ask again" for 1h and 2 uses.
  await bob.goto(`${scenario.url}/console/requests/${scenario.rollout}`);
  await bob.locator('#standing_for').selectOption('1h');
  await bob.locator('#standing_uses').fill('2');
  await bob.locator('#comment').fill('rollouts of the api are fine for the hour');
  await bob.getByRole('button', { name: 'Approve', exact: true }).click();
  await bob.locator('#badge .badge', { hasText: 'approved' }).waitFor();
  step('standing-chosen');
  const covered = await submit({ kind: 'deploy.rollout', resource: 'svc://api', params: { version: 2 } });
  expect(covered.state === 'approved' && covered.covered_by?.standing,
    `the next rollout covered, got ${JSON.stringify(covered)}`);
  const elsewhere = await submit({ kind: 'deploy.rollout', resource: 'svc://web', params: { version: 2 } });
  expect(elsewhere.state === 'pending', `another resource is asked about, got ${JSON.stringify(elsewhere)}`);
  step('standing-covers');
  await bob.goto(`${scenario.url}/console/standing`);
  const row = bob.locator(`tr[data-standing="${covered.covered_by.standing}"]`);
  expect(await row.getAttribute('data-state') === 'active', 'listed as active');
  expect((await row.innerText()).includes('1 of 2'), `used 1 of 2, got ${await row.innerText()}`);
  if (scenario.screenshots) {
    await bob.screenshot({ path: path.join(scenario.screenshots, 'console-standing.png'), fullPage: true });
  }
  await row.getByRole('button', { name: 'Revoke' }).click();
  await bob.locator(`tr[data-standing="${covered.covered_by.standing}"][data-state="revoked"]`).waitFor();
  const after = await submit({ kind: 'deploy.rollout', resource: 'svc://api', params: { version: 3 } });
  expect(after.state === 'pending' && !after.covered_by, `revoked: asked again, got ${JSON.stringify(after)}`);
  step('standing-revoked');

  // 3. Amend: carol edits the params in the editor and approves them.
  const carol = await signIn(browser, scenario.keys.carol);
  await carol.goto(`${scenario.url}/console/requests/${scenario.amend}`);
  await carol.locator('details.amend summary').click();
  const editor = carol.locator('#amend_params');
  expect(JSON.parse(await editor.inputValue()).rows === 5000, 'the editor starts from the params');
  await editor.fill('{"rows": 50, "table": "customers"}');
  await carol.locator('#amend_comment').fill('50 rows are plenty for the report');
  await carol.getByRole('button', { name: 'Amend and approve' }).click();
  await carol.waitForURL(`**/console/requests/${scenario.amend}`);
  const shown = await carol.locator('main').innerText();
  expect(shown.includes('"rows": 50') || shown.includes('"rows":50'), 'the page shows the amended params');
  if (scenario.screenshots) {
    await carol.screenshot({ path: path.join(scenario.screenshots, 'console-amended.png'), fullPage: true });
  }
  step('amended');
  // The requester's owner is offered no editor (and no vote).
  const alice = await signIn(browser, scenario.keys.alice);
  await alice.goto(`${scenario.url}/console/requests/${scenario.amend}`);
  expect(await alice.locator('details.amend').count() === 0, 'no editor for the owner');
  step('owner-not-offered');
  // bob approves the amended action; the agent gets exactly that.
  await bob.goto(`${scenario.url}/console/requests/${scenario.amend}`);
  await bob.locator('#comment').fill('fine with 50');
  await bob.getByRole('button', { name: 'Approve', exact: true }).click();
  await bob.locator('#badge .badge', { hasText: 'approved' }).waitFor();
  const got = await (await agent.get(`/v1/requests/${scenario.amend}`)).json();
  expect(got.state === 'approved' && got.action.params.rows === 50 && got.amendments?.[0]?.by === 'user:carol@example.com',
    `the agent sees the amended action, got ${JSON.stringify(got)}`);
  step('amended-approved');
  console.log('DONE');
} finally {
  await browser.close();
  await agent.dispose();
}
