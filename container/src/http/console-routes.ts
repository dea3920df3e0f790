/**
 * The operator console at `/console`: a single page (index.html) and its built assets, served
 * by the service itself with a strict Content-Security-Policy. Off unless
 * TOLLGATE_CONSOLE_ENABLED=true (`npm run dev` turns it on). The assets are built by
 * `npm run build` into `container/dist/console/`; `npm run dev` builds them in memory and hands
 * them in through `assets`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyReply } from 'fastify';
import type { RoutePlugin } from '../app';
import { NotFoundError, ServiceUnavailableError } from '../errors';

/** One built file of the console. */
export interface ConsoleAsset {
  body: Buffer;
  type: string;
  etag: string;
}

/** File name (as under `/console/assets/`, plus `index.html`) -> content. */
export type ConsoleAssets = ReadonlyMap<string, ConsoleAsset>;

/**
 * The console's policy: scripts, styles, images and API calls from this origin only; no inline
 * script or style, no eval, no plugins, no framing; and Trusted Types with no policy, so no
 * string can ever reach an HTML sink (`innerHTML` and the like throw): owners, models, prompts
 * and answers can only be rendered as text.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

/** An asset from its bytes (content type from the extension, a strong ETag from the content). */
export function consoleAsset(name: string, body: Buffer): ConsoleAsset {
  return {
    body,
    type: TYPES[extname(name)] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
  };
}

/** Where `npm run build` puts the assets, seen from the compiled module and from the source. */
export const BUILT_CONSOLE_DIRS = [
  join(__dirname, '..', 'console'),
  join(__dirname, '..', '..', 'dist', 'console'),
];

/** Read the built assets from the first directory that holds an index.html, or null. */
export function loadConsoleAssets(
  dirs: readonly string[] = BUILT_CONSOLE_DIRS,
): Map<string, ConsoleAsset> | null {
  const dir = dirs.find((d) => existsSync(join(d, 'index.html')));
  if (!dir) return null;
  const out = new Map<string, ConsoleAsset>();
  out.set('index.html', consoleAsset('index.html', readFileSync(join(dir, 'index.html'))));
  const assets = join(dir, 'assets');
  if (existsSync(assets)) {
    for (const f of readdirSync(assets)) out.set(f, consoleAsset(f, readFileSync(join(assets, f))));
  }
  return out;
}

export interface ConsoleRoutesOptions {
  /**
   * The current assets (called per request, so a dev rebuild shows at once).
   * @default the files `npm run build` wrote, read once at start
   */
  assets?: () => ConsoleAssets | null;
}

const ASSET_NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;

function send(reply: FastifyReply, asset: ConsoleAsset, cache: string, ifNoneMatch: string | undefined) {
  reply.headers(SECURITY_HEADERS).header('cache-control', cache).header('etag', asset.etag);
  if (ifNoneMatch === asset.etag) return reply.code(304).send();
  return reply.type(asset.type).send(asset.body);
}

/** The console routes, when the environment enables them. */
export function consoleRoutes(options: ConsoleRoutesOptions = {}): RoutePlugin {
  return (app, rt) => {
    if (!rt.env.consoleEnabled) return;
    let assets = options.assets;
    if (!assets) {
      const built = loadConsoleAssets();
      if (!built)
        rt.telemetry.logger.warn(
          'TOLLGATE_CONSOLE_ENABLED is set but the console is not built (run npm run build): /console answers 503',
        );
      assets = () => built;
    }
    const current = assets;
    const notBuilt = () =>
      new ServiceUnavailableError('The console is not built on this server; run `npm run build`.', {
        code: 'console_not_built',
      });
    // Pages and files, not API: left out of the OpenAPI document.
    const none = { config: { auth: 'none' as const, internal: true } };

    const index = async (req: { headers: Record<string, unknown> }, reply: FastifyReply) => {
      const page = current()?.get('index.html');
      if (!page) throw notBuilt();
      // Revalidated every time: it names the content-hashed assets of the current build.
      return send(reply, page, 'no-cache', req.headers['if-none-match'] as string | undefined);
    };
    app.get('/console', none, index);
    app.get('/console/', none, index);
    app.get('/console/assets/:file', none, async (req, reply) => {
      const { file } = req.params as { file: string };
      const all = current();
      if (!all) throw notBuilt();
      const asset = ASSET_NAME_RE.test(file) && file !== 'index.html' ? all.get(file) : undefined;
      if (!asset) throw new NotFoundError(`No console asset '${file}'.`, { param: 'file' });
      // Names carry a content hash (except the favicon): cache them for good.
      const immutable = /-[A-Z0-9]{8,}\./i.test(file);
      return send(
        reply,
        asset,
        immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        req.headers['if-none-match'],
      );
    });
  };
}

/** The console over the assets `npm run build` wrote (when TOLLGATE_CONSOLE_ENABLED=true). */
export const registerConsoleRoutes: RoutePlugin = consoleRoutes();
