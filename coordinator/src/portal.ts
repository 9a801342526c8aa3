/**
 * Serves the partner portal (`partner-portal/dist`, built by `npm install` and
 * `npm start`) at `/`, under a strict Content-Security-Policy: scripts, styles
 * and connections only from this origin, nothing inline, no framing. The
 * portal talks to the coordinator only through `/api/v1` like any client.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response, type NextFunction } from 'express';

/** Where `npm run build -w partner-portal` writes the app. */
export const DEFAULT_PORTAL_DIR = fileURLToPath(new URL('../../partner-portal/dist/', import.meta.url));

export const PORTAL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The portal's router.
 * @param dir - the built app (`null`: the portal is off)
 * @returns middleware for `/` and the app's static files
 */
export function portalRouter(dir: string | null): express.Router {
  const router = express.Router();
  const security = (_req: Request, res: Response, next: NextFunction) => {
    res.set('content-security-policy', PORTAL_CSP);
    res.set('x-content-type-options', 'nosniff');
    res.set('referrer-policy', 'no-referrer');
    res.set('cross-origin-opener-policy', 'same-origin');
    next();
  };
  if (dir === null) return router;
  const index = path.join(dir, 'index.html');
  router.get('/', security, (_req, res) => {
    if (!existsSync(index)) {
      res.status(503).type('text/plain').send(`the partner portal is not built (no ${index}); run "npm run build -w partner-portal" in the fedmart checkout, then reload\n`);
      return;
    }
    res.set('cache-control', 'no-store');
    res.sendFile(index);
  });
  router.use(security, express.static(dir, { index: false, fallthrough: true, maxAge: 0, dotfiles: 'ignore' }));
  return router;
}
