// The browser half of test_web_browser.sh: headless Debian chromium driven by playwright-core
// against a running drover web. Usage:
//   node web_browser.js URL TOKEN ARTIFACT_DIR DROVER
// Prints one JSON line of measurements (time to first render, page weight) and exits 0, or
// prints what failed and exits 1.
'use strict';
const { chromium } = require('playwright-core');
const { execFileSync } = require('child_process');
const path = require('path');

const [url, token, outDir, drover] = process.argv.slice(2);
const evil = '<script>alert(1)</script>';

function status(job) {
  return JSON.parse(execFileSync(drover, ['status', job, '--json'], { encoding: 'utf8' }));
}
function check(ok, what) {
  if (!ok) throw new Error(what);
  console.error('--- ' + what);
}
async function until(what, secs, fn) {
  const end = Date.now() + secs * 1000;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error('timed out after ' + secs + ' s waiting for: ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('dialog', (d) => { problems.push('a dialog opened: ' + d.message()); d.dismiss(); });
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  const measures = {};

  // Loads p, then records its first contentful paint and its weight (the document and what it
  // loaded, decoded sizes: as a first visit with an empty cache would fetch them), and takes a
  // screenshot.
  async function visit(name, p) {
    await page.goto(url + p, { waitUntil: 'load' });
    const fcp = await page.waitForFunction(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? e.startTime : null;
    }, null, { timeout: 3000 }).then((h) => h.jsonValue()).catch(() => null);
    const bytes = await page.evaluate(() => performance.getEntriesByType('navigation')
      .concat(performance.getEntriesByType('resource'))
      .reduce((n, e) => n + e.decodedBodySize, 0));
    const shot = path.join(outDir, name + '.png');
    await page.screenshot({ path: shot, fullPage: true });
    measures[name] = { path: p, first_contentful_paint_ms: fcp && Math.round(fcp), bytes, screenshot: shot };
  }

  // The jobs page lists the job, and its progress moves without a reload.
  await visit('jobs', '/');
  const done = () => page.locator('tr[data-job="br"] td[data-k=done]').textContent();
  const first = Number(await done());
  await until('the done count of br to move on the jobs page', 20, async () => Number(await done()) > first);
  check(true, 'jobs page: br listed, its done count moved from ' + first + ' to ' + (await done()) + ' by itself');

  // The hostile id is text on the job page, and no dialog opened.
  await visit('job-evil', '/jobs/evil');
  const ids = await page.locator('#dead td.id').first().textContent();
  check(ids === evil, 'job page: the dead id shows as the text ' + JSON.stringify(ids));
  await page.waitForTimeout(300);
  check(!problems.some((p) => p.startsWith('a dialog')), 'no script from Redis data ran');

  await visit('workers', '/workers');
  check((await page.locator('#workers tbody tr').count()) >= 1, 'workers page: the fleet is listed');

  // Not signed in: no action forms, and an action posted anyway is refused.
  await visit('job', '/jobs/br');
  check((await page.locator('form.act').count()) === 0, 'not signed in: no action forms');
  const refused = await page.evaluate(async () => (await fetch('/jobs/br/pause', {
    method: 'POST', body: new URLSearchParams({ csrf: 'x' }) })).status);
  check(refused === 403 && status('br').state === 'running', 'an action without the token: 403, job still running');
  const expected = (p) => /status of 403/.test(p); // the refusal just asked for
  problems.splice(0, problems.length, ...problems.filter((p) => !expected(p)));

  // Signed in: pause from the page pauses the job.
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
  await page.goto(url + '/jobs/br');
  await Promise.all([page.waitForNavigation(), page.click('button[value=pause]')]);
  check((await page.locator('p.msg').textContent()) === 'job br: paused', 'pause: the page says so');
  check(status('br').state === 'paused', 'pause from the page: drover status says paused');
  await visit('job-paused', '/jobs/br');

  // Drain the worker from the workers page: it leaves the registry once it has stopped.
  await page.goto(url + '/workers');
  await Promise.all([page.waitForNavigation(), page.click('tr[data-worker="w-br"] button')]);
  check((await page.locator('p.msg').textContent()) === 'worker w-br: asked to drain', 'drain: the page says so');
  const workers = () => execFileSync(drover, ['workers', '--json'], { encoding: 'utf8' });
  await until('w-br to drain and leave', 20, async () => !workers().includes('"id":"w-br"'));
  check(true, 'drain from the page: w-br finished and left drover workers');

  // A phone's width.
  await page.setViewportSize({ width: 375, height: 740 });
  await visit('jobs-phone', '/');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 375, 'phone width: the page does not scroll sideways (' + wide + ' px)');

  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  check(csp.length === 0, 'no Content-Security-Policy violations');
  check(problems.length === 0, 'no console errors or dialogs: ' + JSON.stringify(problems));
  await browser.close();
  console.log(JSON.stringify(measures));
})().catch((e) => {
  console.error('FAIL: ' + e.message);
  process.exit(1);
});
