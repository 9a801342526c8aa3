/**
 * Package boundaries (DESIGN.md "Allowed imports"): coordinator → shared,
 * client-node → shared, scenarios → shared; only cli/ wires them; shared
 * imports nothing of ours and does no I/O: no fs, network, processes,
 * workers, OS or module-loader access, environment, timers or `fetch`
 * (`node:crypto` is allowed: it is a pure function library here). Every
 * form of import is read — `import … from`, side-effect `import 'x'`,
 * dynamic `import('x')`, `require('x')` and `export … from` — and each
 * package must yield source files, so a moved folder fails the test instead
 * of passing it vacuously.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.test-d.ts')) out.push(p);
  }
  return out;
}

/** Source text with comments removed, so a module doc that mentions `fetch(` or `import 'x'` is not a hit. */
const code = (text: string): string => text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');

/** Every module specifier a file loads: static, side-effect, dynamic, require and re-export forms. */
function importsOf(text: string): string[] {
  const specs: string[] = [];
  const forms = /(?:^|[\n;])\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of code(text).matchAll(forms)) specs.push((m[1] ?? m[2] ?? m[3] ?? m[4])!);
  return specs;
}

/** Node built-ins that do I/O or reach the process, OS or module loader; with or without the `node:` prefix. */
const IO_BUILTINS = 'fs|fs/promises|net|http|https|http2|child_process|dgram|worker_threads|cluster|os|module|dns|dns/promises|tls|readline|repl|vm|process|timers|timers/promises|inspector|v8|perf_hooks';

// socket.io-parser is allowed in shared: it is Socket.IO's I/O-free packet codec (STYLE.md §1's model of a pure module).
const FORBIDDEN: Record<string, RegExp> = {
  shared: new RegExp(`^(@fedmart\\/(coordinator|client-node|scenarios)|(node:)?(${IO_BUILTINS})$|better-sqlite3|express|socket\\.io(?!-parser)|drizzle-orm|@tensorflow\\/|node-fetch|undici|ws$)`),
  coordinator: /^@fedmart\/(client-node|scenarios)|^@tensorflow\//,
  'client-node': /^@fedmart\/(coordinator|scenarios)|^(express|better-sqlite3|drizzle-orm)$/,
  scenarios: /^@fedmart\/(coordinator|client-node)/,
};

/** Side effects shared/ must not have even without an import: environment, process, timers, network. */
const SHARED_GLOBALS = /\bprocess\s*\.|\b(setTimeout|setInterval|setImmediate|queueMicrotask|fetch)\s*\(|\bnew\s+(WebSocket|Worker|XMLHttpRequest|EventSource)\b/;

describe('package boundaries', () => {
  it('reads every import form, and ignores comments', () => {
    const text = [
      "import { a } from 'x-from';",
      "import 'x-side-effect';",
      'import "x-double";',
      "export * from 'x-reexport';",
      "const m = await import('x-dynamic');",
      "const r = require('x-require');",
      "import {\n  b,\n  c,\n} from 'x-multiline';",
      "// import 'x-in-comment';",
      "/* require('x-in-block') */",
    ].join('\n');
    expect(importsOf(text).sort()).toEqual(['x-double', 'x-dynamic', 'x-from', 'x-multiline', 'x-reexport', 'x-require', 'x-side-effect']);
    for (const spec of ['node:os', 'os', 'node:module', 'node:fs/promises', 'node:process', 'node:timers', 'better-sqlite3']) expect(FORBIDDEN.shared!.test(spec), spec).toBe(true);
    for (const spec of ['node:crypto', 'zod', '@noble/curves/ed25519.js', './x.ts']) expect(FORBIDDEN.shared!.test(spec), spec).toBe(false);
    for (const line of ['process.env.X', 'process.hrtime()', 'setImmediate(f)', 'setTimeout(f, 1)', 'fetch(url)', 'await fetch (url)', 'new WebSocket(u)', 'queueMicrotask(f)']) expect(SHARED_GLOBALS.test(line), line).toBe(true);
    for (const line of ['registry.fetchModel()', 'prefetch(x)', 'const processed = 1']) expect(SHARED_GLOBALS.test(line), line).toBe(false);
  });

  it('finds source files in every package (an empty or moved folder fails, not passes)', async () => {
    for (const pkg of [...Object.keys(FORBIDDEN), 'cli']) {
      const files = await sources(path.join(ROOT, pkg, pkg === 'cli' ? '' : 'src'));
      expect(files.length, `${pkg}: no .ts sources found`).toBeGreaterThan(0);
    }
  });

  for (const [pkg, forbidden] of Object.entries(FORBIDDEN)) {
    it(`${pkg} imports only what it may`, async () => {
      const bad: string[] = [];
      const files = await sources(path.join(ROOT, pkg, 'src'));
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        for (const spec of importsOf(await readFile(file, 'utf8'))) {
          if (forbidden.test(spec)) bad.push(`${path.relative(ROOT, file)} imports ${spec}`);
          if (spec.startsWith('.') && !path.resolve(path.dirname(file), spec).startsWith(path.join(ROOT, pkg) + path.sep)) bad.push(`${path.relative(ROOT, file)} reaches outside ${pkg}/ via ${spec}`);
        }
      }
      expect(bad).toEqual([]);
    });
  }

  it('shared/ reads no environment or process, starts no timers and fetches nothing', async () => {
    const bad: string[] = [];
    const files = await sources(path.join(ROOT, 'shared', 'src'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const m = SHARED_GLOBALS.exec(code(await readFile(file, 'utf8')));
      if (m) bad.push(`${path.relative(ROOT, file)}: ${m[0]}`);
    }
    expect(bad).toEqual([]);
  });

  it('nothing secret comes from Math.random', async () => {
    const bad: string[] = [];
    for (const pkg of ['shared', 'coordinator', 'client-node']) {
      const files = await sources(path.join(ROOT, pkg, 'src'));
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        const text = code(await readFile(file, 'utf8'));
        if (/Math\.random\s*\(/.test(text)) bad.push(path.relative(ROOT, file));
      }
    }
    expect(bad).toEqual([]);
  });
});
