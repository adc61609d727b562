// A free TCP port on 127.0.0.1, for the demo, the tests and the experiments, which all start servers
// of their own on loopback.
import { createServer } from 'node:net';

/** A port that was free a moment ago (listen(0) probe); callers retry if someone takes it first. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}
