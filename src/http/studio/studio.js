// npc-dialogue studio: one page over the public API, with the user's key.
// Plain JavaScript, no framework, no build step. Every piece of text that comes from the
// server goes into the page as text (textContent, text nodes, Option), never as HTML.
'use strict';

(() => {
  const KEY_STORE = 'npc-studio-key';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const VIEWS = ['characters', 'playground', 'inspector', 'world', 'usage'];
  const HISTORY_PAGE = 20;
  const EVENTS_PAGE = 20;
  const SOURCES = ['conversation', 'import', 'event', 'gossip'];

  const state = {
    key: sessionStorage.getItem(KEY_STORE) || '',
    role: null,
    characters: [],
    // The open conversation of the playground: {id, player, character}.
    conversation: null,
    nextBefore: null,
    talking: false,
    // The pair the inspector shows: {character, player}.
    pair: null,
    usageShown: false,
    // The events shown in the world view: the player filter, and where the next page starts.
    eventsPlayer: '',
    eventsBefore: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers: text only -------------------------------------------------------

  function el(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  function svg(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function build(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.setAttribute('class', value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function notify(message, ok) {
    const notice = $('notice');
    notice.classList.toggle('ok', Boolean(ok));
    notice.textContent = message || '';
  }

  // ---- Formats ----------------------------------------------------------------------

  // Money to the micro-dollar the service keeps; whole cents stay as cents ($2.50).
  function usd(value) {
    const number = Number(value) || 0;
    let text = number.toFixed(6);
    if (number >= 1) text = text.replace(/0{1,4}$/, '');
    return '$' + text;
  }

  function count(value) {
    return (Number(value) || 0).toLocaleString('en-US');
  }

  function when(iso) {
    return iso ? String(iso).slice(0, 16).replace('T', ' ') + ' UTC' : 'never';
  }

  function utcDate(date) {
    return date.toISOString().slice(0, 10);
  }

  // A comma-separated input as a list: trimmed, no empty names.
  function listOf(text) {
    return String(text || '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name.length > 0);
  }

  function names(list) {
    return list && list.length ? list.join(', ') : 'none';
  }

  // ---- The API ----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function headers(extra) {
    const all = Object.assign({ Accept: 'application/json' }, extra || {});
    if (state.key) all.Authorization = 'Bearer ' + state.key;
    return all;
  }

  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const error = body && body.error ? body.error : {};
    return new ApiError(
      response.status,
      error.code || 'http_' + response.status,
      error.message || response.statusText || 'request failed',
    );
  }

  // The status and the body of a call that succeeded; refusals are thrown as ApiError.
  async function send(method, path, body) {
    const init = { method, headers: headers() };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (cause) {
      throw new ApiError(0, 'unreachable', 'the service did not answer (' + cause.message + ')');
    }
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return { status: 204, body: null };
    return { status: response.status, body: await response.json() };
  }

  async function api(method, path, body) {
    return (await send(method, path, body)).body;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
    }
    const text = search.toString();
    return text ? '?' + text : '';
  }

  const enc = encodeURIComponent;

  // What went wrong, said once; a refused key sends the user back to the key form.
  function fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin('The service refused the key: ' + error.message);
      return;
    }
    if (error instanceof ApiError && error.status === 403) {
      notify('This key may only read: ' + error.message);
      return;
    }
    const code = error instanceof ApiError ? error.code + ': ' : '';
    notify(code + error.message);
  }

  // ---- Signing in, roles and views --------------------------------------------------

  function showLogin(message) {
    state.role = null;
    $('nav').hidden = true;
    $('role-badge').hidden = true;
    $('forget-key').hidden = true;
    for (const view of VIEWS) $('view-' + view).hidden = true;
    $('login').hidden = false;
    notify(message || '');
    $('api-key').value = '';
    $('api-key').focus();
  }

  async function signIn() {
    try {
      const me = await api('GET', '/auth/whoami');
      setRole(me.role);
      $('login').hidden = true;
      $('nav').hidden = false;
      $('forget-key').hidden = !state.key;
      notify('');
      await loadCharacters();
      show(viewOfHash());
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        showLogin(state.key ? 'The service refused that key.' : '');
      } else {
        fail(error);
      }
    }
  }

  function setRole(role) {
    state.role = role;
    const readonly = role !== 'game';
    document.body.dataset.role = role;
    const badge = $('role-badge');
    badge.textContent = readonly ? 'read-only key' : 'game key';
    badge.className = readonly ? 'badge readonly' : 'badge';
    badge.hidden = false;
    for (const node of document.querySelectorAll('.writes')) node.hidden = readonly;
    for (const node of document.querySelectorAll('.reads')) node.hidden = !readonly;
    $('character-fields').disabled = readonly;
    $('say').placeholder = readonly
      ? 'Read-only key: you can read conversations, not talk'
      : 'Say something (Enter sends)';
    updateSayControls();
  }

  const canWrite = () => state.role === 'game';
  let viewShown = null;

  function viewOfHash() {
    const name = location.hash.replace('#', '');
    return VIEWS.includes(name) ? name : 'characters';
  }

  function show(name) {
    if (viewShown && viewShown !== name) notify('');
    viewShown = name;
    for (const view of VIEWS) $('view-' + view).hidden = view !== name;
    for (const button of document.querySelectorAll('#nav button')) {
      if (button.dataset.view === name) button.setAttribute('aria-current', 'page');
      else button.removeAttribute('aria-current');
    }
    if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
    if (name === 'usage' && !state.usageShown) {
      state.usageShown = true;
      refreshUsage();
    }
    if (name === 'playground') refreshConversationChoices();
    if (name === 'world') refreshWorld();
  }

  // ---- Characters -------------------------------------------------------------------

  async function loadCharacters(selectId) {
    const data = await api('GET', '/characters');
    state.characters = data.characters;
    renderCharacterList(selectId);
    fillCharacterSelect($('play-character'));
    fillCharacterSelect($('inspect-character'));
  }

  function fillCharacterSelect(select) {
    const chosen = select.value;
    clear(select);
    for (const character of state.characters) {
      select.append(new Option(character.name + ' (' + character.id + ')', character.id));
    }
    if (state.characters.some((c) => c.id === chosen)) select.value = chosen;
  }

  function renderCharacterList(selectedId) {
    const list = clear($('character-list'));
    $('character-empty').hidden = state.characters.length > 0;
    for (const character of state.characters) {
      const button = el(
        'button',
        {
          type: 'button',
          'aria-pressed': character.id === selectedId ? 'true' : 'false',
          onclick: () => editCharacter(character),
        },
        character.name,
        el('span', { class: 'id' }, character.id),
      );
      list.append(el('li', {}, button));
    }
  }

  function linesOf(text) {
    return text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
  }

  function newCharacter() {
    $('character-form').reset();
    $('character-id').readOnly = false;
    $('character-form-title').textContent = 'New character';
    $('character-saved').textContent = '';
    renderCharacterList(null);
    $('character-id').focus();
  }

  function editCharacter(character) {
    $('character-form-title').textContent = (canWrite() ? 'Edit ' : '') + character.name;
    $('character-id').value = character.id;
    $('character-id').readOnly = true;
    $('character-name').value = character.name;
    $('character-persona').value = character.persona;
    $('character-model').value = character.model || '';
    $('character-factions').value = (character.factions || []).join(', ');
    const lines = character.fallback_lines || {};
    for (const tier of ['high', 'medium', 'low']) {
      $('lines-' + tier).value = (lines[tier] || []).join('\n');
    }
    $('character-saved').textContent = 'Last saved ' + when(character.updated_at);
    renderCharacterList(character.id);
    $('character-name').focus();
  }

  async function saveCharacter(event) {
    event.preventDefault();
    if (!canWrite()) return;
    notify('');
    const id = $('character-id').value.trim();
    const lines = {};
    for (const tier of ['high', 'medium', 'low']) {
      const tierLines = linesOf($('lines-' + tier).value);
      if (tierLines.length) lines[tier] = tierLines;
    }
    const body = {
      name: $('character-name').value,
      persona: $('character-persona').value,
      model: $('character-model').value.trim() || null,
      fallback_lines: Object.keys(lines).length ? lines : null,
      factions: listOf($('character-factions').value),
    };
    try {
      const saved = await api('PUT', '/characters/' + enc(id), body);
      await loadCharacters(saved.id);
      editCharacter(saved);
      notify('Saved ' + saved.name + ' (' + saved.id + ').', true);
    } catch (error) {
      fail(error);
    }
  }

  // ---- Playground -------------------------------------------------------------------

  function characterName(id) {
    const character = state.characters.find((c) => c.id === id);
    return character ? character.name : id;
  }

  function freshId(prefix) {
    const random = Math.random().toString(36).slice(2, 8);
    return prefix + Date.now().toString(36) + '-' + random;
  }

  const freshConversationId = () => freshId('studio-');

  // The pair's conversations to choose from. Asked again on every change of the pair:
  // only the latest answer is shown, and the choice made meanwhile is kept.
  let choicesAsked = 0;
  async function refreshConversationChoices() {
    const asked = ++choicesAsked;
    const select = $('play-conversation');
    const character = $('play-character').value;
    const player = $('play-player').value.trim();
    let conversations = [];
    if (character && player) {
      try {
        const data = await api(
          'GET',
          '/conversations' + query({ player_id: player, character_id: character, limit: 50 }),
        );
        conversations = data.conversations;
      } catch (error) {
        fail(error);
      }
    }
    if (asked !== choicesAsked) return;
    const options = [new Option('New conversation', '')];
    for (const conversation of conversations) {
      const label = conversation.id + ' · ' + conversation.message_count + ' messages · ' + when(conversation.updated_at);
      options.push(new Option(label, conversation.id));
    }
    // The open conversation stays a choice even before its first line is stored.
    const open = state.conversation;
    if (open && open.character === character && open.player === player && !options.some((o) => o.value === open.id)) {
      options.push(new Option(open.id + ' · new', open.id));
    }
    const chosen = select.value;
    select.replaceChildren(...options);
    if (options.some((option) => option.value === chosen)) select.value = chosen;
  }

  async function openConversation(event) {
    if (event) event.preventDefault();
    const character = $('play-character').value;
    const player = $('play-player').value.trim();
    if (!character) {
      notify('Create a character first (Characters).');
      return;
    }
    if (!player) {
      notify('Give a player id.');
      return;
    }
    let id = $('play-conversation').value;
    const fresh = !id;
    if (fresh) {
      id = freshConversationId();
      $('play-conversation').append(new Option(id + ' · new', id));
      $('play-conversation').value = id;
    }
    state.conversation = { id, player, character };
    state.nextBefore = null;
    $('chat-title').textContent = characterName(character) + ' and ' + player + ' · ' + id;
    $('typing-name').textContent = characterName(character);
    clear($('chat'));
    $('older').hidden = true;
    notify('');
    updateSayControls();
    // A conversation the studio just named has no history yet.
    if (!fresh) await loadHistory(null);
    if (canWrite()) $('say').focus();
  }

  function updateSayControls() {
    const open = Boolean(state.conversation);
    const ready = open && canWrite() && !state.talking;
    $('say').disabled = !ready;
    $('send').disabled = !ready;
  }

  async function loadHistory(beforeSeq) {
    const conversation = state.conversation;
    let page;
    try {
      page = await api(
        'GET',
        '/conversations/' + enc(conversation.id) + '/messages' + query({ limit: HISTORY_PAGE, before_seq: beforeSeq }),
      );
    } catch (error) {
      // A conversation that was never used has no history yet.
      if (error instanceof ApiError && error.status === 404) return;
      fail(error);
      return;
    }
    if (state.conversation !== conversation) return;
    const chat = $('chat');
    const nodes = page.messages.map((message) => messageNode(message));
    if (beforeSeq) {
      const height = chat.scrollHeight;
      chat.prepend(...nodes);
      chat.scrollTop += chat.scrollHeight - height;
    } else {
      chat.append(...nodes);
      chat.scrollTop = chat.scrollHeight;
    }
    state.nextBefore = page.next_before_seq;
    $('older').hidden = !page.next_before_seq;
  }

  function messageNode(message) {
    const node = el('li', { class: 'msg ' + message.role, 'data-seq': message.seq });
    node.append(el('span', { class: 'content' }, message.content));
    const meta = ['#' + message.seq, when(message.created_at)];
    if (message.source) meta.push(message.source);
    if (message.truncated) meta.push('truncated');
    node.append(el('span', { class: 'meta' }, meta.join(' · ')));
    return node;
  }

  // The figures of a reply as the turn reported them.
  function turnMeta(turn) {
    const usage = turn.usage || {};
    const meta = el('span', { class: 'meta' });
    const source = el('span', { class: 'source' + (turn.source === 'fallback' ? ' fallback' : '') }, turn.source);
    meta.append('#' + turn.reply.seq + ' · ', source);
    if (turn.fallback_reason) meta.append(' (', el('span', { class: 'reason' }, turn.fallback_reason), ')');
    meta.append(
      ' · ',
      el('span', { class: 'tokens' }, count(usage.prompt_tokens) + ' + ' + count(usage.completion_tokens) + ' tokens'),
      ' · ',
      el('span', { class: 'cost' }, usd(usage.cost_usd)),
      ' · ',
      el('span', { class: 'latency' }, count(usage.latency_ms) + ' ms'),
    );
    if (turn.reply.truncated) meta.append(' · truncated');
    return meta;
  }

  function turnBody(content) {
    const conversation = state.conversation;
    const body = { player_id: conversation.player, character_id: conversation.character, content };
    const affinity = $('play-affinity').value.trim();
    if (affinity !== '') {
      const value = Number(affinity);
      if (!Number.isInteger(value) || value < -100 || value > 100) {
        throw new Error('affinity must be a whole number from -100 to 100');
      }
      body.affinity = value;
    }
    const context = $('play-context').value.trim();
    if (context !== '') {
      let parsed;
      try {
        parsed = JSON.parse(context);
      } catch (cause) {
        throw new Error('the game context is not JSON: ' + cause.message);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new Error('the game context must be a JSON object');
      }
      body.context = parsed;
    }
    const flags = listOf($('play-flags').value);
    if (flags.length) body.flags = flags;
    return body;
  }

  async function say(event) {
    event.preventDefault();
    const input = $('say');
    const content = input.value;
    if (!state.conversation || state.talking || !content.trim() || !canWrite()) return;
    let body;
    try {
      body = turnBody(content);
    } catch (error) {
      notify(error.message);
      return;
    }
    notify('');
    state.talking = true;
    updateSayControls();
    const chat = $('chat');
    const mine = el('li', { class: 'msg player pending' }, el('span', { class: 'content' }, content));
    chat.append(mine);
    chat.scrollTop = chat.scrollHeight;
    $('typing').hidden = false;
    try {
      const turn = await streamTurn(state.conversation, body, chat);
      input.value = '';
      mine.classList.remove('pending');
      mine.dataset.seq = turn.player_message.seq;
      mine.append(el('span', { class: 'meta' }, '#' + turn.player_message.seq + ' · ' + when(turn.player_message.created_at)));
    } catch (error) {
      mine.remove();
      fail(error);
    } finally {
      $('typing').hidden = true;
      state.talking = false;
      updateSayControls();
      if (canWrite()) input.focus();
    }
  }

  // One server-sent event from its lines: `event:` and `data:` (comments ignored).
  function parseEvent(block) {
    let name = 'message';
    const data = [];
    for (const raw of block.split('\n')) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return null;
    return { name, data: JSON.parse(data.join('\n')) };
  }

  // POST …/messages/stream over fetch: `typing`, `delta`…, then `done` (the turn) or
  // `error`. Refusals before the stream are HTTP statuses with the JSON error body.
  async function streamTurn(conversation, body, chat) {
    const response = await fetch('/conversations/' + enc(conversation.id) + '/messages/stream', {
      method: 'POST',
      headers: headers({ Accept: 'text/event-stream', 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await errorOf(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let reply = null;
    let text = '';
    const ensureReply = () => {
      if (!reply) {
        $('typing').hidden = true;
        reply = el('li', { class: 'msg character' }, el('span', { class: 'content' }));
        chat.append(reply);
      }
      return reply;
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!event) continue;
        if (event.name === 'typing') {
          $('typing').hidden = false;
        } else if (event.name === 'delta') {
          text += event.data.text;
          ensureReply().firstChild.textContent = text;
          chat.scrollTop = chat.scrollHeight;
        } else if (event.name === 'done') {
          const turn = event.data;
          const node = ensureReply();
          node.firstChild.textContent = turn.reply.content;
          node.dataset.seq = turn.reply.seq;
          node.append(turnMeta(turn));
          chat.scrollTop = chat.scrollHeight;
          reader.cancel().catch(() => {});
          return turn;
        } else if (event.name === 'error') {
          if (reply) reply.remove();
          const error = event.data.error || {};
          throw new ApiError(200, error.code || 'error', error.message || 'the turn failed');
        }
      }
    }
    if (reply) reply.remove();
    throw new ApiError(0, 'stream_ended', 'the stream ended before the turn was done');
  }

  function inspectPair() {
    const character = $('play-character').value;
    const player = $('play-player').value.trim();
    if (!character || !player) return;
    $('inspect-character').value = character;
    $('inspect-player').value = player;
    $('knowledge-flags').value = $('play-flags').value;
    show('inspector');
    inspect();
  }

  // ---- Inspector --------------------------------------------------------------------

  async function inspect(event) {
    if (event) event.preventDefault();
    const character = $('inspect-character').value;
    const player = $('inspect-player').value.trim();
    if (!character || !player) {
      notify('Choose a character and give a player id.');
      return;
    }
    state.pair = { character, player };
    notify('');
    $('inspection').hidden = false;
    $('erase-form').hidden = true;
    $('erase-start').hidden = !canWrite();
    await Promise.all([loadPairConversations(), loadFacts(), loadBudget(), loadKnowledge()]);
  }

  async function loadPairConversations() {
    const pair = state.pair;
    try {
      const data = await api(
        'GET',
        '/conversations' + query({ character_id: pair.character, player_id: pair.player, limit: 20 }),
      );
      const details = await Promise.all(
        data.conversations.map((c) => api('GET', '/conversations/' + enc(c.id))),
      );
      if (state.pair !== pair) return;
      const list = clear($('inspect-conversations'));
      $('inspect-no-conversations').hidden = details.length > 0;
      for (const detail of details) {
        const summary = detail.summary
          ? el('p', { class: 'summary-text' }, detail.summary)
          : el('p', { class: 'muted summary-text' }, 'No running summary yet.');
        list.append(
          el(
            'li',
            { 'data-conversation': detail.id },
            el('strong', {}, detail.id),
            ' · ' + detail.message_count + ' messages · ' + detail.unread_count + ' unread · updated ' + when(detail.updated_at),
            summary,
          ),
        );
      }
    } catch (error) {
      fail(error);
    }
  }

  async function loadFacts() {
    const pair = state.pair;
    try {
      const data = await api(
        'GET',
        '/memory' + query({ character_id: pair.character, player_id: pair.player, limit: 200 }),
      );
      if (state.pair !== pair) return;
      const body = clear($('facts'));
      $('no-facts').hidden = data.facts.length > 0;
      for (const fact of data.facts) {
        const actions = el('td', {});
        if (canWrite()) {
          actions.append(
            el(
              'button',
              {
                type: 'button',
                class: 'quiet small',
                'aria-label': 'Forget: ' + fact.text,
                onclick: () => forgetFact(fact),
              },
              'Forget',
            ),
          );
        }
        body.append(
          el(
            'tr',
            { 'data-fact': fact.id },
            el('td', { class: 'fact-text' }, fact.text),
            el('td', { class: 'num' }, fact.importance + ' / 10'),
            el('td', {}, fact.conversation_id || '—', el('br'), el('small', { class: 'muted' }, when(fact.created_at))),
            el('td', { class: 'fact-source' }, sourceLabel(fact.source), ...provenance(fact)),
            el('td', {}, when(fact.last_used_at)),
            actions,
          ),
        );
      }
    } catch (error) {
      fail(error);
    }
  }

  function sourceLabel(source) {
    return el('span', { class: SOURCES.includes(source) ? 'label ' + source : 'label', 'data-source': source }, source);
  }

  // Where a memory came from besides its source: the event, the teller, the memory.
  function provenance(fact) {
    const parts = [];
    if (fact.event_id !== null && fact.event_id !== undefined) parts.push('event #' + fact.event_id);
    if (fact.heard_from) parts.push('heard from ' + fact.heard_from);
    if (fact.derived_from !== null && fact.derived_from !== undefined) parts.push('from memory #' + fact.derived_from);
    return parts.map((part) => el('span', { class: 'provenance' }, part));
  }

  // What the character would know in a turn of this player with these flags, and why.
  // Only the latest answer is shown.
  let knowledgeAsked = 0;
  async function loadKnowledge(event) {
    if (event) event.preventDefault();
    const pair = state.pair;
    if (!pair) return;
    const asked = ++knowledgeAsked;
    const flags = listOf($('knowledge-flags').value);
    try {
      const data = await api(
        'GET',
        '/characters/' + enc(pair.character) + '/knowledge' + query({ player_id: pair.player, flags: flags.join(',') }),
      );
      if (asked !== knowledgeAsked || state.pair !== pair) return;
      const lore = clear($('knowledge-lore'));
      $('no-knowledge-lore').hidden = data.lore.length > 0;
      for (const entry of data.lore) {
        lore.append(
          el(
            'li',
            { 'data-lore': entry.id },
            el('strong', {}, entry.id),
            el('p', { class: 'entry-text' }, entry.text),
            el('span', { class: 'why' }, entry.reason),
          ),
        );
      }
      const memories = clear($('knowledge-memories'));
      $('no-knowledge-memories').hidden = data.memories.length > 0;
      for (const memory of data.memories) {
        memories.append(
          el(
            'li',
            { 'data-memory': memory.id },
            el('p', { class: 'entry-text' }, memory.text),
            sourceLabel(memory.source),
            ' · ' + memory.importance + ' / 10',
            el('span', { class: 'why' }, memory.reason),
          ),
        );
      }
    } catch (error) {
      fail(error);
    }
  }

  async function forgetFact(fact) {
    try {
      await api('DELETE', '/memory/' + enc(fact.id));
      notify('Forgotten: ' + fact.text, true);
      await loadFacts();
    } catch (error) {
      fail(error);
    }
  }

  function renderBudget(budget) {
    const list = clear($('budget'));
    const status = budget.over_budget ? 'over budget' : budget.warning ? 'warning' : 'ok';
    const rows = [
      ['Month', budget.month],
      ['Spent', usd(budget.spent_usd)],
      ['Limit', usd(budget.limit_usd)],
      ['Remaining', usd(budget.remaining_usd)],
      ['Status', status],
    ];
    for (const [name, value] of rows) list.append(el('dt', {}, name), el('dd', {}, value));
  }

  async function loadBudget() {
    try {
      renderBudget(await api('GET', '/usage/budget' + query({ player_id: state.pair.player })));
    } catch (error) {
      fail(error);
    }
  }

  async function setBudget(event) {
    event.preventDefault();
    if (!state.pair || !canWrite()) return;
    const raw = $('budget-limit').value.trim();
    const limit = raw === '' ? null : Number(raw);
    try {
      const budget = await api('PUT', '/players/' + enc(state.pair.player) + '/budget', {
        monthly_limit_usd: limit,
      });
      renderBudget(budget);
      notify(limit === null ? 'The default limit applies again.' : 'Limit set to ' + usd(limit) + '.', true);
    } catch (error) {
      fail(error);
    }
  }

  function startErase() {
    if (!state.pair) return;
    $('erase-id').textContent = state.pair.player;
    $('erase-confirm').value = '';
    $('erase-form').hidden = false;
    $('erase-start').hidden = true;
    $('erase-confirm').focus();
  }

  function cancelErase() {
    $('erase-form').hidden = true;
    $('erase-start').hidden = !canWrite();
    $('erase-start').focus();
  }

  async function erase(event) {
    event.preventDefault();
    if (!state.pair || !canWrite()) return;
    const player = state.pair.player;
    if ($('erase-confirm').value !== player) {
      notify('Type the player id exactly to confirm.');
      $('erase-confirm').focus();
      return;
    }
    try {
      await api('DELETE', '/players/' + enc(player));
      $('erase-form').hidden = true;
      $('erase-start').hidden = false;
      if (state.conversation && state.conversation.player === player) {
        state.conversation = null;
        clear($('chat'));
        $('chat-title').textContent = 'No conversation open';
        updateSayControls();
      }
      await inspect();
      notify('Erased player ' + player + '.', true);
    } catch (error) {
      fail(error);
    }
  }

  // ---- World: lore and events -------------------------------------------------------

  function refreshWorld() {
    if (!$('event-client-id').value) $('event-client-id').value = freshId('studio-event-');
    syncLoreScope();
    return Promise.all([loadLore(), loadEvents(null)]);
  }

  // A world entry has no scope id; the others need one.
  function syncLoreScope() {
    const world = $('lore-scope').value === 'world';
    $('lore-scope-id').disabled = world;
    $('lore-scope-id').required = !world;
    if (world) $('lore-scope-id').value = '';
  }

  function scopeText(entry) {
    return entry.scope_id ? entry.scope + ': ' + entry.scope_id : entry.scope;
  }

  let loreAsked = 0;
  async function loadLore(event) {
    if (event) event.preventDefault();
    const asked = ++loreAsked;
    const filter = {
      scope: $('lore-filter-scope').value,
      scope_id: $('lore-filter-scope-id').value.trim(),
      tags: listOf($('lore-filter-tags').value).join(','),
    };
    try {
      const data = await api('GET', '/lore' + query(filter));
      if (asked !== loreAsked) return;
      const list = clear($('lore-list'));
      $('no-lore').hidden = data.lore.length > 0;
      for (const entry of data.lore) list.append(loreNode(entry));
    } catch (error) {
      fail(error);
    }
  }

  function loreNode(entry) {
    const actions = el('span', { class: 'entry-actions' });
    if (canWrite()) {
      actions.append(
        el('button', { type: 'button', class: 'quiet small', 'aria-label': 'Edit lore: ' + entry.id, onclick: () => editLore(entry) }, 'Edit'),
        el('button', { type: 'button', class: 'quiet small', 'aria-label': 'Delete lore: ' + entry.id, onclick: () => deleteLore(entry) }, 'Delete'),
      );
    }
    const meta = [
      'tags: ' + names(entry.tags),
      'requires flags: ' + names(entry.requires_flags),
      'updated ' + when(entry.updated_at),
    ];
    return el(
      'li',
      { 'data-lore': entry.id },
      el('div', { class: 'row' }, el('span', {}, el('strong', {}, entry.id), ' ', el('span', { class: 'label' }, scopeText(entry))), actions),
      el('p', { class: 'entry-text' }, entry.text),
      el('span', { class: 'entry-meta' }, meta.join(' · ')),
    );
  }

  function editLore(entry) {
    $('lore-id').value = entry.id;
    $('lore-text').value = entry.text;
    $('lore-scope').value = entry.scope;
    syncLoreScope();
    $('lore-scope-id').value = entry.scope_id || '';
    $('lore-tags').value = entry.tags.join(', ');
    $('lore-flags').value = entry.requires_flags.join(', ');
    $('lore-text').focus();
  }

  function clearLore() {
    $('lore-form').reset();
    syncLoreScope();
    $('lore-id').focus();
  }

  async function saveLore(event) {
    event.preventDefault();
    if (!canWrite()) return;
    notify('');
    const id = $('lore-id').value.trim();
    const scope = $('lore-scope').value;
    const body = {
      text: $('lore-text').value,
      scope,
      scope_id: scope === 'world' ? null : $('lore-scope-id').value.trim() || null,
      tags: listOf($('lore-tags').value),
      requires_flags: listOf($('lore-flags').value),
    };
    try {
      const saved = await api('PUT', '/lore/' + enc(id), body);
      editLore(saved);
      notify('Saved lore ' + saved.id + ' (' + scopeText(saved) + ').', true);
      await loadLore();
    } catch (error) {
      fail(error);
    }
  }

  async function deleteLore(entry) {
    if (!canWrite()) return;
    try {
      await api('DELETE', '/lore/' + enc(entry.id));
      notify('Deleted lore ' + entry.id + '.', true);
      await loadLore();
    } catch (error) {
      fail(error);
    }
  }

  // A page of events, newest first: the first page (`before` null) replaces the list,
  // an older one is added below it.
  let eventsAsked = 0;
  async function loadEvents(before) {
    const asked = ++eventsAsked;
    if (!before) state.eventsPlayer = $('event-filter-player').value.trim();
    const player = state.eventsPlayer;
    try {
      const page = await api('GET', '/events' + query({ player_id: player, limit: EVENTS_PAGE, before }));
      if (asked !== eventsAsked) return;
      const list = $('event-list');
      if (!before) clear(list);
      for (const item of page.events) list.append(eventNode(item));
      $('no-events').hidden = list.childElementCount > 0;
      state.eventsBefore = page.next_before;
      $('older-events').hidden = !page.next_before;
    } catch (error) {
      fail(error);
    }
  }

  function showEvents(event) {
    event.preventDefault();
    loadEvents(null);
  }

  function eventNode(item) {
    const meta = [
      'player: ' + (item.player_id || 'none in particular'),
      'witnesses: ' + names(item.witnesses),
      'factions: ' + names(item.factions),
      'known by: ' + names(item.known_by),
      when(item.created_at),
    ];
    return el(
      'li',
      { 'data-event': item.id },
      el(
        'div',
        { class: 'row' },
        el('span', {}, el('strong', {}, '#' + item.id), ' · ', el('span', { class: 'client-id' }, item.client_event_id)),
        el('span', { class: 'label' }, 'importance ' + item.importance + ' / 10'),
      ),
      el('p', { class: 'entry-text' }, item.text),
      el('span', { class: 'entry-meta' }, meta.join(' · ')),
    );
  }

  async function postEvent(event) {
    event.preventDefault();
    if (!canWrite()) return;
    notify('');
    const importance = Number($('event-importance').value);
    if (!Number.isInteger(importance) || importance < 1 || importance > 10) {
      notify('Importance must be a whole number from 1 to 10.');
      return;
    }
    const body = {
      client_event_id: $('event-client-id').value.trim(),
      text: $('event-text').value,
      importance,
      player_id: $('event-player').value.trim() || null,
      witnesses: listOf($('event-witnesses').value),
      factions: listOf($('event-factions').value),
    };
    try {
      const answer = await send('POST', '/events', body);
      const recorded = answer.body;
      if (answer.status === 201) {
        notify('Recorded event #' + recorded.id + ', known by ' + names(recorded.known_by) + '.', true);
        $('event-client-id').value = freshId('studio-event-');
        $('event-text').value = '';
      } else {
        notify('Event ' + recorded.client_event_id + ' was recorded before as #' + recorded.id + ': nothing changed.', true);
      }
      await loadEvents(null);
    } catch (error) {
      fail(error);
    }
  }

  // ---- Usage ------------------------------------------------------------------------

  function defaultRange() {
    const to = new Date();
    const from = new Date(to.getTime() - 13 * 86400000);
    $('usage-from').value = utcDate(from);
    $('usage-to').value = utcDate(to);
  }

  async function refreshUsage(event) {
    if (event) event.preventDefault();
    await Promise.all([loadUsage(), loadBudgets(), loadJobs()]);
  }

  async function loadUsage() {
    const from = $('usage-from').value;
    const to = $('usage-to').value;
    const metric = $('usage-metric').value;
    const group = $('usage-group').value;
    const filter = { from, to, character_id: $('usage-character').value.trim() };
    try {
      const [daily, breakdown] = await Promise.all([
        api('GET', '/usage' + query(Object.assign({ group_by: 'day' }, filter))),
        api('GET', '/usage' + query(Object.assign({ group_by: group }, filter))),
      ]);
      const totals = clear($('usage-totals'));
      for (const [name, value] of [
        ['Calls', count(daily.calls)],
        ['Tokens', count(daily.total_tokens)],
        ['Cost', usd(daily.cost_usd)],
      ]) {
        totals.append(el('div', {}, el('dt', {}, name), el('dd', { 'data-total': name.toLowerCase() }, value)));
      }
      const pick = metric === 'cost' ? (row) => row.cost_usd : (row) => row.total_tokens;
      const format = metric === 'cost' ? usd : count;
      const what = metric === 'cost' ? 'Cost' : 'Tokens';
      $('usage-chart-title').textContent = what + ' per day, ' + from + ' to ' + to + ' (UTC)';
      dailyChart(clear($('usage-chart')), daily.breakdown, pick, format, what);
      $('usage-breakdown-title').textContent = what + ' by ' + group;
      breakdownChart(clear($('usage-breakdown')), breakdown.breakdown, pick, format, what);
    } catch (error) {
      fail(error);
    }
  }

  // A round number at or above `value`, for the top of an axis.
  function niceTop(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function dailyChart(container, rows, pick, format, what) {
    const width = 900;
    const height = 260;
    const left = 78;
    const right = 12;
    const top = 16;
    const bottom = 36;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const values = rows.map((row) => Number(pick(row)) || 0);
    const max = niceTop(Math.max(0, ...values));
    const chart = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      role: 'img',
      'aria-label': what + ' per day: ' + rows.map((row, i) => row.key + ' ' + format(values[i])).join(', '),
    });
    for (const share of [0, 0.5, 1]) {
      const y = top + plotHeight - share * plotHeight;
      chart.append(
        svg('line', { class: share === 0 ? 'axis' : 'grid', x1: left, x2: width - right, y1: y, y2: y }),
        svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end' }, format(max * share)),
      );
    }
    const step = plotWidth / Math.max(rows.length, 1);
    const labelEvery = Math.max(1, Math.ceil(rows.length / 12));
    rows.forEach((row, i) => {
      const value = values[i];
      const barHeight = (value / max) * plotHeight;
      const x = left + i * step + step * 0.15;
      const barWidth = Math.max(1, step * 0.7);
      const bar = svg(
        'rect',
        {
          class: 'bar',
          x: x.toFixed(2),
          y: (top + plotHeight - barHeight).toFixed(2),
          width: barWidth.toFixed(2),
          height: barHeight.toFixed(2),
          'data-key': row.key,
          'data-value': pick(row),
        },
        svg('title', {}, row.key + ': ' + format(value) + ' · ' + count(row.calls) + ' calls'),
      );
      chart.append(bar);
      if (value > 0 && rows.length <= 16) {
        chart.append(
          svg('text', { class: 'value', x: (x + barWidth / 2).toFixed(2), y: (top + plotHeight - barHeight - 4).toFixed(2), 'text-anchor': 'middle' }, format(value)),
        );
      }
      if (i % labelEvery === 0) {
        chart.append(
          svg('text', { x: (x + barWidth / 2).toFixed(2), y: height - bottom + 16, 'text-anchor': 'middle' }, String(row.key).slice(5)),
        );
      }
    });
    container.append(chart);
  }

  function breakdownChart(container, rows, pick, format, what) {
    if (!rows.length) {
      container.append(el('p', { class: 'muted' }, 'No calls in this range.'));
      return;
    }
    const width = 440;
    const rowHeight = 26;
    const left = 130;
    const right = 96;
    const height = rows.length * rowHeight + 8;
    const values = rows.map((row) => Number(pick(row)) || 0);
    const max = niceTop(Math.max(0, ...values));
    const chart = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      role: 'img',
      'aria-label': what + ' by key: ' + rows.map((row, i) => row.key + ' ' + format(values[i])).join(', '),
    });
    rows.forEach((row, i) => {
      const y = 4 + i * rowHeight;
      const barWidth = (values[i] / max) * (width - left - right);
      const label = String(row.key);
      chart.append(
        svg('text', { x: left - 8, y: y + 16, 'text-anchor': 'end' }, label.length > 18 ? label.slice(0, 17) + '…' : label),
        svg(
          'rect',
          { class: 'bar', x: left, y: y + 3, width: Math.max(barWidth, 1).toFixed(2), height: rowHeight - 8, 'data-key': row.key, 'data-value': pick(row) },
          svg('title', {}, label + ': ' + format(values[i]) + ' · ' + count(row.calls) + ' calls'),
        ),
        svg('text', { class: 'value', x: (left + barWidth + 6).toFixed(2), y: y + 16 }, format(values[i])),
      );
    });
    container.append(chart);
  }

  async function loadBudgets() {
    try {
      const data = await api('GET', '/usage/budgets' + query({ status: $('budget-status').value, limit: 50 }));
      const body = clear($('budgets'));
      $('no-budgets').hidden = data.players.length > 0;
      for (const player of data.players) {
        const status = player.over_budget ? 'over' : 'warning';
        body.append(
          el(
            'tr',
            {},
            el('td', {}, player.player_id),
            el('td', { class: 'num' }, usd(player.spent_usd)),
            el('td', { class: 'num' }, usd(player.limit_usd)),
            el('td', { class: 'status-' + status }, player.over_budget ? 'over budget' : 'warning'),
          ),
        );
      }
    } catch (error) {
      fail(error);
    }
  }

  async function loadJobs() {
    try {
      const stats = await api('GET', '/jobs/stats');
      const list = clear($('jobs'));
      for (const name of ['pending', 'running', 'parked']) {
        list.append(el('div', {}, el('dt', {}, name), el('dd', { 'data-jobs': name }, count(stats[name]))));
      }
    } catch (error) {
      fail(error);
    }
  }

  // ---- Wiring -----------------------------------------------------------------------

  function wire() {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const key = $('api-key').value.trim();
      if (!key) return;
      state.key = key;
      sessionStorage.setItem(KEY_STORE, key);
      signIn();
    });
    $('forget-key').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      state.key = '';
      state.conversation = null;
      state.pair = null;
      showLogin('The key is forgotten.');
    });
    for (const button of document.querySelectorAll('#nav button')) {
      button.addEventListener('click', () => show(button.dataset.view));
    }
    window.addEventListener('hashchange', () => {
      if (state.role) show(viewOfHash());
    });

    $('new-character').addEventListener('click', newCharacter);
    $('character-form').addEventListener('submit', saveCharacter);

    $('pair-form').addEventListener('submit', openConversation);
    $('play-character').addEventListener('change', refreshConversationChoices);
    $('play-player').addEventListener('change', refreshConversationChoices);
    $('new-conversation').addEventListener('click', () => {
      $('play-conversation').value = '';
      openConversation();
    });
    $('older').addEventListener('click', () => {
      if (state.nextBefore) loadHistory(state.nextBefore);
    });
    $('say-form').addEventListener('submit', say);
    $('inspect-pair').addEventListener('click', inspectPair);

    $('inspect-form').addEventListener('submit', inspect);
    $('refresh-facts').addEventListener('click', () => {
      if (state.pair) loadFacts();
    });
    $('budget-form').addEventListener('submit', setBudget);
    $('erase-start').addEventListener('click', startErase);
    $('erase-cancel').addEventListener('click', cancelErase);
    $('erase-form').addEventListener('submit', erase);
    $('knowledge-form').addEventListener('submit', loadKnowledge);

    $('lore-filter').addEventListener('submit', loadLore);
    $('lore-form').addEventListener('submit', saveLore);
    $('lore-scope').addEventListener('change', syncLoreScope);
    $('lore-clear').addEventListener('click', clearLore);
    $('event-filter').addEventListener('submit', showEvents);
    $('event-form').addEventListener('submit', postEvent);
    $('older-events').addEventListener('click', () => {
      if (state.eventsBefore) loadEvents(state.eventsBefore);
    });

    defaultRange();
    $('usage-form').addEventListener('submit', refreshUsage);
    $('budget-status').addEventListener('change', loadBudgets);
    $('refresh-jobs').addEventListener('click', loadJobs);
  }

  wire();
  signIn();
})();
