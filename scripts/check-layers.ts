/**
 * `npm run check:layers`: the import graph of `container/src` between its folders must have no
 * cycle. Each folder directly under `container/src` is one node, and so is each top-level file;
 * every import counts, type-only ones included (`madge --circular` looks at files, which hides a
 * cycle that goes through two files of one folder). Prints the graph with `--graph`.
 *
 * Exit 0 when the graph is acyclic, 1 (naming every cycle and the imports that make it) when not.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '..', 'container', 'src');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The node a file belongs to: its top folder under container/src, or the top-level file itself. */
function nodeOf(file: string): string {
  const rel = relative(ROOT, file).split(sep);
  return rel.length === 1 ? (rel[0] as string).replace(/\.tsx?$/, '.ts') : `${rel[0]}/`;
}

function resolveImport(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(from), spec);
  for (const c of [`${base}.ts`, `${base}.tsx`, join(base, 'index.ts')]) {
    try {
      if (statSync(c).isFile()) return c;
    } catch {
      // next candidate
    }
  }
  return null;
}

export interface LayerGraph {
  /** node -> nodes it imports */
  edges: Map<string, Set<string>>;
  /** "a -> b" -> the file-level imports behind that edge */
  evidence: Map<string, string[]>;
}

export function buildGraph(root = ROOT): LayerGraph {
  const edges = new Map<string, Set<string>>();
  const evidence = new Map<string, string[]>();
  for (const file of files(root)) {
    const from = nodeOf(file);
    if (!edges.has(from)) edges.set(from, new Set());
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      const target = resolveImport(file, ref.fileName);
      if (!target || !target.startsWith(root)) continue;
      const to = nodeOf(target);
      if (to === from) continue;
      edges.get(from)?.add(to);
      const k = `${from} -> ${to}`;
      const list = evidence.get(k) ?? [];
      list.push(`${relative(root, file)} imports ${relative(root, target)}`);
      evidence.set(k, list);
    }
  }
  return { edges, evidence };
}

/** Strongly connected components with more than one node (Tarjan): each is a cycle. */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

if (require.main === module) {
  const { edges, evidence } = buildGraph();
  if (process.argv.includes('--graph')) {
    for (const [from, tos] of [...edges].sort())
      console.log(`${from.padEnd(16)} -> ${[...tos].sort().join(', ')}`);
  }
  const found = cycles(edges);
  if (found.length === 0) {
    console.log(
      `layers: no import cycle between the ${edges.size} folders and top-level files of container/src`,
    );
    process.exit(0);
  }
  for (const scc of found) {
    console.error(`import cycle between: ${scc.join(', ')}`);
    for (const a of scc)
      for (const b of scc)
        for (const e of evidence.get(`${a} -> ${b}`) ?? []) console.error(`  ${a} -> ${b}: ${e}`);
  }
  process.exit(1);
}
