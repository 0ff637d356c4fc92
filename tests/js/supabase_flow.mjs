// supabase-js, unchanged, against the dev gateway: Auth, a function, Realtime.
//
// Driven by tests/shared/tooling/test_supabase_js.py, which starts the gateway and
// decides pass or fail. Each step prints one JSON line on stdout: {"step", "ok", …}
// with what it saw; a step that needs the Python side (an organization for the
// new user, an inbound message) waits for one JSON line on stdin. Every wait has a
// deadline, so the script always ends, with a last {"step": "done"} line.
//
// Environment: SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_JS_DIR (where npm ci
// installed tests/js/package.json), PAGE_ORIGIN (the origin the page runs on).
// Node 20 needs --experimental-websocket for the WebSocket that Node 22 has built in.

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { browserFetch } from './browser_fetch.mjs';

const { SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_JS_DIR, PAGE_ORIGIN } = process.env;
const WAIT_MS = Number(process.env.WAIT_MS || 5000);
const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery';

const page = browserFetch(PAGE_ORIGIN);
globalThis.fetch = page.fetch; // as in a browser tab: supabase-js uses the global fetch
const { createClient } = createRequire(join(SUPABASE_JS_DIR, 'package.json'))(
  '@supabase/supabase-js',
);

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function report(step, fields) {
  process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);
}

function deadline(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function ask(step, fields) {
  report(step, { ok: true, ...fields });
  const { value, done } = await deadline(lines.next(), `answer to ${step}`);
  if (done) throw new Error(`stdin closed before the answer to ${step}`);
  return JSON.parse(value);
}

function errorOf(error) {
  if (!error) return null;
  return { name: error.name, status: error.status ?? null, code: error.code ?? null, message: error.message };
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

// A step reports what it saw and the HTTP exchanges it made.
async function step(name, run) {
  const start = page.log.length;
  try {
    const seen = await run();
    report(name, { ok: true, ...seen, http: page.log.slice(start) });
  } catch (error) {
    report(name, { ok: false, error: errorOf(error) ?? String(error), http: page.log.slice(start) });
  }
}

const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY);
let session = null;
let organization = null;

async function sessionSteps() {
  await step('signUp', async () => {
    const { data, error } = await supabase.auth.signUp({
      email: EMAIL,
      password: PASSWORD,
      options: { data: { name: 'Ada' } },
    });
    if (error) throw error;
    return { user_id: data.user.id, email: data.user.email, has_session: data.session !== null };
  });
  await step('signInWithPassword', async () => {
    const { data, error } = await supabase.auth.signInWithPassword({ email: EMAIL, password: PASSWORD });
    if (error) throw error;
    session = data.session;
    const claims = claimsOf(session.access_token);
    return { user_id: data.user.id, role: claims.role, session_id: claims.session_id };
  });
  ({ organization_id: organization } = await ask('needs_organization', {
    user_id: session.user.id,
  }));
  await step('refreshSession', async () => {
    const before = session;
    const { data, error } = await supabase.auth.refreshSession();
    if (error) throw error;
    session = data.session;
    // A tab that missed the answer refreshes with the token just spent: the same session.
    const again = await supabase.auth.refreshSession({ refresh_token: before.refresh_token });
    if (again.error) throw again.error;
    return {
      rotated: data.session.refresh_token !== before.refresh_token,
      same_session: claimsOf(data.session.access_token).session_id === claimsOf(before.access_token).session_id,
      spent_token_answers_current: again.data.session.refresh_token === session.refresh_token,
    };
  });
  await step('getUser', async () => {
    const { data, error } = await supabase.auth.getUser();
    if (error) throw error;
    return { user_id: data.user.id, email: data.user.email, user_metadata: data.user.user_metadata };
  });
}

async function functionSteps() {
  await step('functions.invoke', async () => {
    const { data, error } = await supabase.functions.invoke(
      `members?organization_id=${organization}`,
      { method: 'GET' },
    );
    if (error) throw error;
    return { members: data };
  });
  await step('functions.invoke with a body', async () => {
    const { data, error } = await supabase.functions.invoke('members', {
      body: { organization_id: organization, email: 'nina@example.com', role: 'agent' },
    });
    if (error) throw error;
    return { invitation: data };
  });
  await step('functions.invoke without a session', async () => {
    const anonymous = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const { error } = await anonymous.functions.invoke(`members?organization_id=${organization}`, {
      method: 'GET',
    });
    return { status: error?.context?.status ?? null, error: errorOf(error) };
  });
}

// The channel's first answer: SUBSCRIBED, CHANNEL_ERROR, TIMED_OUT or CLOSED.
function joined(channel) {
  return deadline(
    new Promise((resolve) => {
      channel.subscribe((state, error) => resolve({ state, error: errorOf(error) }));
    }),
    'answer to the join',
  );
}

async function realtimeSteps() {
  const received = [];
  const overheard = [];
  let channel;
  await step('realtime.subscribe', async () => {
    await supabase.realtime.setAuth(session.access_token);
    channel = supabase.channel(`org:${organization}:inbox`, { config: { private: true } });
    channel.on('broadcast', { event: '*' }, (message) => received.push(message));
    const status = await joined(channel);
    if (status.state !== 'SUBSCRIBED') throw new Error(`channel ${status.state}: ${status.error?.message}`);
    return status;
  });
  if (channel?.state !== 'joined') return;
  // Someone signed in who is not a member asks for the same private channel.
  const stranger = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  await step('realtime.stranger', async () => {
    const { data, error } = await stranger.auth.signUp({ email: 'eve@example.com', password: PASSWORD });
    if (error) throw error;
    await stranger.realtime.setAuth(data.session.access_token);
    const theirs = stranger.channel(`org:${organization}:inbox`, { config: { private: true } });
    theirs.on('broadcast', { event: '*' }, (message) => overheard.push(message));
    return await joined(theirs);
  });
  await ask('needs_inbound_message', {});
  await step('realtime.broadcast', async () => {
    const arrived = () => received.some((m) => m.payload?.table === 'messages');
    await deadline(
      new Promise((resolve) => {
        const poll = setInterval(() => arrived() && (clearInterval(poll), resolve()), 20);
      }),
      'broadcast of the message',
    );
    return {
      broadcasts: received.map((m) => ({
        event: m.event,
        table: m.payload?.table,
        operation: m.payload?.operation,
        record: m.payload?.record,
        conversation: m.payload?.conversation,
      })),
      overheard: overheard.length,
    };
  });
  await supabase.removeChannel(channel);
  await stranger.removeAllChannels();
}

async function signOutSteps() {
  await step('signOut', async () => {
    const { access_token: accessToken, refresh_token: refreshToken } = session;
    const { error } = await supabase.auth.signOut();
    if (error) throw error;
    const after = await supabase.auth.getUser(accessToken);
    const refreshed = await supabase.auth.refreshSession({ refresh_token: refreshToken });
    return {
      session_left: (await supabase.auth.getSession()).data.session !== null,
      get_user_error: errorOf(after.error),
      refresh_error: errorOf(refreshed.error),
    };
  });
}

try {
  await sessionSteps();
  await functionSteps();
  await realtimeSteps();
  await signOutSteps();
} catch (error) {
  report('aborted', { ok: false, error: errorOf(error) ?? String(error) });
} finally {
  report('done', { ok: true, blocked_by_cors: page.blocked, ms: Math.round(performance.now()) });
  process.exit(0);
}
