import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../lib/logger.js';
import { createSchemas, RecordNames, type Decision, type Label } from '../../schemas/index.js';
import { startScoringService, type ScoringService } from '../../scorer/index.js';
import { samplePayment } from '../fixtures.js';
import { openRun, type RunStack, testServiceConfig, testTopics, uniq } from './stack.js';
import { collect, manifestWithNorms, until, writePolicy } from './helpers-review.js';

/** Debian's chromium (.ci/run installs it when missing). */
const CHROMIUM = '/usr/bin/chromium';
const schemas = createSchemas();
const run = uniq('browser');
const topics = testTopics(run);
const KEY = 'browser-test-analyst-key';

describe('the analyst page in headless Chromium, on the real stack', () => {
  let stack: RunStack;
  let service: ScoringService;
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    stack = await openRun(run);
    service = await startScoringService(
      testServiceConfig(run, {
        modelManifest: manifestWithNorms(),
        policyVersion: 'unused',
        policyFile: writePolicy({
          version: 'browser-v1',
          thresholds: { default: 0.9 },
          block: { ip: ['198.51.100.66'] },
        }),
        apiKeys: [{ role: 'analyst', name: 'carol', key: KEY }],
      }),
      createSilentLogger(),
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await stack.close();
  });

  it('open the page, claim a case, resolve it, and the Label arrives on the labels topic', async () => {
    const labels = await collect(topics.labels);
    const res = await fetch(`${service.url}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'PAYMENT',
        event: samplePayment({
          event_id: `${run}-e1`,
          account_id: `${run}-acct`,
          event_time: Date.now() - 1000,
          ip: '198.51.100.66',
        }),
      }),
    });
    const decision = (await res.json()) as Decision;
    expect(decision.outcome).toBe('FLAG');
    const id = decision.event_id;

    const page = await browser.newPage();
    await page.goto(`${service.url}/review/`);
    await page.fill('#key', KEY);
    await page.click('#use-key');
    const row = page.locator(`#queue tbody tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    await page.locator('#case-title').filter({ hasText: id }).waitFor();
    expect(await page.locator('#reasons').innerText()).toContain('BLOCK_LIST_IP');
    expect(await page.locator('#event').innerText()).toContain(id);
    await page.click('#claim');
    await page.locator('#case-status').filter({ hasText: 'CLAIMED by carol' }).waitFor();
    await page.selectOption('#label', 'FRAUD');
    await page.fill('#note', 'confirmed with the card holder');
    await page.click('#resolve');
    await page
      .locator('#message')
      .filter({ hasText: `Resolved ${id} as FRAUD` })
      .waitFor();
    await page.locator('#case-status').filter({ hasText: 'RESOLVED' }).waitFor();
    expect(await page.locator('#audit').innerText()).toMatch(
      /OPENED[\s\S]*CLAIMED by carol[\s\S]*RESOLVED by carol/,
    );

    const label = await until(() =>
      labels.values
        .map((v) => schemas.codec.decode<Label>(v, [RecordNames.Label]).value)
        .find((l) => l.event_id === id),
    );
    await labels.stop();
    expect(label).toMatchObject({
      account_id: `${run}-acct`,
      label: 'FRAUD',
      source: 'ANALYST',
      analyst: 'carol',
      note: 'confirmed with the card holder',
    });
  });
});
