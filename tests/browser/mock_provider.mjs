// A mock OpenAI-compatible provider for the studio's browser tests, as the service talks
// to it (see tests/api/mock_provider.rs): POST /v1/chat/completions, plain JSON or
// `stream: true` server-sent events (`data: {chunk}` frames, a last chunk with `usage`
// when `stream_options.include_usage` is asked, then `data: [DONE]`). The purpose comes in
// the `X-Request-Purpose` header:
// - `conversation`: an innkeeper's line about what the player just said (a room, a cat,
//   breakfast; else the next line), streamed word by word after a pause
//   (FIRST_DELTA_MS, default 300 ms) long enough to see the typing indicator;
// - `summarization`: a plain-text running summary;
// - `fact_extraction`: a JSON object with one fact per keyword the player's new lines
//   mention (a cat, a room, breakfast), so a fact is proposed once, by the extraction
//   that reads the line, and a deleted one does not come back.
// GET /_mock/requests answers how many requests of each purpose arrived, and
// GET /_mock/last/{purpose} the body of the latest request of that purpose (404: none yet).
// Prints `{"port": N}` on its first line once listening on 127.0.0.1.

import http from 'node:http';

const FIRST_DELTA_MS = Number(process.env.FIRST_DELTA_MS || 300);
const GAP_MS = Number(process.env.GAP_MS || 40);

const LINES = [
  { about: /\broom/i, text: 'One room left, upstairs, second door on the left.' },
  { about: /\bcat\b|whiskers/i, text: 'Whiskers can stay, as long as she keeps off the bar.' },
  { about: /breakfast/i, text: 'Porridge at dawn, bread and cheese if you are late.' },
  { about: /^$/, text: 'Mind the third stair, it creaks.' },
];

const FACTS = [
  { word: /\bcat\b|whiskers/i, fact: { text: 'Player has a cat named Whiskers', importance: 7 } },
  { word: /\brooms?\b/i, fact: { text: 'Player is looking for a room for the night', importance: 5 } },
  { word: /breakfast/i, fact: { text: 'Player cares about breakfast', importance: 3 } },
];

const counts = {};
const latest = {};
let conversationTurns = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function usage(prompt, completion) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function extraction(request) {
  const facts = [];
  try {
    const user = request.messages.find((message) => message.role === 'user');
    const exchange = JSON.parse(user.content).new_exchange || [];
    for (const line of exchange) {
      if (line.speaker !== 'player') continue;
      for (const { word, fact } of FACTS) {
        if (word.test(line.text) && !facts.includes(fact)) facts.push(fact);
      }
    }
  } catch (error) {
    console.error('mock provider: unreadable extraction request:', error.message);
  }
  return JSON.stringify({
    facts,
    update: [],
    delete: [],
    topics: ['lodging'],
    mood: { label: 'friendly', intensity: 0.4, reason: 'The player was polite.' },
  });
}

function replyFor(purpose, request) {
  if (purpose === 'summarization') {
    return { content: 'The player took a room at the inn and asked about breakfast.', usage: usage(180, 16) };
  }
  if (purpose === 'fact_extraction') {
    return { content: extraction(request), usage: usage(260, 30) };
  }
  // A line about what the player just said, else the next one.
  const said = [...(request.messages || [])].reverse().find((message) => message.role === 'user');
  const topic = LINES.find((line) => line.about.test((said && said.content) || ''));
  const content = (topic || LINES[conversationTurns % LINES.length]).text;
  conversationTurns += 1;
  return { content, usage: usage(412, 18) };
}

async function stream(response, request, reply) {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  response.flushHeaders();
  await sleep(FIRST_DELTA_MS);
  const words = reply.content.split(/(?<= )/);
  for (const [index, word] of words.entries()) {
    if (index > 0) await sleep(GAP_MS);
    const chunk = {
      id: 'chatcmpl-mock',
      object: 'chat.completion.chunk',
      model: request.model,
      choices: [{ index: 0, delta: { content: word }, finish_reason: null }],
    };
    response.write('data: ' + JSON.stringify(chunk) + '\n\n');
  }
  const last = {
    id: 'chatcmpl-mock',
    object: 'chat.completion.chunk',
    model: request.model,
    choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
  };
  response.write('data: ' + JSON.stringify(last) + '\n\n');
  if (request.stream_options && request.stream_options.include_usage) {
    const tail = { id: 'chatcmpl-mock', object: 'chat.completion.chunk', model: request.model, choices: [], usage: reply.usage };
    response.write('data: ' + JSON.stringify(tail) + '\n\n');
  }
  response.end('data: [DONE]\n\n');
}

function whole(response, request, reply) {
  const body = {
    id: 'chatcmpl-mock',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [{ index: 0, message: { role: 'assistant', content: reply.content }, finish_reason: 'stop' }],
    usage: reply.usage,
  };
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

const server = http.createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/_mock/requests') {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(counts));
    return;
  }
  const asked = request.method === 'GET' && /^\/_mock\/last\/([a-z_]+)$/.exec(request.url);
  if (asked) {
    const body = latest[asked[1]];
    response.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body || { error: { message: 'no such request yet' } }));
    return;
  }
  if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: { message: 'no such route', type: 'invalid_request_error' } }));
    return;
  }
  const parts = [];
  request.on('data', (part) => parts.push(part));
  request.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'body is not JSON', type: 'invalid_request_error' } }));
      return;
    }
    const purpose = request.headers['x-request-purpose'] || 'unknown';
    counts[purpose] = (counts[purpose] || 0) + 1;
    latest[purpose] = body;
    const reply = replyFor(purpose, body);
    const answer = body.stream ? stream(response, body, reply) : Promise.resolve(whole(response, body, reply));
    answer.catch((error) => {
      console.error('mock provider:', error.message);
      response.destroy();
    });
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
