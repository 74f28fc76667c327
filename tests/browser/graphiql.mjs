// Drives the GraphiQL page of a running mailops server in headless Chromium and proves it
// works without internet: every script comes from mailops itself, GraphiQL renders, a
// query typed into it runs with an Authorization header and shows its result, and the
// page's graphql-ws client can run an operation over mailops' WebSocket, all under the
// page's Content-Security-Policy and with its scripts' integrity checked.
//
//   node tests/browser/graphiql.mjs http://127.0.0.1:8080
//
// Start mailops with MAILOPS_GRAPHIQL_ASSETS=<dir filled by scripts/fetch-graphiql-assets.sh>
// and MAILOPS_ADMIN_PASSWORD (default: admin-password-for-tests). Chromium is taken from
// MAILOPS_TEST_CHROMIUM, default /usr/bin/chromium. Exits 0 when everything worked;
// otherwise prints what failed, saves a screenshot and exits 1.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 20_000;
const TOTAL_TIMEOUT_MS = 120_000;

const HEADERS = (token) => `{"Authorization": "Bearer ${token}"}`;
const QUERY = '{ me { username role } }';

class Failure extends Error {}

function log(message) {
  console.log(`[graphiql] ${message}`);
}

function usage() {
  console.error('usage: node graphiql.mjs <mailops base URL, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}

async function login(base, password) {
  let response;
  try {
    response = await fetch(new URL('/graphql', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query:
          'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }',
        variables: { u: 'admin', p: password },
      }),
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
  } catch (error) {
    throw new Failure(`mailops does not answer at ${base}: ${error.message}`);
  }
  const body = await response.json().catch(() => null);
  const token = body?.data?.login?.accessToken;
  if (!response.ok || typeof token !== 'string') {
    throw new Failure(`logging in as admin failed (HTTP ${response.status}): ${JSON.stringify(body)}`);
  }
  return token;
}

/** The text of the CodeMirror editor inside `selector`. */
function editorValue(page, selector) {
  return page.$eval(`${selector} .CodeMirror`, (element) => element.CodeMirror.getValue());
}

/**
 * Replaces the content of a GraphiQL editor the way a person would: click into it, select
 * everything, type. insertText sends the text as one input (no key presses), so
 * CodeMirror's bracket auto-closing does not add braces of its own.
 */
async function typeInto(page, selector, text, what) {
  const editor = page.locator(`${selector} .CodeMirror`);
  await editor.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.insertText(text);
  const value = await editorValue(page, selector);
  if (value !== text) {
    throw new Failure(`the ${what} editor holds ${JSON.stringify(value)} instead of ${JSON.stringify(text)}`);
  }
}

async function run(base, token, chromiumPath, failures) {
  const origin = new URL(base).origin;
  const profile = mkdtempSync(join(tmpdir(), 'mailops-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let page;
  try {
    // The page must not reach anything but mailops: record and refuse everything else.
    const foreign = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin) {
        return route.continue();
      }
      foreign.push(url);
      return route.abort('blockedbyclient');
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const sockets = [];
    page.on('websocket', (socket) => {
      sockets.push(socket.url());
      const url = new URL(socket.url());
      if (url.host !== new URL(origin).host) {
        foreign.push(socket.url());
      }
    });
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // The page is served with a Content-Security-Policy and Subresource Integrity: anything
    // it refuses (a script, a style, a connection) is a failure, not a warning.
    const refusedByPolicy = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') {
        log(`browser console ${message.type()}: ${message.text()}`);
      }
      if (/Content Security Policy|integrity/i.test(message.text())) {
        refusedByPolicy.push(message.text());
      }
    });
    page.on('requestfailed', (request) => {
      log(`request failed: ${request.url()} (${request.failure()?.errorText})`);
    });

    // GraphiQL asks for the schema (an introspection query) as soon as it renders.
    const introspection = page
      .waitForResponse(
        (response) =>
          response.request().method() === 'POST' && new URL(response.url()).pathname === '/graphql',
        { timeout: STEP_TIMEOUT_MS },
      )
      .then((r) => r.json())
      .catch((error) => ({ error: error.message }));
    const started = Date.now();
    const response = await page.goto(new URL('/graphql', base).toString(), { waitUntil: 'load' });
    if (!response || response.status() !== 200) {
      throw new Failure(`GET /graphql answered ${response?.status()}`);
    }
    try {
      await page.locator('.graphiql-container').waitFor({ state: 'visible' });
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ state: 'visible' });
    } catch {
      throw new Failure(
        `GraphiQL did not render within ${STEP_TIMEOUT_MS} ms` +
          (foreign.length ? `; the page tried to reach other hosts than mailops: ${foreign.join(', ')}` : '') +
          (pageErrors.length ? `; the page threw: ${pageErrors.join(' | ')}` : ''),
      );
    }
    log(`GraphiQL rendered in ${Date.now() - started} ms`);
    // GraphiQL's docs and completion need the schema; its introspection query must pass
    // the server's limits.
    const schema = await introspection;
    if (!schema?.data?.__schema) {
      throw new Error(`GraphiQL could not load the schema: ${JSON.stringify(schema).slice(0, 300)}`);
    }
    log('GraphiQL loaded the schema');

    await page.getByRole('button', { name: 'Headers', exact: true }).click();
    await typeInto(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', HEADERS(token), 'headers');
    await typeInto(page, '.graphiql-query-editor', QUERY, 'query');
    await page.locator('button.graphiql-execute-button').click();
    try {
      await page.waitForFunction(
        () => {
          const editor = document.querySelector('.result-window .CodeMirror');
          return editor?.CodeMirror.getValue().includes('"username": "admin"');
        },
        null,
        { timeout: STEP_TIMEOUT_MS },
      );
    } catch {
      const shown = await editorValue(page, '.result-window').catch((e) => `(unreadable: ${e.message})`);
      throw new Failure(`the result pane did not show "username": "admin"; it shows:\n${shown}`);
    }
    const result = await editorValue(page, '.result-window');
    log(`GraphiQL ran ${QUERY} over HTTP:\n${result}`);

    // GraphiQL sends subscriptions through the page's graphql-ws client (`wsClient`, loaded
    // from mailops), which puts the headers tab's Authorization into connection_init. The
    // schema has no subscriptions, so run a query through that client directly.
    const overWebSocket = await page.evaluate(
      (timeoutMs) =>
        new Promise((resolve) => {
          if (typeof wsClient === 'undefined') {
            resolve({ error: 'the page defines no wsClient' });
            return;
          }
          const results = [];
          let cancel = () => {};
          const finish = (outcome) => {
            clearTimeout(timer);
            cancel();
            resolve(outcome);
          };
          const timer = setTimeout(() => finish({ error: `no answer within ${timeoutMs} ms` }), timeoutMs);
          cancel = wsClient.subscribe(
            { query: '{ me { username } }' },
            {
              next: (value) => results.push(value),
              error: (error) =>
                finish({
                  error:
                    error instanceof Error
                      ? error.message
                      : error?.code !== undefined
                        ? `the socket closed with ${error.code} ${error.reason}`
                        : `a WebSocket "${error?.type}" event (see the browser console above)`,
                }),
              complete: () => finish({ results }),
            },
          );
        }),
      STEP_TIMEOUT_MS,
    );
    if (overWebSocket.error) {
      throw new Failure(`the WebSocket operation failed: ${overWebSocket.error}`);
    }
    if (overWebSocket.results?.[0]?.data?.me?.username !== 'admin') {
      throw new Failure(`the WebSocket operation returned ${JSON.stringify(overWebSocket.results)}`);
    }
    const expectedSocket = new URL('/graphql/ws', origin).toString().replace(/^http/, 'ws');
    if (!sockets.includes(expectedSocket)) {
      throw new Failure(`no WebSocket to ${expectedSocket} was opened; sockets: ${JSON.stringify(sockets)}`);
    }
    log(`the page's wsClient ran { me { username } } over ${expectedSocket}: ${JSON.stringify(overWebSocket.results)}`);

    if (foreign.length) {
      throw new Failure(`the page tried to reach other hosts than mailops:\n  ${foreign.join('\n  ')}`);
    }
    if (pageErrors.length) {
      throw new Failure(`the page threw: ${pageErrors.join(' | ')}`);
    }
    if (refusedByPolicy.length) {
      throw new Failure(`the page's own policy refused what it loads:\n  ${refusedByPolicy.join('\n  ')}`);
    }
    const policy = response.headers()['content-security-policy'] ?? '';
    if (!policy.includes("frame-ancestors 'none'")) {
      throw new Failure(`GET /graphql has no Content-Security-Policy with frame-ancestors 'none': ${policy}`);
    }
  } catch (error) {
    failures.push(error);
    if (page) {
      const shot = join(tmpdir(), `mailops-graphiql-failure-${Date.now()}.png`);
      await page
        .screenshot({ path: shot, fullPage: true })
        .then(() => log(`screenshot of the page: ${shot}`))
        .catch((e) => log(`no screenshot: ${e.message}`));
    }
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

async function main() {
  const base = process.argv[2];
  if (!base || !URL.canParse(base)) {
    usage();
  }
  const chromiumPath = process.env.MAILOPS_TEST_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(chromiumPath)) {
    throw new Failure(
      `Chromium is not at ${chromiumPath}: install it (apt-get install chromium) or set MAILOPS_TEST_CHROMIUM`,
    );
  }
  const password = process.env.MAILOPS_ADMIN_PASSWORD || 'admin-password-for-tests';
  const token = await login(base, password);
  log(`logged in as admin at ${base}`);
  const failures = [];
  await run(base, token, chromiumPath, failures);
  if (failures.length) {
    throw failures[0];
  }
}

const watchdog = setTimeout(() => {
  console.error(`[graphiql] FAILED: still running after ${TOTAL_TIMEOUT_MS} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
watchdog.unref();

try {
  await main();
  log('OK: GraphiQL works offline');
  process.exit(0);
} catch (error) {
  console.error(`[graphiql] FAILED: ${error instanceof Failure ? error.message : error.stack}`);
  process.exit(1);
}
