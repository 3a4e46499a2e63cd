import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import type { Aedes, Client } from "aedes";

/**
 * Hands a client's connection to Aedes so that everything the client sent is acted on, even when
 * it closed the connection right after sending it: connect, publish, disconnect, close, in one
 * write, is what a game loop with a blocking MQTT client does, and Mosquitto delivers it.
 *
 * Aedes holds the packets that follow a CONNECT until it has answered the CONNECT (a few event
 * loop turns later), and drops them if the connection ends in between. So while a CONNECT is
 * being answered, the peer's end waits: it reaches Aedes once the client is connected (its held
 * packets handled by then) or refused (Aedes then closes the connection itself). Replies Aedes
 * writes after the peer left are dropped, as Mosquitto's go unread.
 */
export function handleWholeConnection(aedes: Aedes, peer: Duplex, request?: IncomingMessage): void {
  const connection = new WholeConnection(peer);
  connection.attach(aedes.handle(connection, request));
}

class WholeConnection extends Duplex {
  private client?: Client;
  private peerGone = false;

  constructor(private readonly peer: Duplex) {
    super();
    peer.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) peer.pause();
    });
    // A reset or a failed write is the peer leaving too; Aedes learns it the same way.
    const left = () => this.peerLeft();
    peer.once("end", left).once("close", left).on("error", left);
  }

  attach(client: Client): void {
    this.client = client;
    client.once("connected", () => this.endIfSettled());
  }

  override _read(): void {
    this.peer.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.send(chunk, callback);
  }

  /** Aedes writes a packet field by field into a corked stream: one write to the peer for them all. */
  override _writev(chunks: { chunk: Buffer }[], callback: () => void): void {
    this.send(Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  override _final(callback: () => void): void {
    this.peer.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.peer.destroy();
    callback(error);
  }

  /** Hands bytes to the peer as a plain socket would take them; once the peer is gone, drops them. */
  private send(bytes: Buffer, callback: () => void): void {
    if (!this.peer.writable || this.peer.write(bytes)) return callback();
    const resume = () => {
      this.peer.off("drain", resume).off("close", resume);
      callback();
    };
    this.peer.once("drain", resume).once("close", resume);
  }

  private peerLeft(): void {
    if (this.peerGone) return;
    this.peerGone = true;
    this.endIfSettled();
  }

  /**
   * Ends Aedes's side once the peer left and no CONNECT is being answered. Aedes parses each
   * chunk as it is pushed, before the peer's next event, so a CONNECT that arrived is known here.
   */
  private endIfSettled(): void {
    if (this.peerGone && !this.client?.connecting) this.push(null);
  }
}
