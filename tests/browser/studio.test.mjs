// The studio in a real browser (run by .ci/browser): Debian's chromium driven by
// playwright-core, against the service binary with a game key, a read-only key and the
// mock provider of mock_provider.mjs. Each step checks what the page shows against what
// the API says. Screenshots of every view go to $SCREENSHOTS. Exits non-zero on failure.
//
// Environment: STUDIO_URL, GAME_KEY, READ_KEY, MOCK_URL, CHROMIUM, SCREENSHOTS.

import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('STUDIO_URL');
const gameKey = env('GAME_KEY');
const readKey = env('READ_KEY');
const mockUrl = env('MOCK_URL');
const shots = env('SCREENSHOTS');
const executablePath = env('CHROMIUM');

const CHARACTER = 'innkeeper_mara';
const PLAYER = 'p-7';
const LINES = [
  'Any rooms free tonight?',
  'I have a cat named Whiskers, is that all right?',
  'And is there breakfast?',
];
const CAT_FACT = 'Player has a cat named Whiskers';
// The shared world: another player, so that the steps above keep their figures.
const WORLD_PLAYER = 'p-world';
const LORE = { id: 'crooked_stag', text: 'The Crooked Stag is the oldest inn of Eastmarch.' };
const SECRET = {
  id: 'mara_secret',
  text: 'Mara keeps the letters of the baron under the cellar stairs.',
  flag: 'met_the_baron',
};
const EVENT_TEXT = 'The player broke up a brawl in the common room';

// ---- Helpers --------------------------------------------------------------------------

async function api(method, apiPath, { key = gameKey, body } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(base + apiPath, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function apiOk(method, apiPath, options) {
  const { status, body } = await api(method, apiPath, options);
  assert.ok(status >= 200 && status < 300, `${method} ${apiPath}: ${status} ${JSON.stringify(body)}`);
  return body;
}

// As the studio shows money: micro-dollars, whole cents as cents.
const usd = (value) => {
  const text = Number(value).toFixed(6);
  return '$' + (Number(value) >= 1 ? text.replace(/0{1,4}$/, '') : text);
};
const today = () => new Date().toISOString().slice(0, 10);
const sorted = (list) => [...list].sort();
// The ids a list of the page shows, by its `data-*` attribute.
const shownIds = (locator, attribute) =>
  locator.evaluateAll((nodes, name) => nodes.map((node) => node.getAttribute(name)), attribute);

async function until(what, check, { timeout = 20000, every = 300 } = {}) {
  const giveUp = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > giveUp) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

// Console errors (a CSP violation among them) and uncaught exceptions fail the run; a
// refused request (the forced writes of a read-only key) is the API's answer, not one.
const problems = [];
function watch(page, name) {
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) {
      problems.push(`${name}: console: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`${name}: ${error.message}`));
}

async function signIn(page, key, role) {
  await page.goto(base + '/studio');
  await page.locator('#api-key').waitFor();
  await page.locator('#api-key').fill(key);
  await page.keyboard.press('Enter');
  await page.locator('#role-badge', { hasText: role }).waitFor();
}

async function nav(page, view) {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: view }).click();
  await page.locator(`#view-${view.toLowerCase()}`).waitFor();
}

// ---- Steps ----------------------------------------------------------------------------

const results = [];
async function step(name, run) {
  const started = Date.now();
  try {
    await run();
    results.push(true);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push(false);
    console.log(`FAIL ${name}\n${error.stack || error}`);
    throw error;
  }
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  watch(page, 'game');
  let conversationId;

  await step('the page asks for a key, keeps it in the tab, and a game key may edit', async () => {
    const response = await page.goto(base + '/studio');
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /default-src 'none'/);
    await page.locator('#login').waitFor();
    assert.equal(await page.locator('#nav').isVisible(), false, 'nothing but the key form before a key');
    await screenshot(page, '01-key');
    // Keyboard: the key field, then its button.
    await page.locator('#api-key').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Use key');
    await page.locator('#api-key').fill('not-a-key');
    await page.keyboard.press('Enter');
    await page.locator('#notice', { hasText: 'refused' }).waitFor();
    await page.locator('#api-key').fill(gameKey);
    await page.keyboard.press('Enter');
    await page.locator('#role-badge', { hasText: 'game key' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('npc-studio-key')), gameKey);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'the key is kept for the tab only');
  });

  await step('a character is created and edited', async () => {
    await nav(page, 'Characters');
    await page.getByRole('button', { name: 'New character' }).click();
    await page.locator('#character-id').fill(CHARACTER);
    await page.locator('#character-persona').fill('Gruff innkeeper of the Crooked Stag. Speaks plainly.');
    await page.locator('#lines-high').fill('Ah, my favourite guest!\nBack again?');
    await page.locator('#lines-low').fill('Make it quick.');
    await page.locator('#character-name').fill('Mara');
    await page.keyboard.press('Enter'); // a form submits with Enter
    await page.locator('#character-list button', { hasText: CHARACTER }).waitFor();
    const stored = await apiOk('GET', `/characters/${CHARACTER}`);
    assert.equal(stored.name, 'Mara');
    assert.equal(stored.model, null);
    assert.deepEqual(stored.fallback_lines, { high: ['Ah, my favourite guest!', 'Back again?'], medium: [], low: ['Make it quick.'] });

    await page.locator('#character-list button', { hasText: CHARACTER }).click();
    assert.equal(await page.locator('#character-id').getAttribute('readonly'), '', 'an id is not renamed');
    await page.locator('#character-persona').fill('Gruff innkeeper of the Crooked Stag. Speaks plainly, counts coins.');
    await page.getByRole('button', { name: 'Save character' }).click();
    await until('the edit is stored', async () =>
      /counts coins/.test((await apiOk('GET', `/characters/${CHARACTER}`)).persona));
    await page.locator('#notice', { hasText: 'Saved Mara' }).waitFor();
    await page.locator('#character-saved', { hasText: 'Last saved' }).waitFor();
    await screenshot(page, '02-characters');
  });

  await step('a three-turn streamed conversation shows typing, then each reply with its figures', async () => {
    await nav(page, 'Playground');
    await page.locator('#play-character').selectOption(CHARACTER);
    await page.locator('#play-player').fill(PLAYER);
    await page.locator('#play-affinity').fill('35');
    await page.locator('#play-context').fill('{"location": "tavern", "time_of_day": "night"}');
    await page.getByRole('button', { name: 'New conversation' }).click();
    await page.locator('#chat-title', { hasText: PLAYER }).waitFor();
    conversationId = await page.locator('#play-conversation').inputValue();
    assert.match(conversationId, /^studio-/);

    const replies = page.locator('#chat .msg.character');
    const latencies = [];
    const costs = [];
    for (const [index, line] of LINES.entries()) {
      await page.locator('#say').fill(line);
      await page.keyboard.press('Enter');
      // The mock waits 300 ms before its first piece: the indicator shows meanwhile.
      await page.locator('#typing').waitFor({ state: 'visible', timeout: 3000 });
      assert.equal(await replies.count(), index, 'no reply while the character is typing');
      if (index === 0) await screenshot(page, '03-playground-typing');
      await replies.nth(index).locator('.meta').waitFor();
      assert.equal(await page.locator('#typing').isVisible(), false, 'the indicator goes with the reply');
      const meta = replies.nth(index).locator('.meta');
      assert.equal(await meta.locator('.source').textContent(), 'llm');
      assert.equal(await meta.locator('.reason').count(), 0);
      assert.match(await meta.locator('.tokens').textContent(), /^\d+ \+ \d+ tokens$/);
      latencies.push(Number((await meta.locator('.latency').textContent()).replace(/[^\d]/g, '')));
      costs.push(Number((await meta.locator('.cost').textContent()).replace('$', '')));
    }
    await screenshot(page, '04-playground');

    // What the page shows is what was stored and billed.
    const history = await apiOk('GET', `/conversations/${conversationId}/messages`);
    assert.equal(history.messages.length, 6);
    const shown = await replies.locator('.content').allTextContents();
    assert.deepEqual(shown, history.messages.filter((m) => m.role === 'character').map((m) => m.content));
    assert.deepEqual(
      await page.locator('#chat .msg.player .content').allTextContents(),
      LINES,
    );
    const usage = await apiOk('GET', `/usage?conversation_id=${conversationId}&group_by=purpose`);
    const conversation = usage.breakdown.find((row) => row.key === 'conversation');
    assert.equal(conversation.calls, 3);
    const shownCost = costs.reduce((sum, cost) => sum + cost, 0);
    assert.ok(Math.abs(shownCost - conversation.cost_usd) < 0.0000015, `${shownCost} vs ${conversation.cost_usd}`);
    for (const latency of latencies) {
      assert.ok(latency >= 300, `the mock took at least 300 ms, the reply says ${latency} ms`);
    }

    // Opening the conversation again reads its history.
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await until('the history is shown', async () => (await page.locator('#chat .msg').count()) === 6);
    assert.deepEqual(await page.locator('#chat .msg.player .content').allTextContents(), LINES);
  });

  await step('the inspector shows the summary and the facts, and a fact is forgotten', async () => {
    await nav(page, 'Playground');
    await page.getByRole('button', { name: 'Inspect this pair' }).click();
    await page.locator('#inspection').waitFor();
    // Extraction and the summary run in the background after each turn.
    await until('the cat is remembered', async () => {
      if (await page.locator('#facts tr', { hasText: CAT_FACT }).count()) return true;
      await page.getByRole('button', { name: 'Refresh' }).first().click();
      return false;
    });
    await until('the running summary is shown', async () => {
      const text = await page.locator('#inspect-conversations').textContent();
      if (text.includes('The player took a room')) return true;
      await page.getByRole('button', { name: 'Inspect', exact: true }).click();
      return false;
    });
    const detail = await apiOk('GET', `/conversations/${conversationId}`);
    assert.equal(
      await page.locator(`#inspect-conversations li[data-conversation="${conversationId}"] .summary-text`).textContent(),
      detail.summary,
    );
    const row = page.locator('#facts tr', { hasText: CAT_FACT });
    assert.equal(await row.locator('td').nth(1).textContent(), '7 / 10');
    assert.match(await row.locator('td').nth(2).textContent(), new RegExp(conversationId));
    // Background calls are billed too: once they are done, the spend holds still.
    await until('the background work is done', async () => {
      const jobs = await apiOk('GET', '/jobs/stats');
      return jobs.pending === 0 && jobs.running === 0;
    });
    const budget = await apiOk('GET', `/usage/budget?player_id=${PLAYER}`);
    assert.ok(budget.spent_usd > 0);
    await until('the page shows the month\'s spend', async () => {
      if ((await page.locator('#budget').textContent()).includes(usd(budget.spent_usd))) return true;
      await page.getByRole('button', { name: 'Inspect', exact: true }).click();
      return false;
    });
    await screenshot(page, '05-inspector');

    const before = await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${PLAYER}`);
    assert.ok(before.facts.length >= 2, JSON.stringify(before));
    await page.getByRole('button', { name: `Forget: ${CAT_FACT}` }).click();
    await row.waitFor({ state: 'detached' });
    await page.locator('#notice', { hasText: 'Forgotten' }).waitFor();
    const after = await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${PLAYER}`);
    assert.equal(after.facts.length, before.facts.length - 1);
    assert.ok(!after.facts.some((fact) => fact.text === CAT_FACT), 'the fact is gone from the API too');
    await until('the table is the API\'s list', async () =>
      (await page.locator('#facts tr').count()) === after.facts.length);

    await page.locator('#budget-limit').fill('2.5');
    await page.keyboard.press('Enter');
    await page.locator('#notice', { hasText: 'Limit set' }).waitFor();
    assert.equal((await apiOk('GET', `/usage/budget?player_id=${PLAYER}`)).limit_usd, 2.5);
  });

  await step('the usage chart shows the day\'s cost, the breakdown and the job queue', async () => {
    await nav(page, 'Usage');
    const day = today();
    const bar = page.locator(`#usage-chart rect.bar[data-key="${day}"]`);
    await bar.waitFor();
    const report = await apiOk('GET', `/usage?from=${day}&to=${day}`);
    assert.ok(report.cost_usd > 0);
    assert.equal(Number(await bar.getAttribute('data-value')), report.cost_usd, 'the bar is the day\'s cost');
    assert.ok(Number(await bar.getAttribute('height')) > 0, 'and it is drawn');
    assert.match(await bar.locator('title').textContent(), new RegExp(usd(report.cost_usd).replace('$', '\\$')));
    const from = await page.locator('#usage-from').inputValue();
    const range = await apiOk('GET', `/usage?from=${from}&to=${day}`);
    assert.equal(await page.locator('[data-total="cost"]').textContent(), usd(range.cost_usd));
    for (const purpose of ['conversation', 'fact_extraction']) {
      await page.locator(`#usage-breakdown rect.bar[data-key="${purpose}"]`).waitFor();
    }
    const jobs = await apiOk('GET', '/jobs/stats');
    assert.match(await page.locator('[data-jobs="parked"]').textContent(), /^\d+$/);
    assert.equal(await page.locator('[data-jobs="parked"]').textContent(), String(jobs.parked));
    await screenshot(page, '06-usage');

    // Tokens instead of cost, by model.
    await page.locator('#usage-metric').selectOption('tokens');
    await page.locator('#usage-group').selectOption('model');
    await page.getByRole('button', { name: 'Show' }).click();
    await until('the chart shows tokens', async () =>
      Number(await bar.getAttribute('data-value')) === report.total_tokens);
    await page.locator('#usage-breakdown rect.bar').first().waitFor();
  });

  await step('a long history pages back', async () => {
    // Plain turns through the API (the mock answers them at once): 22 messages.
    for (let turn = 1; turn <= 11; turn += 1) {
      await apiOk('POST', '/conversations/c-long/messages', {
        body: { player_id: 'p-9', character_id: CHARACTER, content: `line ${turn}` },
      });
    }
    await nav(page, 'Playground');
    await page.locator('#play-player').fill('p-9');
    await page.locator('#play-player').dispatchEvent('change');
    await page.locator('#play-conversation option[value="c-long"]').waitFor({ state: 'attached' });
    await page.locator('#play-conversation').selectOption('c-long');
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    const seqs = async () => (await page.locator('#chat .msg').evaluateAll(
      (nodes) => nodes.map((node) => Number(node.dataset.seq)),
    ));
    await until('the newest page is shown', async () => (await seqs()).length === 20);
    assert.deepEqual(await seqs(), Array.from({ length: 20 }, (_, i) => i + 3), 'the newest 20, oldest first');
    await page.getByRole('button', { name: 'Load older messages' }).click();
    await until('the older page is shown', async () => (await seqs()).length === 22);
    assert.deepEqual(await seqs(), Array.from({ length: 22 }, (_, i) => i + 1));
    assert.equal(await page.locator('#older').isVisible(), false, 'nothing older than seq 1');
    assert.equal(await page.locator('#chat .msg .content').first().textContent(), 'line 1');
  });

  await step('a character keeps its factions', async () => {
    await nav(page, 'Characters');
    await page.locator('#character-list button', { hasText: CHARACTER }).click();
    assert.equal(await page.locator('#character-factions').inputValue(), '', 'none yet');
    await page.locator('#character-factions').fill(' stag_staff,eastmarch , ');
    await page.getByRole('button', { name: 'Save character' }).click();
    await until('the factions are stored', async () =>
      (await apiOk('GET', `/characters/${CHARACTER}`)).factions.length === 2);
    const stored = await apiOk('GET', `/characters/${CHARACTER}`);
    assert.deepEqual(sorted(stored.factions), ['eastmarch', 'stag_staff']);
    assert.match(stored.persona, /counts coins/, 'the rest of the character stays');
    assert.equal(stored.fallback_lines.low[0], 'Make it quick.');
    await page.locator('#notice', { hasText: 'Saved Mara' }).waitFor();
    assert.equal(await page.locator('#character-factions').inputValue(), stored.factions.join(', '));
  });

  await step('lore is written, listed, filtered and deleted', async () => {
    await nav(page, 'World');
    assert.equal(await page.locator('#lore-scope-id').isDisabled(), true, 'world lore has no scope id');
    await page.locator('#lore-id').fill(LORE.id);
    await page.locator('#lore-text').fill(LORE.text);
    await page.locator('#lore-tags').fill('inn, history');
    await page.getByRole('button', { name: 'Save lore' }).click();
    const item = page.locator(`#lore-list li[data-lore="${LORE.id}"]`);
    await item.waitFor();
    await page.locator('#notice', { hasText: `Saved lore ${LORE.id}` }).waitFor();
    const stored = await apiOk('GET', `/lore/${LORE.id}`);
    assert.equal(stored.text, LORE.text);
    assert.equal(stored.scope, 'world');
    assert.equal(stored.scope_id, null);
    assert.deepEqual(sorted(stored.tags), ['history', 'inn']);
    assert.deepEqual(stored.requires_flags, []);
    assert.equal(await item.locator('.entry-text').textContent(), LORE.text);
    assert.match(await item.locator('.entry-meta').textContent(), /requires flags: none/);

    // A secret of the character, known only once a flag is set.
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    await page.locator('#lore-id').fill(SECRET.id);
    await page.locator('#lore-text').fill(SECRET.text);
    await page.locator('#lore-scope').selectOption('character');
    await page.locator('#lore-scope-id').fill(CHARACTER);
    await page.locator('#lore-flags').fill(SECRET.flag);
    await page.getByRole('button', { name: 'Save lore' }).click();
    const secret = page.locator(`#lore-list li[data-lore="${SECRET.id}"]`);
    await secret.waitFor();
    const gated = await apiOk('GET', `/lore/${SECRET.id}`);
    assert.equal(gated.scope, 'character');
    assert.equal(gated.scope_id, CHARACTER);
    assert.deepEqual(gated.requires_flags, [SECRET.flag]);
    assert.equal(await secret.locator('.label').textContent(), `character: ${CHARACTER}`);
    assert.match(await secret.locator('.entry-meta').textContent(), new RegExp(`requires flags: ${SECRET.flag}`));

    // The list is the API's, by scope.
    const lore = page.locator('#lore-list li');
    await page.locator('#lore-filter-scope').selectOption('character');
    await page.getByRole('button', { name: 'Show lore' }).click();
    await until('only the character\'s lore is listed', async () =>
      JSON.stringify(await shownIds(lore, 'data-lore')) === JSON.stringify([SECRET.id]));
    await page.locator('#lore-filter-scope').selectOption('');
    await page.getByRole('button', { name: 'Show lore' }).click();
    const all = (await apiOk('GET', '/lore')).lore.map((entry) => entry.id);
    assert.deepEqual(sorted(all), [LORE.id, SECRET.id]);
    await until('all the lore is listed', async () =>
      JSON.stringify(await shownIds(lore, 'data-lore')) === JSON.stringify(all));

    // Edit fills the form with the entry.
    await page.getByRole('button', { name: `Edit lore: ${LORE.id}` }).click();
    assert.equal(await page.locator('#lore-text').inputValue(), LORE.text);
    assert.equal(await page.locator('#lore-scope').inputValue(), 'world');

    await page.getByRole('button', { name: `Delete lore: ${LORE.id}` }).click();
    await item.waitFor({ state: 'detached' });
    await page.locator('#notice', { hasText: `Deleted lore ${LORE.id}` }).waitFor();
    assert.equal((await api('GET', `/lore/${LORE.id}`)).status, 404, 'gone from the API too');
    assert.deepEqual(await shownIds(lore, 'data-lore'), [SECRET.id]);
  });

  let recordedEvent;
  await step('an event is reported and listed, and its witness remembers it', async () => {
    const clientId = await page.locator('#event-client-id').inputValue();
    assert.match(clientId, /^studio-event-/, 'a unique id is offered');
    await page.locator('#event-text').fill(EVENT_TEXT);
    await page.locator('#event-importance').fill('6');
    await page.locator('#event-player').fill(WORLD_PLAYER);
    await page.locator('#event-witnesses').fill(CHARACTER);
    await page.getByRole('button', { name: 'Report event' }).click();
    await page.locator('#notice', { hasText: 'Recorded event' }).waitFor();
    const reported = await apiOk('GET', `/events?player_id=${WORLD_PLAYER}`);
    assert.equal(reported.events.length, 1, JSON.stringify(reported));
    recordedEvent = reported.events[0];
    assert.equal(recordedEvent.client_event_id, clientId);
    assert.equal(recordedEvent.text, EVENT_TEXT);
    assert.equal(recordedEvent.importance, 6);
    assert.deepEqual(recordedEvent.witnesses, [CHARACTER]);
    assert.deepEqual(recordedEvent.known_by, [CHARACTER]);
    const item = page.locator(`#event-list li[data-event="${recordedEvent.id}"]`);
    await item.waitFor();
    assert.equal(await item.locator('.entry-text').textContent(), EVENT_TEXT);
    assert.equal(await item.locator('.client-id').textContent(), clientId);
    assert.match(await item.locator('.entry-meta').textContent(), new RegExp(`known by: ${CHARACTER}`));
    assert.notEqual(await page.locator('#event-client-id').inputValue(), clientId, 'a fresh id for the next one');

    // The same event again, under its id, changes nothing.
    await page.locator('#event-client-id').fill(clientId);
    await page.locator('#event-text').fill(EVENT_TEXT);
    await page.getByRole('button', { name: 'Report event' }).click();
    await page.locator('#notice', { hasText: 'recorded before' }).waitFor();
    assert.equal((await apiOk('GET', `/events?player_id=${WORLD_PLAYER}`)).events.length, 1);

    // By player.
    await page.locator('#event-filter-player').fill('p-nobody');
    await page.getByRole('button', { name: 'Show events' }).click();
    await page.locator('#no-events').waitFor();
    assert.equal(await page.locator('#event-list li').count(), 0);

    // A page of 20, then the older ones.
    for (let n = 1; n <= 21; n += 1) {
      await apiOk('POST', '/events', {
        body: { client_event_id: `crowd-${n}`, text: `Crowd event ${n}`, importance: 2, player_id: 'p-crowd', witnesses: [CHARACTER] },
      });
    }
    await page.locator('#event-filter-player').fill('p-crowd');
    await page.getByRole('button', { name: 'Show events' }).click();
    const texts = () => page.locator('#event-list li .entry-text').allTextContents();
    await until('the newest page is shown', async () => (await texts()).length === 20);
    assert.deepEqual(await texts(), Array.from({ length: 20 }, (_, i) => `Crowd event ${21 - i}`), 'newest first');
    await page.getByRole('button', { name: 'Load older events' }).click();
    await until('the older page is shown', async () => (await texts()).length === 21);
    assert.equal((await texts())[20], 'Crowd event 1');
    assert.equal(await page.locator('#older-events').isVisible(), false, 'nothing older');

    await page.locator('#event-filter-player').fill(WORLD_PLAYER);
    await page.getByRole('button', { name: 'Show events' }).click();
    await item.waitFor();
    await screenshot(page, '09-world');

    // The witness remembers it, with its source and the event it comes from.
    await nav(page, 'Inspector');
    await page.locator('#inspect-character').selectOption(CHARACTER);
    await page.locator('#inspect-player').fill(WORLD_PLAYER);
    await page.getByRole('button', { name: 'Inspect', exact: true }).click();
    const row = page.locator('#facts tr', { hasText: EVENT_TEXT });
    await row.waitFor();
    const memory = (await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${WORLD_PLAYER}`))
      .facts.find((fact) => fact.text === EVENT_TEXT);
    assert.equal(memory.source, 'event');
    assert.equal(memory.event_id, recordedEvent.id);
    assert.equal(await row.locator('.fact-source .label').textContent(), 'event');
    assert.equal(await row.locator('.fact-source .provenance').textContent(), `event #${recordedEvent.id}`);
    assert.equal(await row.locator('td').nth(1).textContent(), '6 / 10');
  });

  await step('the knowledge panel shows gated lore only when its flag is given, and why', async () => {
    const path = (flags) =>
      `/characters/${CHARACTER}/knowledge?player_id=${WORLD_PLAYER}${flags ? `&flags=${flags}` : ''}`;
    const lore = page.locator('#knowledge-lore li');
    const showKnowledge = async (flags) => {
      await page.locator('#knowledge-flags').fill(flags);
      await page.getByRole('button', { name: 'Show knowledge' }).click();
    };

    // No flag: the secret is not known; the event is, and why.
    await showKnowledge('');
    const none = await apiOk('GET', path(''));
    assert.ok(!none.lore.some((entry) => entry.id === SECRET.id), JSON.stringify(none));
    await until('the memories are shown', async () =>
      (await page.locator('#knowledge-memories li', { hasText: EVENT_TEXT }).count()) === 1);
    assert.deepEqual(await shownIds(lore, 'data-lore'), none.lore.map((entry) => entry.id));
    await page.locator('#no-knowledge-lore').waitFor();
    const remembered = page.locator('#knowledge-memories li', { hasText: EVENT_TEXT });
    const known = none.memories.find((memory) => memory.text === EVENT_TEXT);
    assert.equal(await remembered.locator('.label').textContent(), 'event');
    assert.equal(await remembered.locator('.why').textContent(), known.reason);
    assert.match(known.reason, new RegExp(`game event ${recordedEvent.id}`));

    // Its flag: known, and why.
    await showKnowledge(`rainy_day, ${SECRET.flag}`);
    const item = page.locator(`#knowledge-lore li[data-lore="${SECRET.id}"]`);
    await item.waitFor();
    const flagged = await apiOk('GET', path(`rainy_day,${SECRET.flag}`));
    const reason = flagged.lore.find((entry) => entry.id === SECRET.id).reason;
    assert.match(reason, new RegExp(SECRET.flag));
    assert.equal(await item.locator('.entry-text').textContent(), SECRET.text);
    assert.equal(await item.locator('.why').textContent(), reason);
    assert.equal(await page.locator('#no-knowledge-lore').isVisible(), false);
    await screenshot(page, '10-inspector-world');

    // Another flag: not known again.
    await showKnowledge('met_the_king');
    await item.waitFor({ state: 'detached' });
    await page.locator('#no-knowledge-lore').waitFor();
  });

  await step('the playground sends the game flags with the turn', async () => {
    await nav(page, 'Playground');
    await page.locator('#play-character').selectOption(CHARACTER);
    await page.locator('#play-player').fill(WORLD_PLAYER);
    await page.locator('#play-flags').fill(`${SECRET.flag}, rainy_day`);
    await page.getByRole('button', { name: 'New conversation' }).click();
    await page.locator('#chat-title', { hasText: WORLD_PLAYER }).waitFor();
    const sent = page.waitForRequest((request) =>
      request.method() === 'POST' && request.url().endsWith('/messages/stream'));
    await page.locator('#say').fill('Where are the letters?');
    await page.keyboard.press('Enter');
    assert.deepEqual((await sent).postDataJSON().flags, [SECRET.flag, 'rainy_day']);
    await page.locator('#chat .msg.character .meta').waitFor();
    // The flag let the secret into the prompt, beside the event the character saw.
    const prompt = JSON.stringify((await (await fetch(`${mockUrl}/_mock/last/conversation`)).json()).messages);
    assert.ok(prompt.includes(SECRET.text), 'the gated lore is in the prompt');
    assert.ok(prompt.includes(EVENT_TEXT), 'the event is remembered in the prompt');

    // Without flags, nothing is sent and the secret stays out.
    await page.locator('#play-flags').fill('');
    const plain = page.waitForRequest((request) =>
      request.method() === 'POST' && request.url().endsWith('/messages/stream'));
    await page.locator('#say').fill('Anything else?');
    await page.keyboard.press('Enter');
    assert.equal((await plain).postDataJSON().flags, undefined);
    await page.locator('#chat .msg.character .meta').nth(1).waitFor();
    const again = JSON.stringify((await (await fetch(`${mockUrl}/_mock/last/conversation`)).json()).messages);
    assert.ok(!again.includes(SECRET.text), 'no flag, no secret');

    // Inspecting the pair takes the flags along.
    await page.locator('#play-flags').fill(SECRET.flag);
    await page.getByRole('button', { name: 'Inspect this pair' }).click();
    assert.equal(await page.locator('#knowledge-flags').inputValue(), SECRET.flag);
    await page.locator(`#knowledge-lore li[data-lore="${SECRET.id}"]`).waitFor();
  });

  await step('a read-only key cannot edit, in the page or by force', async () => {
    const readContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    readContext.setDefaultTimeout(10000);
    const reader = await readContext.newPage();
    watch(reader, 'readonly');
    await signIn(reader, readKey, 'read-only key');

    await reader.locator('#character-list button', { hasText: CHARACTER }).click();
    assert.equal(await reader.locator('#character-name').isDisabled(), true, 'the form is disabled');
    assert.equal(await reader.locator('#character-persona').isEditable(), false);
    assert.equal(await reader.locator('#save-character').isVisible(), false);
    assert.equal(await reader.locator('#new-character').isVisible(), false);
    await screenshot(reader, '07-readonly-characters');

    await nav(reader, 'Playground');
    await reader.locator('#play-character').selectOption(CHARACTER);
    await reader.locator('#play-player').fill(PLAYER);
    await reader.locator('#play-player').dispatchEvent('change');
    await reader.locator(`#play-conversation option[value="${conversationId}"]`).waitFor({ state: 'attached' });
    await reader.locator('#play-conversation').selectOption(conversationId);
    await reader.getByRole('button', { name: 'Open', exact: true }).click();
    await until('the history is shown', async () => (await reader.locator('#chat .msg').count()) === 6);
    assert.equal(await reader.locator('#say').isDisabled(), true);
    assert.equal(await reader.locator('#send').isVisible(), false);

    await reader.getByRole('button', { name: 'Inspect this pair' }).click();
    await reader.locator('#facts tr').first().waitFor();
    assert.equal(await reader.getByRole('button', { name: /^Forget:/ }).count(), 0, 'no fact can be forgotten');
    assert.equal(await reader.locator('#budget-form').isVisible(), false);
    assert.equal(await reader.locator('#erase-start').isVisible(), false);
    assert.equal(await reader.locator('#knowledge-form').isVisible(), true, 'knowledge is read');
    await screenshot(reader, '08-readonly-inspector');

    // The world is read, not written.
    await nav(reader, 'World');
    await reader.locator(`#lore-list li[data-lore="${SECRET.id}"]`).waitFor();
    await reader.locator('#event-list li').first().waitFor();
    assert.equal(await reader.locator('#lore-form').isVisible(), false);
    assert.equal(await reader.locator('#event-form').isVisible(), false);
    assert.equal(await reader.getByRole('button', { name: /^(Edit|Delete) lore:/ }).count(), 0);
    assert.equal(await reader.locator('#view-world .reads').isVisible(), true);
    await screenshot(reader, '11-readonly-world');

    // Forced from the page with the same key, the API refuses.
    const facts = await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${PLAYER}`);
    const forced = await reader.evaluate(async ({ key, character, factId, conversation, player }) => {
      const call = async (method, url, body) => {
        const response = await fetch(url, {
          method,
          headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: response.status, code: (await response.json()).error.code };
      };
      return [
        await call('PUT', `/characters/${character}`, { name: 'Hacked', persona: 'No.' }),
        await call('DELETE', `/memory/${factId}`),
        await call('POST', `/conversations/${conversation}/messages/stream`, { player_id: player, character_id: character, content: 'hi' }),
        await call('DELETE', `/players/${player}`),
        await call('PUT', '/lore/forced', { text: 'No.', scope: 'world' }),
        await call('DELETE', '/lore/mara_secret'),
        await call('POST', '/events', { client_event_id: 'forced', text: 'No.', importance: 5, witnesses: [character] }),
      ];
    }, { key: readKey, character: CHARACTER, factId: facts.facts[0].id, conversation: conversationId, player: PLAYER });
    for (const answer of forced) assert.deepEqual(answer, { status: 403, code: 'forbidden' });
    assert.equal((await apiOk('GET', `/characters/${CHARACTER}`)).name, 'Mara');
    assert.deepEqual((await apiOk('GET', '/lore')).lore.map((entry) => entry.id), [SECRET.id]);
    assert.equal((await apiOk('GET', `/events?player_id=${WORLD_PLAYER}`)).events.length, 1);
    assert.equal(
      (await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${PLAYER}`)).facts.length,
      facts.facts.length,
    );
    await readContext.close();
  });

  await step('erasing the player takes a typed confirmation', async () => {
    await nav(page, 'Inspector');
    await page.locator('#inspect-player').fill(PLAYER);
    await page.getByRole('button', { name: 'Inspect', exact: true }).click();
    await page.locator(`#inspect-conversations li[data-conversation="${conversationId}"]`).waitFor();
    await page.getByRole('button', { name: 'Erase this player…' }).click();
    await page.locator('#erase-confirm').fill('p-8');
    await page.keyboard.press('Enter');
    await page.locator('#notice', { hasText: 'exactly' }).waitFor();
    assert.equal((await apiOk('GET', `/conversations?player_id=${PLAYER}`)).conversations.length, 1, 'nothing erased yet');
    await page.locator('#erase-confirm').fill(PLAYER);
    await page.keyboard.press('Enter');
    await page.locator('#notice', { hasText: `Erased player ${PLAYER}` }).waitFor();
    assert.equal((await apiOk('GET', `/conversations?player_id=${PLAYER}`)).conversations.length, 0);
    assert.equal((await apiOk('GET', `/memory?character_id=${CHARACTER}&player_id=${PLAYER}`)).facts.length, 0);
    await page.locator('#no-facts').waitFor();
    await page.locator('#inspect-no-conversations').waitFor();
  });

  await step('no console error, no blocked resource, no uncaught exception', async () => {
    const provider = await (await fetch(`${mockUrl}/_mock/requests`)).json();
    assert.ok(provider.conversation >= 3 && provider.fact_extraction >= 1, JSON.stringify(provider));
    assert.deepEqual(problems, []);
  });
} catch {
  failed = true;
} finally {
  await browser.close();
}

const passed = results.filter(Boolean).length;
console.log(`browser: ${passed} passed, ${results.length - passed} failed`);
process.exit(failed ? 1 : 0);
