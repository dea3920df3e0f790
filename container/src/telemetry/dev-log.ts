/**
 * Log lines for a person at a terminal (`npm run dev`, TOLLGATE_LOG_FORMAT=dev): one line per
 * request (method, route, status, model, tokens, cost, latency, time to first token, cache) and
 * short `LEVEL message key=value` lines for everything else. The same Powertools Logger does the
 * level filtering and the attribute handling; only the final printing differs, so production
 * output (JSON) is untouched.
 */
import { Logger, type LogItem } from '@aws-lambda-powertools/logger';

/** ANSI styling, or none (not a TTY, NO_COLOR, tests). */
export interface DevLogStyle {
  color: boolean;
}

const ANSI = { dim: '2', red: '31', green: '32', yellow: '33', cyan: '36', bold: '1' } as const;

function paint(style: DevLogStyle, code: keyof typeof ANSI, s: string): string {
  return style.color ? `\u001b[${ANSI[code]}m${s}\u001b[0m` : s;
}

/** `HH:MM:SS.mmm` in local time: what a person compares with their clock. */
function clock(ts: unknown): string {
  const d = typeof ts === 'string' ? new Date(ts) : new Date();
  const t = Number.isNaN(d.getTime()) ? new Date() : d;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}.${p(t.getMilliseconds(), 3)}`;
}

/** A cost in USD with enough digits to see a fraction of a cent. */
export function formatUsd(v: number): string {
  if (v === 0) return '$0';
  if (v >= 0.01) return `$${v.toFixed(4)}`;
  return `$${v.toPrecision(3)}`;
}

function ms(v: unknown): string {
  const n = Number(v);
  if (!Number.isFinite(n)) return '?';
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}s` : `${Math.round(n)}ms`;
}

/** Attributes Powertools puts on every line; not worth repeating per line at a terminal. */
const STANDARD = new Set(['level', 'message', 'timestamp', 'service', 'sampling_rate', 'xray_trace_id']);

/** `key=value` pairs, values quoted when they hold spaces; errors reduced to their message. */
function pairs(attrs: Record<string, unknown>): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(attrs)) {
    if (STANDARD.has(k) || v === undefined) continue;
    let s: string;
    if (v !== null && typeof v === 'object' && 'message' in v && ('stack' in v || 'name' in v))
      s = String((v as { message: unknown }).message);
    else if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) s = v.join(',');
    else s = typeof v === 'string' ? v : JSON.stringify(v);
    out.push(`${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`);
  }
  return out.join(' ');
}

/** The one line of a finished request (the `request` record's fields). */
export function formatRequestLine(a: Record<string, unknown>, style: DevLogStyle = { color: false }): string {
  const status = Number(a.status);
  const statusText =
    status >= 500
      ? paint(style, 'red', String(status))
      : status >= 400
        ? paint(style, 'yellow', String(status))
        : paint(style, 'green', String(status));
  const parts = [
    paint(style, 'dim', clock(a.timestamp)),
    `${String(a.method ?? '?')} ${String(a.route ?? '?')}`,
    statusText,
  ];
  if (typeof a.model === 'string') parts.push(paint(style, 'cyan', a.model));
  if (a.tokensIn !== undefined || a.tokensOut !== undefined)
    parts.push(`${Number(a.tokensIn ?? 0)}→${Number(a.tokensOut ?? 0)} tok`);
  if (typeof a.costUsd === 'number') parts.push(formatUsd(a.costUsd));
  parts.push(a.ttftMs !== undefined ? `${ms(a.latencyMs)} (ttft ${ms(a.ttftMs)})` : ms(a.latencyMs));
  if (typeof a.cache === 'string' && a.cache !== 'BYPASS') parts.push(`cache ${a.cache}`);
  if (a.stream === true) parts.push('stream');
  if (typeof a.errorCode === 'string')
    parts.push(paint(style, status >= 500 ? 'red' : 'yellow', a.errorCode));
  if (typeof a.owner === 'string') parts.push(paint(style, 'dim', `owner=${a.owner}`));
  if (a.content !== undefined) parts.push(paint(style, 'dim', `content=${JSON.stringify(a.content)}`));
  return parts.join('  ');
}

/** Any other log line: time, level (when not INFO), message, then its attributes. */
export function formatLogLine(a: Record<string, unknown>, style: DevLogStyle = { color: false }): string {
  const level = String(a.level ?? 'INFO');
  const tag =
    level === 'ERROR' || level === 'CRITICAL'
      ? paint(style, 'red', level)
      : level === 'WARN'
        ? paint(style, 'yellow', 'WARN')
        : level === 'INFO'
          ? ''
          : paint(style, 'dim', level);
  const rest = pairs(a);
  const line = [paint(style, 'dim', clock(a.timestamp)), tag, String(a.message ?? ''), rest]
    .filter((s) => s !== '')
    .join('  ');
  // A bug's stack trace is worth the lines it takes.
  const err = a.error;
  if ((level === 'ERROR' || level === 'CRITICAL') && err && typeof err === 'object' && 'stack' in err) {
    const stack = String((err as { stack: unknown }).stack ?? '');
    if (stack) return `${line}\n${stack.replace(/^/gm, '    ')}`;
  }
  return line;
}

/** A request record or any other log line, by its message. */
export function formatDevLine(a: Record<string, unknown>, style: DevLogStyle = { color: false }): string {
  return a.message === 'request' && a.method !== undefined
    ? formatRequestLine(a, style)
    : formatLogLine(a, style);
}

/** Where dev lines go: stdout, or stderr for warnings and errors (as Powertools does). */
export interface DevLogSink {
  out(line: string): void;
  err(line: string): void;
}

const processSink: DevLogSink = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** The Powertools Logger, printing dev lines instead of JSON. */
export class DevLogger extends Logger {
  private readonly style: DevLogStyle;
  private readonly sink: DevLogSink;

  constructor(options: ConstructorParameters<typeof Logger>[0] & { style?: DevLogStyle; sink?: DevLogSink }) {
    const { style, sink, ...rest } = options ?? {};
    super(rest);
    this.style = style ?? { color: process.stdout.isTTY === true && !process.env.NO_COLOR };
    this.sink = sink ?? processSink;
  }

  protected override printLog(_logLevel: number, log: LogItem): void {
    log.prepareForPrint();
    const a = log.getAttributes() as Record<string, unknown>;
    // The base constructor may print (a bad POWERTOOLS_LOG_LEVEL) before the fields are set.
    const sink = this.sink ?? processSink;
    const line = formatDevLine(a, this.style ?? { color: false });
    const level = String(a.level);
    if (level === 'WARN' || level === 'ERROR' || level === 'CRITICAL') sink.err(line);
    else sink.out(line);
  }
}
