/**
 * Builds the operator console (console/src, Preact + uPlot) with esbuild into an index.html and
 * content-hashed assets. `npm run build` writes them to container/dist/console/ (what the
 * container image ships, served by container/src/http/console-routes.ts); `npm run dev` builds
 * them in memory at start and again on every change (`watchConsole`), with no separate step.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type BuildOptions, type BuildResult, build, context, type Plugin } from 'esbuild';

const HERE = __dirname;
/** Where `npm run build` writes the console (beside the compiled service). */
export const CONSOLE_OUT_DIR = join(HERE, '..', 'container', 'dist', 'console');

/** File name (`index.html` or an asset name under /console/assets/) -> content. */
export type ConsoleFiles = Map<string, Buffer>;

function options(minify: boolean): BuildOptions {
  return {
    entryPoints: { app: join(HERE, 'src', 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: ['chrome111', 'firefox111', 'safari16.4'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify,
    sourcemap: 'linked',
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    outdir: join(CONSOLE_OUT_DIR, 'assets'),
    write: false,
    metafile: true,
    legalComments: 'linked',
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': minify ? '"production"' : '"development"' },
  };
}

/** The page and assets of one esbuild result. */
function filesOf(result: BuildResult): ConsoleFiles {
  const files: ConsoleFiles = new Map();
  let js: string | undefined;
  let css: string | undefined;
  for (const f of result.outputFiles ?? []) {
    const name = basename(f.path);
    files.set(name, Buffer.from(f.contents));
    if (/^app-[^.]+\.js$/.test(name)) js = name;
    if (/^app-[^.]+\.css$/.test(name)) css = name;
  }
  if (!js || !css) throw new Error('console build produced no app script or stylesheet');
  const page = readFileSync(join(HERE, 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css);
  files.set('index.html', Buffer.from(page));
  files.set('favicon.svg', readFileSync(join(HERE, 'favicon.svg')));
  return files;
}

/** Build once, in memory. */
export async function buildConsole({ minify = true }: { minify?: boolean } = {}): Promise<ConsoleFiles> {
  return filesOf(await build(options(minify)));
}

/** Write a build where the container serves it from: index.html and assets/. */
export function writeConsole(files: ConsoleFiles, dir = CONSOLE_OUT_DIR): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'assets'), { recursive: true });
  for (const [name, body] of files)
    writeFileSync(name === 'index.html' ? join(dir, name) : join(dir, 'assets', name), body);
}

export interface ConsoleWatch {
  stop(): Promise<void>;
}

/**
 * Build now and again whenever a source file changes; `onBuild` gets every good build, `onError`
 * every failed one (the last good build keeps being served).
 */
export async function watchConsole(
  onBuild: (files: ConsoleFiles) => void,
  onError: (message: string) => void,
): Promise<ConsoleWatch> {
  let first: ((v: unknown) => void) | undefined;
  const firstBuild = new Promise((resolve) => {
    first = resolve;
  });
  const report: Plugin = {
    name: 'tollgate-console-report',
    setup(b) {
      b.onEnd((result) => {
        if (result.errors.length > 0) onError(result.errors.map((e) => e.text).join('; '));
        else onBuild(filesOf(result));
        first?.(undefined);
        first = undefined;
      });
    },
  };
  const ctx = await context({ ...options(false), plugins: [report] });
  await ctx.watch();
  await firstBuild;
  return { stop: () => ctx.dispose() };
}

if (require.main === module) {
  buildConsole()
    .then((files) => {
      writeConsole(files);
      const size = [...files.values()].reduce((n, b) => n + b.length, 0);
      process.stdout.write(
        `console: ${files.size} files, ${Math.round(size / 1024)} KiB -> ${CONSOLE_OUT_DIR}\n`,
      );
    })
    .catch((err: unknown) => {
      process.stderr.write(`console build failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
