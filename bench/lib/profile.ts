/**
 * Summarize a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function and per
 * package, so the report can say where the gateway's CPU goes.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  /** Short location: package or file, and line. */
  where: string;
  selfMs: number;
  /** Share of the non-idle time. */
  pct: number;
}

export interface ProfileSummary {
  /** Whether only the samples of the measured load window were used (else the whole profile). */
  windowed: boolean;
  /** Sampled wall time, ms. */
  totalMs: number;
  /** Time the main thread was busy (everything but `(idle)`), ms. */
  busyMs: number;
  top: Frame[];
  /** Self time grouped by package / area of the frame itself. */
  byArea: Frame[];
  /**
   * Time charged to the innermost frame that belongs to a package or to Tollgate, so that
   * node internals (streams, sockets, timers) count for whoever called them.
   */
  byCaller: Frame[];
}

/** `node_modules/@scope/pkg/...` -> `@scope/pkg`; node internals; Tollgate's own files. */
export function areaOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return '(native / V8 builtins)';
  }
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
    // Families of small packages read better as one line.
    if (pkg.startsWith('@aws-sdk/') || pkg.startsWith('@smithy/'))
      return 'AWS SDK v3 (@aws-sdk/*, @smithy/*)';
    if (pkg.startsWith('@aws-lambda-powertools/')) return 'Powertools (@aws-lambda-powertools/*)';
    return pkg;
  }
  if (url.startsWith('node:')) {
    const m = /^node:internal\/([^/]+)/.exec(url);
    return m ? `node:${m[1]}` : url;
  }
  const dist = url.indexOf('container/dist/');
  if (dist !== -1) return `tollgate:${url.slice(dist + 'container/dist/'.length).split('/')[0]}`;
  return url.replace(/^file:\/\//, '');
}

function shortLocation(url: string, line: number): string {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm !== -1) u = u.slice(nm + 'node_modules/'.length);
  const dist = u.indexOf('container/dist/');
  if (dist !== -1) u = `dist/${u.slice(dist + 'container/dist/'.length)}`;
  return `${u}:${line + 1}`;
}

/**
 * @param window - monotonic-clock microseconds (`process.hrtime` in the benchmark, the same
 *   clock as V8's profile timestamps on Linux): only samples inside it count.
 */
export function summarizeProfile(
  path: string,
  topN = 10,
  window?: { fromUs: number; toUs: number },
): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const windowed = window !== undefined && window.fromUs >= p.startTime && window.toUs <= p.endTime;
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to the sampled node.
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0;
    t += d;
    if (windowed && (t < window.fromUs || t > window.toUs)) continue;
    const id = p.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + d);
  }
  const callerArea = (id: number): string => {
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const cf = byId.get(x)?.callFrame;
      if (cf?.url && !cf.url.startsWith('node:')) return areaOf(cf.url, cf.functionName);
    }
    const cf = byId.get(id)?.callFrame;
    return cf?.functionName.startsWith('(')
      ? cf.functionName
      : 'node core from the event loop (socket reads, HTTP parsing, timers)';
  };
  const callers = new Map<string, number>();
  const frames = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const name = functionName || '(anonymous)';
    const key = `${name}|${url}|${lineNumber}`;
    const f = frames.get(key) ?? { name, where: shortLocation(url, lineNumber), us: 0 };
    f.us += us;
    frames.set(key, f);
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const caller = callerArea(id);
    callers.set(caller, (callers.get(caller) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => Math.round((us / busy) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const top = [...frames.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((f) => ({ name: f.name, where: f.where, selfMs: ms(f.us), pct: pct(f.us) }));
  const group = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 14)
      .map(([name, us]) => ({ name, where: '', selfMs: ms(us), pct: pct(us) }));
  return {
    windowed,
    totalMs: ms(total),
    busyMs: ms(busy),
    top,
    byArea: group(areas),
    byCaller: group(callers),
  };
}
