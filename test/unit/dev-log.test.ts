/**
 * The dev log format (`npm run dev`, TOLLGATE_LOG_FORMAT=dev): one readable line per request and
 * short lines for the rest, through the same Powertools Logger; the production JSON is unchanged.
 */
import { readEnv } from '../../container/src/config/env';
import {
  DevLogger,
  formatDevLine,
  formatRequestLine,
  formatUsd,
} from '../../container/src/telemetry/dev-log';
import { Telemetry } from '../../container/src/telemetry/telemetry';

const AT = new Date(2026, 11, 4, 13, 4, 5, 67).toISOString();

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, sink: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe('dev log lines', () => {
  it('puts a streamed request on one line: method, route, status, model, tokens, cost, latency, ttft, cache', () => {
    const line = formatRequestLine({
      level: 'INFO',
      message: 'request',
      timestamp: AT,
      service: 'tollgate-api',
      requestId: 'req_1',
      method: 'POST',
      route: '/v1/chat/completions',
      status: 200,
      latencyMs: 812.4,
      model: 'simulator',
      ttftMs: 203,
      tokensIn: 12,
      tokensOut: 48,
      costUsd: 0.000105,
      cache: 'MISS',
      stream: true,
      keyId: 'key_1',
      owner: 'dev',
    });
    expect(line).toBe(
      '13:04:05.067  POST /v1/chat/completions  200  simulator  12→48 tok  $0.000105  812ms (ttft 203ms)  cache MISS  stream  owner=dev',
    );
    expect(line).not.toContain('\n');
    expect(line).not.toContain('{');
  });

  it('keeps a refused request short and names its error code', () => {
    expect(
      formatRequestLine({
        timestamp: AT,
        method: 'GET',
        route: '/admin/keys',
        status: 401,
        latencyMs: 1.2,
        errorCode: 'invalid_api_key',
      }),
    ).toBe('13:04:05.067  GET /admin/keys  401  1ms  invalid_api_key');
  });

  it('writes other lines as level, message and key=value pairs, errors by their message', () => {
    const err = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    expect(
      formatDevLine({
        level: 'WARN',
        message: 'usage write failed; will retry',
        timestamp: AT,
        service: 'tollgate-api',
        sampling_rate: 0,
        pending: 3,
        error: { name: err.name, message: err.message, stack: err.stack },
        models: ['simulator', 'simulator-large'],
      }),
    ).toBe(
      '13:04:05.067  WARN  usage write failed; will retry  pending=3 error="connect ECONNREFUSED 127.0.0.1:6379" models=simulator,simulator-large',
    );
    expect(formatDevLine({ level: 'INFO', message: 'stopped', timestamp: AT })).toBe('13:04:05.067  stopped');
  });

  it('colours the status only when asked (a TTY)', () => {
    const plain = formatRequestLine({ timestamp: AT, method: 'GET', route: '/x', status: 503, latencyMs: 1 });
    const coloured = formatRequestLine(
      { timestamp: AT, method: 'GET', route: '/x', status: 503, latencyMs: 1 },
      { color: true },
    );
    expect(plain).not.toContain('\u001b[');
    expect(coloured).toContain('\u001b[31m503\u001b[0m');
  });

  it('formats costs down to fractions of a cent', () => {
    expect(formatUsd(0)).toBe('$0');
    expect(formatUsd(0.0000123)).toBe('$0.0000123');
    expect(formatUsd(1.5)).toBe('$1.5000');
  });
});

describe('DevLogger', () => {
  it('is the Powertools Logger: levels filter, warnings go to stderr, info to stdout', () => {
    const c = capture();
    const log = new DevLogger({
      serviceName: 'tollgate-api',
      logLevel: 'INFO',
      sink: c.sink,
      style: { color: false },
    });
    log.debug('hidden at INFO');
    log.info('listening', { url: 'http://127.0.0.1:8080' });
    log.warn('redis not reachable at start; retrying in the background');
    expect(c.out).toHaveLength(1);
    expect(c.out[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} {2}listening {2}url=http:\/\/127\.0\.0\.1:8080$/);
    expect(c.err).toHaveLength(1);
    expect(c.err[0]).toContain('WARN  redis not reachable at start');
  });

  it('is what TOLLGATE_LOG_FORMAT=dev selects; the default stays Powertools JSON', () => {
    expect(readEnv({}).logFormat).toBe('json');
    expect(readEnv({ TOLLGATE_LOG_FORMAT: 'dev' }).logFormat).toBe('dev');
    expect(() => readEnv({ TOLLGATE_LOG_FORMAT: 'pretty' })).toThrow(/TOLLGATE_LOG_FORMAT/);
    const dev = new Telemetry({ serviceName: 's', namespace: 'N', logFormat: 'dev' });
    const json = new Telemetry({ serviceName: 's', namespace: 'N' });
    try {
      expect(dev.logger).toBeInstanceOf(DevLogger);
      expect(json.logger).not.toBeInstanceOf(DevLogger);
    } finally {
      dev.close();
      json.close();
    }
  });
});
