#!/usr/bin/env node
// End-to-end test of the web app in a real browser: two users on two federated
// homeservers, each in their own headless Chromium context, each talking to their own
// `parley ui` process. Driven by tests/tests/ui_e2e.rs, which starts the servers and the
// `parley ui` processes and performs the device change when this script asks for it;
// it can also be run by hand against processes started some other way:
//
//   ANN_URL='http://127.0.0.1:PORT/#secret=HEX' BOB_URL='http://127.0.0.1:PORT/#secret=HEX' \
//   ANN_SERVER=https://localhost:8443 BOB_SERVER=https://localhost:9443 \
//   CA_PEM_FILE=ca.pem ANN_USER=ann@a.test BOB_USER=bob@b.test ARTIFACTS=/tmp/e2e \
//   node client-sdk/cli/web/e2e/two-users.mjs
//
// Environment:
//   ANN_URL, BOB_URL        the URLs `parley ui` printed (with #secret=…)
//   ANN_SERVER, BOB_SERVER  homeserver client API URLs
//   CA_PEM_FILE             PEM of the CA behind both homeservers' certificates
//   ANN_USER, BOB_USER      full user ids (ann@a.test); the part before @ is registered
//   ANN_PASSWORD, BOB_PASSWORD, PASSPHRASE   optional (defaults below)
//   ARTIFACTS               directory for screenshots and failure reports
//   CHROMIUM                browser executable [/usr/bin/chromium]
//   E2E_TIMEOUT_MS          global deadline [300000]
//   E2E_HEADED=1            show the browser windows (needs a display)
//
// Device change: the script prints the line `NEED_DEVICE_CHANGE` on stdout, then waits
// until a line arrives on stdin (`DEVICE_CHANGED`, or `FAILED <why>`) or the file
// `$ARTIFACTS/device-changed` appears. By then bob must have logged in a second device
// that has published its KeyPackages (e.g. `parley login` + `parley sync` in another
// profile); bob then adds his new device to the conversation from the web app.
//
// Exit code 0 on success; 1 with `FAILED: <step>: <why>` on stderr (plus screenshots of
// both windows and each `parley ui`'s view through its API in $ARTIFACTS) otherwise.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const started = Date.now();
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') fail('setup', `environment variable ${name} is required`);
  return value;
};

function fail(step, message) {
  process.stderr.write(`FAILED: ${step}: ${message}\n`);
  process.exit(1);
}

const ANN_URL = env('ANN_URL');
const BOB_URL = env('BOB_URL');
const ANN_SERVER = env('ANN_SERVER');
const BOB_SERVER = env('BOB_SERVER');
const CA_PEM = readFileSync(env('CA_PEM_FILE'), 'utf8');
const ANN_ID = env('ANN_USER', 'ann@a.test');
const BOB_ID = env('BOB_USER', 'bob@b.test');
const ANN_PASSWORD = env('ANN_PASSWORD', 'ann-correct-horse-battery');
const BOB_PASSWORD = env('BOB_PASSWORD', 'bob-correct-horse-battery');
const PASSPHRASE = env('PASSPHRASE', 'a store passphrase for the e2e test');
const ARTIFACTS = env('ARTIFACTS', 'e2e-artifacts');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TIMEOUT_MS = Number(env('E2E_TIMEOUT_MS', '300000'));
/// Deliveries cross two servers on a machine that may be running other tests.
const DELIVERY_MS = 60_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

mkdirSync(ARTIFACTS, { recursive: true });
const username = (id) => id.split('@')[0];
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const log = (line) => process.stdout.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

// ---------------------------------------------------------------------------------------
// The device-change hook: stdin lines or a file.

const stdinLines = [];
let stdinWaiter = null;
if (!process.stdin.isTTY) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    stdinLines.push(line.trim());
    stdinWaiter?.();
  });
  rl.on('close', () => stdinWaiter?.());
}

async function waitForDeviceChange(timeoutMs) {
  const flag = join(ARTIFACTS, 'device-changed');
  process.stdout.write('NEED_DEVICE_CHANGE\n');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = stdinLines.shift();
    if (line !== undefined) {
      if (line.startsWith('FAILED')) throw new Error(`the driver could not add bob's device: ${line}`);
      if (line !== '') return;
    }
    if (existsSync(flag)) return;
    await new Promise((resolve) => {
      stdinWaiter = resolve;
      setTimeout(resolve, 200);
    });
    stdinWaiter = null;
  }
  throw new Error(`no DEVICE_CHANGED line on stdin nor ${flag} within ${timeoutMs / 1000} s`);
}

// ---------------------------------------------------------------------------------------
// One user: a browser context, a page, and what went wrong there.

class User {
  constructor(name, id, url, server, password) {
    Object.assign(this, { name, id, url, server, password });
    const parsed = new URL(url);
    this.origin = parsed.origin;
    this.secret = new URLSearchParams(parsed.hash.slice(1)).get('secret');
    if (!this.secret) fail('setup', `${name}'s URL has no #secret=: ${url}`);
    this.apiErrors = [];
    this.consoleErrors = [];
  }

  async open(browser) {
    this.context = await browser.newContext({ viewport: DESKTOP });
    this.context.setDefaultTimeout(30_000);
    this.page = await this.context.newPage();
    this.page.on('console', (msg) => {
      if (msg.type() === 'error') {
        this.consoleErrors.push(msg.text());
        log(`${this.name} console error: ${msg.text()}`);
      }
    });
    this.page.on('pageerror', (err) => {
      this.consoleErrors.push(String(err));
      log(`${this.name} page error: ${err}`);
    });
    this.page.on('response', async (response) => {
      const url = new URL(response.url());
      if (!url.pathname.startsWith('/api/') || response.status() < 400) return;
      let body = '';
      try {
        body = (await response.text()).slice(0, 500);
      } catch {
        // the page navigated away
      }
      const line = `${response.request().method()} ${url.pathname} -> ${response.status()} ${body}`;
      this.apiErrors.push(line);
      log(`${this.name} API: ${line}`);
    });
    await this.page.goto(this.url);
  }

  /// The local process's own view, through its API (for failure reports).
  async api(path) {
    const response = await fetch(`${this.origin}${path}`, {
      headers: { Authorization: `Bearer ${this.secret}` },
    });
    const text = await response.text();
    try {
      return { status: response.status, body: JSON.parse(text) };
    } catch {
      return { status: response.status, body: text };
    }
  }

  get conversations() {
    return this.page.getByRole('navigation', { name: 'Conversations' });
  }
  get messages() {
    return this.page.getByRole('log', { name: 'Messages' });
  }
  get encryption() {
    return this.page.getByRole('status', { name: 'Encryption' });
  }
  /// The message article with this text.
  message(text) {
    return this.messages.getByRole('article').filter({ hasText: text });
  }
  dialog(name) {
    return this.page.getByRole('dialog', { name });
  }
}

const ann = new User('ann', ANN_ID, ANN_URL, ANN_SERVER, ANN_PASSWORD);
const bob = new User('bob', BOB_ID, BOB_URL, BOB_SERVER, BOB_PASSWORD);
const screenshots = [];
let currentStep = 'setup';

async function step(name, body) {
  currentStep = name;
  log(`step: ${name}`);
  await body();
}

async function screenshot(user, name, options = {}) {
  const path = join(ARTIFACTS, `${name}.png`);
  await user.page.screenshot({ path, fullPage: false, ...options });
  screenshots.push(path);
  log(`screenshot ${path}`);
}

/// Waits until `locator` (the first element it matches) is visible; the error says what.
async function visible(locator, what, timeout) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch (e) {
    throw new Error(`${what} did not appear${timeout ? ` within ${timeout / 1000} s` : ''} (${firstLine(e)})`);
  }
}

/// Waits until nothing matches `locator`.
async function gone(locator, what, timeout) {
  try {
    await locator.first().waitFor({ state: 'detached', timeout });
  } catch (e) {
    throw new Error(`${what} was still there${timeout ? ` after ${timeout / 1000} s` : ''} (${firstLine(e)})`);
  }
}

/// Polls `probe` (which returns a value, or throws) until `accept(value)`; Playwright's
/// own waits cover elements, this covers comparisons of text.
async function until(what, probe, accept, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (e) {
      last = `(${firstLine(e)})`;
    }
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeout / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

async function closeDialogs(user) {
  const dialogs = user.page.getByRole('dialog');
  for (let i = 0; i < 4 && (await dialogs.count()) > 0; i++) {
    const close = dialogs.last().getByRole('button', { name: /^(close|done|cancel|×)$/i });
    if ((await close.count()) > 0) await close.first().click();
    else await user.page.keyboard.press('Escape');
    await dialogs.nth(await dialogs.count() - 1).waitFor({ state: 'hidden', timeout: 2_000 }).catch(() => {});
  }
  if ((await dialogs.count()) > 0) throw new Error(`${user.name}: a dialog would not close (no Close button, Escape ignored)`);
}

/// "… 1 of 1 members verified" (or "all … verified"), and no changed contacts.
function allVerified(text) {
  if (/changed devices/i.test(text)) return false;
  const counted = /(\d+) of (\d+)[^·]*verified/i.exec(text);
  if (counted) return counted[1] === counted[2] && counted[1] !== '0';
  return /verified/i.test(text) && !/not verified|unverified/i.test(text);
}

async function register(user) {
  const page = user.page;
  await visible(page.getByRole('heading', { name: 'Sign in to Parley' }), `${user.name}: heading "Sign in to Parley"`);
  await page.getByLabel('Server URL').fill(user.server);
  await page.getByLabel('Username').fill(username(user.id));
  await page.getByLabel('Password', { exact: true }).fill(user.password);
  await page.getByLabel('Store passphrase').fill(PASSPHRASE);
  await page.getByRole('checkbox', { name: 'Private CA' }).check();
  await page.getByLabel('CA certificate (PEM)').fill(CA_PEM);
}

async function openConversationWith(user, other) {
  const entry = user.conversations.getByRole('button', { name: new RegExp(escapeRe(other.id)) });
  await visible(entry, `${user.name}: the conversation with ${other.id} in nav "Conversations"`, DELIVERY_MS);
  await entry.first().click();
  await visible(user.messages, `${user.name}: log "Messages" after opening the conversation`);
  await visible(user.encryption, `${user.name}: status "Encryption"`);
}

async function send(user, text) {
  await user.page.getByRole('textbox', { name: 'Message' }).fill(text);
  await user.page.getByRole('button', { name: 'Send' }).click();
}

async function seenByBoth(text, sender) {
  for (const user of [ann, bob]) {
    await visible(user.message(text), `${user.name}: the message "${text}" in log "Messages"`, DELIVERY_MS);
  }
  const article = (sender === ann ? bob : ann).message(text).first();
  const shown = await article.innerText();
  if (!shown.includes(username(sender.id)))
    throw new Error(`the message "${text}" does not name its sender ${sender.id}: ${JSON.stringify(shown)}`);
  if ((await article.locator('time').count()) === 0)
    throw new Error(`the message "${text}" has no <time>: ${JSON.stringify(shown)}`);
}

async function openProfile(user, other) {
  await user.page.getByRole('button', { name: 'Members', exact: true }).click();
  const members = user.dialog('Members');
  await visible(members, `${user.name}: dialog "Members"`);
  await members.getByRole('button', { name: `Profile of ${other.id}`, exact: true }).click();
  const profile = user.dialog(`Profile of ${other.id}`);
  await visible(profile, `${user.name}: dialog "Profile of ${other.id}"`);
  return profile;
}

async function safetyNumber(user, profile) {
  return until(
    `${user.name}: the element labelled "Safety number" (12 groups of 5 digits)`,
    async () => (await profile.getByLabel('Safety number').innerText()).replace(/\s+/g, ' ').trim(),
    (text) => /^(\d{5} ){11}\d{5}$/.test(text),
  );
}

// ---------------------------------------------------------------------------------------

async function run() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !process.env.E2E_HEADED,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ].filter((flag) => flag !== '--headless' || !process.env.E2E_HEADED),
  });
  log(`Chromium ${browser.version()}`);
  try {
    await flow();
  } catch (error) {
    // Report while both windows are still open, for their screenshots.
    await report(error).catch((e) => process.stderr.write(`(report failed: ${e})\n`));
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { reported: true });
  } finally {
    await browser.close().catch(() => {});
  }

  async function flow() {
    await step('open both apps', async () => {
      await ann.open(browser);
      await bob.open(browser);
      for (const user of [ann, bob]) {
        const hash = await user.page.evaluate(() => location.hash);
        if (hash.includes('secret')) throw new Error(`${user.name}: the secret is still in the address bar (${hash})`);
      }
    });

    await step('register both users', async () => {
      await register(ann);
      await screenshot(ann, '01-sign-in');
      await register(bob);
      for (const user of [ann, bob]) {
        await user.page.getByRole('button', { name: 'Create account' }).click();
      }
      for (const user of [ann, bob]) {
        await visible(user.conversations, `${user.name}: nav "Conversations" after "Create account"`, DELIVERY_MS);
        await visible(user.page.getByRole('button', { name: 'New conversation' }), `${user.name}: button "New conversation"`);
        const session = await user.api('/api/session');
        if (session.body?.user_id !== user.id)
          throw new Error(`${user.name}: GET /api/session says ${JSON.stringify(session.body)}, expected user_id ${user.id}`);
      }
    });

    await step('ann creates a conversation with bob', async () => {
      await ann.page.getByRole('button', { name: 'New conversation' }).click();
      const dialog = ann.dialog('New conversation');
      await visible(dialog, 'ann: dialog "New conversation"');
      await dialog.getByLabel('People (user ids, comma-separated)').fill(bob.id);
      await dialog.getByRole('button', { name: 'Create' }).click();
      await gone(dialog, 'ann: dialog "New conversation" after "Create"', DELIVERY_MS);
      await openConversationWith(ann, bob);
    });

    await step('bob sees the conversation', async () => {
      const entry = bob.conversations.getByRole('button', { name: new RegExp(escapeRe(ann.id)) });
      await visible(entry, `bob: the conversation with ${ann.id} in nav "Conversations"`, DELIVERY_MS);
      await screenshot(bob, '02-conversation-list');
      await openConversationWith(bob, ann);
    });

    await step('messages both ways', async () => {
      await send(ann, 'Hello Bob, this is Ann on a.test');
      await seenByBoth('Hello Bob, this is Ann on a.test', ann);
      await send(bob, 'Hi Ann! Bob here, from b.test');
      await seenByBoth('Hi Ann! Bob here, from b.test', bob);
      await send(ann, 'Shall we compare safety numbers?');
      await seenByBoth('Shall we compare safety numbers?', ann);
      const mine = await ann.message('Hello Bob, this is Ann on a.test').first().innerText();
      if (!/\b(Sent|Delivered)\b/.test(mine))
        throw new Error(`ann's own message shows neither "Sent" nor "Delivered": ${JSON.stringify(mine)}`);
      await screenshot(ann, '03-conversation');
    });

    await step('react, reply and edit, seen on the other side', async () => {
      // bob reacts to ann's question; ann sees the count.
      const question = 'Shall we compare safety numbers?';
      const onBob = bob.message(question).first();
      await onBob.getByRole('button', { name: 'React', exact: true }).click();
      await onBob.getByRole('button', { name: 'React with 👍', exact: true }).click();
      await visible(onBob.getByRole('button', { name: '👍 1', exact: true }), 'bob: reaction "👍 1" on his side');
      await visible(ann.message(question).first().getByRole('button', { name: '👍 1', exact: true }),
        'ann: reaction "👍 1" on her question', DELIVERY_MS);
      // ann replies to bob's message; bob sees the quote.
      const quoted = 'Hi Ann! Bob here, from b.test';
      await ann.message(quoted).first().getByRole('button', { name: 'Reply', exact: true }).click();
      await visible(ann.page.getByRole('status', { name: 'Replying to' }).filter({ hasText: quoted }),
        'ann: "Replying to" bar naming bob\'s message');
      const reply = 'Nice to meet you';
      await send(ann, reply);
      const onBobReply = bob.message(reply).filter({ has: bob.page.getByLabel('In reply to') });
      await visible(onBobReply.filter({ hasText: quoted }), 'bob: the reply with its quote of his message', DELIVERY_MS);
      // ann edits her reply; bob sees the new text, marked edited.
      const mine = ann.message(reply).filter({ has: ann.page.getByLabel('In reply to') }).first();
      await mine.getByRole('button', { name: 'Edit message', exact: true }).click();
      await mine.getByLabel('New text').fill('Nice to meet you, Bob');
      await mine.getByRole('button', { name: 'Save', exact: true }).click();
      await visible(bob.message('Nice to meet you, Bob').filter({ hasText: '(edited)' }),
        'bob: the edited reply marked "(edited)"', DELIVERY_MS);
      await screenshot(bob, '03b-reactions-and-replies');
    });

    await step('ann attaches an image; bob sees its preview', async () => {
      // A 1x1 PNG, encrypted by ann's parley ui, uploaded to a.test, fetched by b.test.
      const png = Buffer.from(
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
        'base64',
      );
      await ann.page.getByRole('textbox', { name: 'Message' }).fill('A picture for Bob');
      await ann.page.getByLabel('File to attach').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
      for (const user of [ann, bob]) {
        const preview = user.messages.getByRole('img', { name: 'Preview of dot.png' });
        await visible(preview, `${user.name}: image "Preview of dot.png"`, 60_000);
        const width = await until(`${user.name}: the preview's natural width`,
          () => preview.evaluate((img) => img.naturalWidth), (w) => w === 1, 20_000);
        log(`${user.name}: preview of dot.png shown (${width}px wide)`);
        await visible(user.message('A picture for Bob').first(), `${user.name}: the picture's text`);
      }
      await screenshot(bob, '03b-image-preview');
    });

    await step('both verify the safety number', async () => {
      const annProfile = await openProfile(ann, bob);
      const bobProfile = await openProfile(bob, ann);
      const annNumber = await safetyNumber(ann, annProfile);
      const bobNumber = await safetyNumber(bob, bobProfile);
      if (annNumber !== bobNumber)
        throw new Error(`the safety numbers differ: ann sees ${annNumber}, bob sees ${bobNumber}`);
      log(`safety number ${annNumber} on both sides`);
      await visible(annProfile.getByText('Not verified', { exact: true }), 'ann: "Not verified" before marking');
      await screenshot(ann, '04-profile-safety-number');
      for (const [user, profile] of [[ann, annProfile], [bob, bobProfile]]) {
        await profile.getByRole('button', { name: 'Mark verified' }).click();
        await visible(profile.getByText('Verified', { exact: true }), `${user.name}: "Verified" after "Mark verified"`);
        await closeDialogs(user);
        await until(`${user.name}: encryption.all_verified of GET /api/conversations`,
          async () => (await user.api('/api/conversations')).body?.[0]?.encryption?.all_verified, (v) => v === true, 10_000);
        const status = await until(`${user.name}: status "Encryption" saying every member is verified`,
          () => user.encryption.innerText(), allVerified, 10_000);
        log(`${user.name}: ${status}`);
      }
    });

    await step('a disappearing message vanishes on both sides', async () => {
      const select = ann.page.getByRole('combobox', { name: 'Disappearing messages' });
      const labels = await select.locator('option').allInnerTexts();
      const shortest = labels.find((label) => /^30 seconds$/i.test(label.trim())) ?? labels.find((l) => !/off/i.test(l));
      if (!shortest) throw new Error(`select "Disappearing messages" has no timer option: ${JSON.stringify(labels)}`);
      await select.selectOption({ label: shortest.trim() });
      await until('ann: the conversation timer through GET /api/conversations',
        async () => (await ann.api('/api/conversations')).body?.[0]?.timer_secs ?? null, (secs) => secs > 0, 10_000);
      const text = 'This message will self-destruct';
      const sentAt = Date.now();
      await send(ann, text);
      await seenByBoth(text, ann);
      await visible(ann.message(text).filter({ hasText: /Disappears in/ }), 'ann: "Disappears in …" on the message');
      await visible(bob.message(text).filter({ hasText: /Disappears in/ }), 'bob: "Disappears in …" on the message');
      await screenshot(ann, '05-disappearing-message');
      for (const user of [ann, bob]) {
        await gone(user.message(text), `${user.name}: the disappearing message`, Math.max(5_000, sentAt + 90_000 - Date.now()));
      }
      log(`the disappearing message vanished on both sides after ${((Date.now() - sentAt) / 1000).toFixed(1)} s`);
      // Not only hidden by the page: deleted from both local stores.
      for (const user of [ann, bob]) {
        const path = `/api/conversations/${encodeURIComponent(await groupId(user))}/messages`;
        await until(`${user.name}: GET ${path} still lists the expired message`,
          async () => {
            const r = await user.api(path);
            if (r.status !== 200) throw new Error(`GET ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
            return r.body.some((m) => m.text === text);
          }, (listed) => listed === false, 30_000);
      }
      await select.selectOption({ value: '' });
    });

    await step("bob's new device", async () => {
      await waitForDeviceChange(120_000);
      // The new device published its KeyPackages; bob adds it to the conversation.
      await bob.page.getByRole('button', { name: 'Add people' }).click();
      const dialog = bob.dialog('Add people');
      await visible(dialog, 'bob: dialog "Add people"');
      await dialog.getByLabel('People (user ids, comma-separated)').fill(bob.id);
      await dialog.getByRole('button', { name: 'Add' }).click();
      await gone(dialog, 'bob: dialog "Add people" after "Add" (adding his own new device)', DELIVERY_MS);
    });

    await step('ann is warned and sending is paused', async () => {
      await visible(ann.encryption.filter({ hasText: new RegExp(`${escapeRe(bob.id)} changed devices`) }),
        `ann: status "Encryption" saying "${bob.id} changed devices"`, DELIVERY_MS);
      await screenshot(ann, '06-device-change-warning');
      const blocked = 'Is this still you, Bob?';
      const composer = ann.page.getByRole('textbox', { name: 'Message' });
      if (await composer.isEnabled()) await send(ann, blocked);
      else log('ann: the composer is disabled while sending is paused');
      const paused = ann.page.getByRole('alert').filter({ hasText: `Sending is paused: ${bob.id} changed devices` });
      await visible(paused, `ann: alert "Sending is paused: ${bob.id} changed devices. …" after "Send"`);
      const stored = await ann.api(`/api/conversations/${encodeURIComponent(await groupId(ann))}/messages`);
      if (stored.status !== 200)
        throw new Error(`GET /api/conversations/{group_id}/messages -> ${stored.status} ${JSON.stringify(stored.body)}`);
      if (JSON.stringify(stored.body).includes(blocked))
        throw new Error(`the blocked message was sent anyway: ${JSON.stringify(stored.body).slice(0, 300)}`);
      await screenshot(ann, '07-sending-paused');
      await paused.getByRole('button', { name: 'Review' }).click();
      const profile = ann.dialog(`Profile of ${bob.id}`);
      await visible(profile, `ann: dialog "Profile of ${bob.id}" after "Review"`);
      const alert = profile.getByRole('alert').filter({ hasText: `${bob.id} has new or removed devices since you verified them` });
      await visible(alert, `ann: alert "${bob.id} has new or removed devices since you verified them. …" in the profile`);
      await visible(profile.getByText('Devices changed since you verified'), 'ann: "Devices changed since you verified"');
      await screenshot(ann, '08-device-change-review');
      await alert.getByRole('button', { name: 'Acknowledge without verifying' }).click();
      await visible(profile.getByText('Not verified', { exact: true }), 'ann: "Not verified" after "Acknowledge without verifying"');
      await gone(alert, 'ann: the changed-devices alert after acknowledging', 10_000);
      await closeDialogs(ann);
      await until('ann: status "Encryption" no longer saying "changed devices"',
        () => ann.encryption.innerText(), (text) => !/changed devices/i.test(text));
    });

    await step('sending works again', async () => {
      const text = 'Acknowledged: sending again';
      await send(ann, text);
      await seenByBoth(text, ann);
      await gone(ann.page.getByRole('alert').filter({ hasText: 'Sending is paused' }), 'ann: alert "Sending is paused"', 10_000);
    });

    await step('ann names the group in its settings and bob sees the name', async () => {
      const name = 'Weekend plans';
      await ann.page.getByRole('button', { name: 'Settings', exact: true }).click();
      const settings = ann.dialog('Group settings');
      await visible(settings, 'ann: dialog "Group settings"');
      await visible(settings.getByText('You are an admin.'), 'ann: "You are an admin."');
      await settings.getByRole('textbox', { name: 'Name' }).fill(name);
      await settings.getByRole('button', { name: 'Save' }).click();
      await gone(settings.getByText('Saving…'), 'ann: "Saving…"', 30_000);
      await screenshot(ann, '09a-group-settings');
      // The dialog is modal: the page behind it is hidden from the accessibility tree.
      await closeDialogs(ann);
      await visible(ann.page.getByRole('heading', { name: new RegExp(`^${escapeRe(name)}`) }), `ann: heading "${name}"`, 30_000);
      await visible(bob.page.getByRole('heading', { name: new RegExp(`^${escapeRe(name)}`) }), `bob: heading "${name}"`, 30_000);
      // Bob is a member, not an admin: he sees the name and cannot change it.
      await bob.page.getByRole('button', { name: 'Settings', exact: true }).click();
      const his = bob.dialog('Group settings');
      await visible(his.getByText('Only admins can change them.'), 'bob: "Only admins can change them."');
      await closeDialogs(bob);
    });

    await step('phone width', async () => {
      await ann.page.setViewportSize(PHONE);
      await visible(ann.page.getByRole('textbox', { name: 'Message' }), 'ann at 390x844: textbox "Message"');
      await screenshot(ann, '09-phone-conversation');
      await bob.page.setViewportSize(PHONE);
      await screenshot(bob, '10-phone-bob');
    });
  }
}

async function groupId(user) {
  const list = await user.api('/api/conversations');
  const id = list.body?.[0]?.group_id;
  if (!id) throw new Error(`${user.name}: GET /api/conversations -> ${list.status} ${JSON.stringify(list.body)}`);
  return id;
}

async function report(error) {
  process.stderr.write(`FAILED: ${currentStep}: ${firstLine(error)}\n`);
  if (error?.stack) process.stderr.write(`${error.stack}\n`);
  const state = {};
  for (const user of [ann, bob]) {
    if (user.page) {
      const path = join(ARTIFACTS, `failure-${user.name}.png`);
      await user.page.screenshot({ path, fullPage: true }).then(() => process.stderr.write(`  screenshot ${path}\n`), () => {});
    }
    const view = { api_errors: user.apiErrors, console_errors: user.consoleErrors };
    for (const path of ['/api/session', '/api/conversations']) {
      view[path] = await user.api(path).catch((e) => `unreachable: ${firstLine(e)}`);
    }
    state[user.name] = view;
    for (const line of user.apiErrors.slice(-5)) process.stderr.write(`  ${user.name} API error: ${line}\n`);
  }
  const path = join(ARTIFACTS, 'failure.json');
  writeFileSync(path, JSON.stringify({ step: currentStep, error: String(error?.stack ?? error), state }, null, 2));
  process.stderr.write(`  state of both local processes: ${path}\n`);
}

const timer = setTimeout(async () => {
  await report(new Error(`global timeout of ${TIMEOUT_MS / 1000} s`)).catch(() => {});
  process.exit(1);
}, TIMEOUT_MS);

try {
  await run();
  clearTimeout(timer);
  log(`PASSED in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots:`);
  for (const path of screenshots) process.stdout.write(`  ${path}\n`);
  process.exit(0);
} catch (error) {
  clearTimeout(timer);
  if (!error?.reported) await report(error).catch((e) => process.stderr.write(`(report failed: ${e})\n`));
  process.exit(1);
}
