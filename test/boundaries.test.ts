/**
 * Package boundaries (DESIGN.md "Allowed imports"): coordinator → shared,
 * client-node → shared, scenarios → shared; only cli/ wires them; shared
 * imports nothing of ours and does no I/O.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.test-d.ts')) out.push(p);
  }
  return out;
}

function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push((m[1] ?? m[2])!);
  return specs;
}

// socket.io-parser is allowed in shared: it is Socket.IO's I/O-free packet codec (STYLE.md §1's model of a pure module).
const FORBIDDEN: Record<string, RegExp> = {
  shared: /^(@fedmart\/(coordinator|client-node|scenarios)|node:(fs|net|http|https|child_process|dgram|worker_threads)|fs|net|http|better-sqlite3|express|socket\.io(?!-parser)|drizzle-orm)/,
  coordinator: /^@fedmart\/(client-node|scenarios)|^@tensorflow\//,
  'client-node': /^@fedmart\/(coordinator|scenarios)|^(express|better-sqlite3|drizzle-orm)$/,
  scenarios: /^@fedmart\/(coordinator|client-node)/,
};

describe('package boundaries', () => {
  for (const [pkg, forbidden] of Object.entries(FORBIDDEN)) {
    it(`${pkg} imports only what it may`, async () => {
      const bad: string[] = [];
      for (const file of await sources(path.join(ROOT, pkg, 'src'))) {
        for (const spec of importsOf(await readFile(file, 'utf8'))) {
          if (forbidden.test(spec)) bad.push(`${path.relative(ROOT, file)} imports ${spec}`);
          if (spec.startsWith('.') && !path.resolve(path.dirname(file), spec).startsWith(path.join(ROOT, pkg) + path.sep)) bad.push(`${path.relative(ROOT, file)} reaches outside ${pkg}/ via ${spec}`);
        }
      }
      expect(bad).toEqual([]);
    });
  }

  it('shared/ reads no environment and starts no timers', async () => {
    const bad: string[] = [];
    for (const file of await sources(path.join(ROOT, 'shared', 'src'))) {
      const text = (await readFile(file, 'utf8')).replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      if (/process\.env|setTimeout\(|setInterval\(/.test(text)) bad.push(path.relative(ROOT, file));
    }
    expect(bad).toEqual([]);
  });

  it('nothing secret comes from Math.random', async () => {
    const bad: string[] = [];
    for (const pkg of ['shared', 'coordinator', 'client-node']) {
      for (const file of await sources(path.join(ROOT, pkg, 'src'))) {
        const text = (await readFile(file, 'utf8')).replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
        if (/Math\.random\s*\(/.test(text)) bad.push(path.relative(ROOT, file));
      }
    }
    expect(bad).toEqual([]);
  });
});
