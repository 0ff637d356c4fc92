// fetch as a browser page on another origin makes it: the Origin header on every
// request, a CORS preflight before any request that is not "simple", the answer's
// CORS headers checked as the browser checks them, and of the answer's headers only
// those the page may read (CORS-safelisted or exposed). What a browser would
// have blocked is recorded in `blocked` (and the request still goes on, so the
// report shows every problem at once); every exchange is logged in `log`, with
// the error code of a refusal.

const SAFELISTED = new Set(['accept', 'accept-language', 'content-language', 'content-type']);
const SIMPLE_TYPES = new Set([
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'text/plain',
]);

// The response headers a page reads without Access-Control-Expose-Headers.
const SAFELISTED_RESPONSE = new Set([
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'expires',
  'last-modified',
  'pragma',
]);
const NULL_BODY = new Set([101, 204, 205, 304]);

function listed(value) {
  return (value || '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean);
}

function nonSimpleHeaders(headers) {
  const names = [];
  for (const [name, value] of headers) {
    const simpleType = SIMPLE_TYPES.has(value.split(';')[0].trim().toLowerCase());
    if (!SAFELISTED.has(name) || (name === 'content-type' && !simpleType)) names.push(name);
  }
  return names.sort();
}

function asThePageSeesIt(response) {
  const exposed = listed(response.headers.get('access-control-expose-headers'));
  const headers = new Headers();
  for (const [name, value] of response.headers)
    if (SAFELISTED_RESPONSE.has(name) || exposed.includes(name) || exposed.includes('*'))
      headers.set(name, value);
  const { status, statusText } = response;
  return new Response(NULL_BODY.has(status) ? null : response.body, { status, statusText, headers });
}

export function browserFetch(origin, realFetch = globalThis.fetch) {
  const blocked = [];
  const log = [];
  const allowsOrigin = (response) => {
    const allowed = response.headers.get('access-control-allow-origin');
    return allowed === '*' || allowed === origin;
  };

  async function fetchFromPage(input, init = {}) {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.origin === origin) return realFetch(request);
    const method = request.method.toUpperCase();
    const custom = nonSimpleHeaders(request.headers);
    const where = `${method} ${url.pathname}`;
    if (custom.length || !['GET', 'HEAD', 'POST'].includes(method)) {
      const preflight = await realFetch(url, {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': method,
          ...(custom.length ? { 'Access-Control-Request-Headers': custom.join(', ') } : {}),
        },
      });
      const methods = listed(preflight.headers.get('access-control-allow-methods'));
      const headers = listed(preflight.headers.get('access-control-allow-headers'));
      if (!preflight.ok) blocked.push(`${where}: preflight answered ${preflight.status}`);
      if (!allowsOrigin(preflight)) blocked.push(`${where}: preflight does not allow the origin`);
      if (!methods.includes('*') && !methods.includes(method.toLowerCase()))
        blocked.push(`${where}: preflight does not allow the method`);
      for (const name of custom)
        if (!headers.includes('*') && !headers.includes(name))
          blocked.push(`${where}: preflight does not allow the header ${name}`);
    }
    const headers = new Headers(request.headers);
    headers.set('Origin', origin);
    const response = await realFetch(new Request(request, { headers }));
    if (!allowsOrigin(response)) blocked.push(`${where}: the answer does not allow the origin`);
    const exchange = { method, path: url.pathname + url.search, status: response.status };
    if (response.status >= 400) {
      const body = await response.clone().json().catch(() => null);
      exchange.code = body?.error_code ?? body?.code ?? body?.error?.code ?? null;
    }
    log.push(exchange);
    return asThePageSeesIt(response);
  }

  return { fetch: fetchFromPage, blocked, log };
}
