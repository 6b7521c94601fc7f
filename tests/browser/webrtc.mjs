// Publishes Chromium's fake camera through srs-proxy's whip.html and plays it back in
// whep.html, until the player has decoded more than --frames video frames, then plays on for
// --hold seconds. Prints one JSON line; exits 1 on failure with both pages' state and console
// logs on stderr.
//
//   node webrtc.mjs --base http://127.0.0.1:18080 --app live --stream s [--frames 50]
//     [--timeout 40] [--hold 0] [--api http://origin:1985]
//
// --api sends the signalling to another HTTP API (an origin's, to tell it from the proxy).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string' },
    app: { type: 'string', default: 'live' },
    stream: { type: 'string', default: 'livestream' },
    frames: { type: 'string', default: '50' },
    timeout: { type: 'string', default: '40' },
    hold: { type: 'string', default: '0' },
    api: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!opts.base) {
  console.error('usage: node webrtc.mjs --base http://host:port [--app a] [--stream s]');
  process.exit(2);
}
const wanted = Number(opts.frames);
const deadline = Date.now() + Number(opts.timeout) * 1000;
const query = new URLSearchParams({ app: opts.app, stream: opts.stream });
if (opts.api) query.set('api', opts.api);

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A page's session as its script shows it. */
const status = (page) =>
  page.evaluate(() => {
    const s = window.srs;
    const pc = s && s.pc;
    return {
      connection: pc ? pc.connectionState : 'none',
      ice: pc ? pc.iceConnectionState : 'none',
      state: document.getElementById('state').textContent,
      location: s ? s.location : null,
      errors: s ? s.errors : ['no session'],
    };
  });

/** Opens `page` of the players, logging its console lines into `logs`. */
async function open(context, name, logs) {
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`));
  page.on('requestfailed', (r) =>
    logs.push(`[${name} requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`),
  );
  const url = `${opts.base}/players/${name}.html?${query}`;
  const response = await page.goto(url);
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url}: ${response ? response.status() : 'no response'}`);
  }
  return page;
}

/** Polls `check` every 250 ms until it returns a value, failing at the deadline with `what`. */
async function until(what, check) {
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const started = Date.now();
const userDataDir = mkdtempSync(join(tmpdir(), 'srs-chromium-'));
const logs = [];
const pages = {};
let context;
let code = 0;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true,
    args: ARGS,
  });
  pages.whip = await open(context, 'whip', logs);
  await until('the WHIP publisher to connect', async () => {
    const s = await status(pages.whip);
    if (s.errors.length || s.connection === 'failed') {
      throw new Error(`WHIP publisher: ${s.errors.join('; ') || s.connection}`);
    }
    return s.connection === 'connected';
  });
  const published = Date.now();
  pages.whep = await open(context, 'whep', logs);
  const stats = await until(`more than ${wanted} frames decoded`, async () => {
    const s = await status(pages.whep);
    if (s.errors.length || s.connection === 'failed') {
      throw new Error(`WHEP player: ${s.errors.join('; ') || s.connection}`);
    }
    const v = await pages.whep.evaluate(() => window.videoStats());
    return v && v.framesDecoded > wanted ? v : null;
  });
  const played = Date.now();
  await sleep(Number(opts.hold) * 1000);
  const held = (await pages.whep.evaluate(() => window.videoStats())) || stats;
  // DELETE both sessions through the proxy, as the Stop buttons do.
  const deleted = {};
  for (const [name, page] of Object.entries(pages)) {
    deleted[name] = await page.evaluate(async () => {
      const location = window.srs.location;
      await window.srs.stop(false);
      return { location, status: window.srs.deleted, errors: window.srs.errors };
    });
  }
  console.log(JSON.stringify({
    ok: true,
    framesDecoded: stats.framesDecoded,
    framesAfterHold: held.framesDecoded,
    width: held.width,
    height: held.height,
    bytesReceived: held.bytesReceived,
    packetsLost: held.packetsLost,
    publishSeconds: (published - started) / 1000,
    playSeconds: (played - published) / 1000,
    deleted,
  }));
} catch (e) {
  code = 1;
  const states = {};
  for (const [name, page] of Object.entries(pages)) {
    states[name] = await status(page).catch((err) => ({ unreadable: String(err) }));
  }
  console.log(JSON.stringify({ ok: false, error: String(e.message || e), pages: states }));
  console.error(logs.join('\n'));
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
