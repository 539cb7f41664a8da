/** A directory served over HTTP on loopback, as a Debian mirror is (GET of files only). */

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, normalize } from 'node:path';

export interface Served {
  readonly url: string;
  /** The paths asked for, in order, and whether they were there. */
  readonly requests: { path: string; found: boolean }[];
  close(): Promise<void>;
}

export async function serveDirectory(root: string): Promise<Served> {
  const requests: { path: string; found: boolean }[] = [];
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(root, path);
    const found = file.startsWith(`${root}/`) && existsSync(file) && statSync(file).isFile();
    requests.push({ path, found });
    if (!found) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Length': statSync(file).size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
