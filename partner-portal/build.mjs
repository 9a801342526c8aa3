// Builds the portal into dist/ (static files the coordinator serves at /): one bundled,
// minified script and the style sheets. Run by `npm install` (postinstall) and `npm start`;
// dist/ is never committed.
import { build } from 'esbuild';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'dist');
const require = createRequire(import.meta.url);

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: [path.join(here, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: path.join(out, 'app.js'),
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
await cp(path.join(here, 'src', 'styles.css'), path.join(out, 'styles.css'));
await cp(require.resolve('uplot/dist/uPlot.min.css'), path.join(out, 'uplot.css'));
const html = (await readFile(path.join(here, 'src', 'index.html'), 'utf8'));
await writeFile(path.join(out, 'index.html'), html);
const js = await readFile(path.join(out, 'app.js'));
await writeFile(path.join(out, 'build.json'), JSON.stringify({ builtAt: new Date().toISOString(), appSha256: createHash('sha256').update(js).digest('hex'), bytes: js.length, inputs: Object.keys(result.metafile.inputs).length }, null, 2) + '\n');
console.log(`partner-portal: built ${path.relative(process.cwd(), out)} (app.js ${(js.length / 1024).toFixed(0)} KiB)`);
