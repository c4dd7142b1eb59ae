// The room page in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Signs in as a manager, creates a room, adds a member, checks every field has a label,
// then signs in as a non-manager and meets the refusal. Prints one PASS/FAIL line per step
// and saves a screenshot of each page to the results directory.
//
//   node room-page.mjs BASE_URL SPKI_SHA256_BASE64 RESULTS_DIR
import { chromium } from 'playwright-core';

const [base, spki, results] = process.argv.slice(2);
const steps = [];
let failed = 0;

function record(ok, name, detail) {
  const line = `${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`;
  steps.push(line);
  console.log(line);
  if (!ok) failed += 1;
}

const pages = [];

async function step(name, run) {
  try {
    const detail = await run();
    record(true, name, detail);
    return true;
  } catch (error) {
    record(false, name, String(error.message || error).split('\n')[0]);
    // What each open page showed when the step failed.
    for (const [n, page] of pages.entries()) {
      const text = await page.locator('main').innerText().catch(() => '');
      console.error(`page ${n} at ${page.url()}: ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
      await shot(page, `failed-${steps.length}-${n}`).catch(() => {});
    }
    return false;
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // Trust exactly perch's certificate (by its public key), nothing else.
    `--ignore-certificate-errors-spki-list=${spki}`,
  ],
});

// A phone-sized window: the page must work there.
async function newPage() {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true,
  });
  const page = await context.newPage();
  pages.push(page);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${results}/web-${name}.png`, fullPage: true });
}

async function signIn(page, user, password) {
  await page.goto(`${base}/manage/`);
  expect(page.url().endsWith('/manage/sign-in'), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('User').fill(user);
  await page.getByLabel('Password').fill(password);
  // The keyboard alone: Enter in the password field submits.
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${base}/manage/`);
}

/** Every visible form control has a label a screen reader announces. */
async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map((el) => el.name || el.id));
}

let roomUrl = '';
const alice = await newPage();
let ok = await step('sign-in page: redirected there, labelled, secure cookies', async () => {
  await alice.goto(`${base}/manage/`);
  await shot(alice, '1-sign-in');
  const missing = await unlabelled(alice);
  expect(missing.length === 0, `unlabelled fields: ${missing}`);
  const cookies = await alice.context().cookies();
  const form = cookies.find((c) => c.name === '__Host-perch-sign-in');
  expect(form && form.secure && form.httpOnly && form.sameSite === 'Strict', JSON.stringify(cookies));
  return `${alice.url()}`;
});
ok = ok && await step('manager signs in with the chat password', async () => {
  await signIn(alice, 'alice@example.test', 'alice-web-pw');
  await shot(alice, '2-rooms');
  const heading = await alice.getByRole('heading', { level: 1 }).textContent();
  expect(heading === 'Rooms you manage', heading);
  expect(await alice.getByRole('link', { name: 'Ops' }).count() === 1, 'Ops not listed');
  const session = (await alice.context().cookies()).find((c) => c.name === '__Host-perch-session');
  expect(session && session.secure && session.httpOnly && session.sameSite === 'Strict', 'session cookie');
  return 'rooms listed: Ops';
});
ok = ok && await step('creates a room in a category where she is a creator', async () => {
  await alice.getByLabel('Name').fill('Launch');
  await alice.getByLabel('Category').selectOption('Projects');
  await alice.getByLabel('Description').fill('Planning the launch');
  await alice.getByLabel('Privacy').selectOption('closed');
  await alice.getByRole('button', { name: 'Create room' }).click();
  await alice.waitForURL(/\/manage\/rooms\/[^/]+$/);
  roomUrl = alice.url();
  const notice = await alice.getByRole('status').textContent();
  expect(notice.includes('Room Launch created'), notice);
  await shot(alice, '3-created');
  return roomUrl.replace(base, '');
});
ok = ok && await step('adds a member', async () => {
  const missing = await unlabelled(alice);
  expect(missing.length === 0, `unlabelled fields: ${missing}`);
  await alice.getByLabel('Members').fill('sip:bob@example.test\n');
  await alice.getByRole('button', { name: 'Save changes' }).click();
  await alice.waitForURL(roomUrl);
  const notice = await alice.getByRole('status').textContent();
  expect(notice.startsWith('Saved.'), notice);
  const members = await alice.getByLabel('Members').inputValue();
  expect(members.includes('sip:bob@example.test'), members);
  await shot(alice, '4-member-added');
  return `members now: ${members.trim()}`;
});
await step('a model rule refuses on the form, with the reason', async () => {
  await alice.getByLabel('Presenters (auditoriums only)').fill('sip:bob@example.test');
  await alice.getByRole('button', { name: 'Save changes' }).click();
  const alert = await alice.getByRole('alert').textContent();
  expect(alert.includes('a normal room has no presenters'), alert);
  await shot(alice, '5-refused-change');
  return alert;
});

const bob = await newPage();
await step('a non-manager is refused', async () => {
  expect(roomUrl !== '', 'no room was created');
  await signIn(bob, 'bob@example.test', 'bob-web-pw');
  expect(await bob.getByRole('link', { name: 'Launch' }).count() === 0, 'Launch listed for bob');
  expect(await bob.getByRole('heading', { name: 'Create a room' }).count() === 0, 'bob offered creation');
  const response = await bob.goto(roomUrl);
  expect(response.status() === 403, `status ${response.status()}`);
  const alert = await bob.getByRole('alert').textContent();
  expect(alert.includes('only managers may manage this room'), alert);
  await shot(bob, '6-non-manager-refused');
  return `403: ${alert}`;
});

await browser.close();
console.log(`${steps.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
