import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What the server saw: the path and the Range header of each request. */
export interface SeenRequest {
  path: string;
  range: string | undefined;
}

export interface ModelFileServerOptions {
  /** Cut the connection of the first full-file response after this many body bytes. */
  cutFirstAt?: number;
  /** Send this many body bytes of the first full-file response, then nothing more. */
  holdFirstAt?: number;
  /** Answer Range requests with the whole file (200), like a server without range support. */
  ignoreRange?: boolean;
  /** Answer every request with this status and no body. */
  status?: number;
}

export interface ModelFileServer {
  /** Base URL, to be used as the Hugging Face endpoint. */
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A local stand-in for Hugging Face: serves `body` at every path, honours `Range: bytes=N-` with
 * 206, and can drop the first connection mid-body to exercise resuming.
 */
export async function startModelFileServer(
  body: Buffer,
  options: ModelFileServerOptions = {},
): Promise<ModelFileServer> {
  const requests: SeenRequest[] = [];
  let firstDone = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const range = req.headers.range;
    requests.push({ path: req.url ?? "", range });
    if (options.status) {
      res.writeHead(options.status).end();
      return;
    }
    const start = Number(/^bytes=(\d+)-$/.exec(range ?? "")?.[1] ?? 0);
    if (start > 0 && !options.ignoreRange) {
      if (start >= body.length) {
        res.writeHead(416, { "Content-Range": `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, {
        "Content-Length": body.length - start,
        "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}`,
      });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { "Content-Length": body.length, "Accept-Ranges": "bytes" });
    const firstAt = options.cutFirstAt ?? options.holdFirstAt;
    if (firstAt !== undefined && !firstDone) {
      firstDone = true;
      res.write(body.subarray(0, firstAt), () => {
        if (options.cutFirstAt !== undefined) res.destroy();
      });
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
