import { Readable } from 'node:stream';
import type pg from 'pg';

/** COPY … TO STDOUT on a driver connection, as a Readable with backpressure on the socket. */
export class CopyOut extends Readable implements pg.Submittable {
  private connection: pg.Connection | undefined;
  private paused = false;

  constructor(private readonly text: string) {
    super({ highWaterMark: 1024 * 1024 });
  }

  submit(connection: pg.Connection): void {
    this.connection = connection;
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (!this.push(msg.chunk) && this.connection) {
      this.paused = true;
      this.connection.stream.pause();
    }
  }

  override _read(): void {
    if (this.paused && this.connection) {
      this.paused = false;
      this.connection.stream.resume();
    }
  }

  handleReadyForQuery(): void {
    this.resumeSocket();
    this.push(null);
  }

  handleError(err: Error): void {
    this.resumeSocket();
    this.destroy(err);
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: pg.Connection & { sendCopyFail?: (msg: string) => void }): void {
    connection.sendCopyFail?.('dbbackup does not send COPY data');
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // A reader that stops early must not leave the connection's socket paused.
    this.resumeSocket();
    callback(err);
  }

  private resumeSocket(): void {
    if (this.paused && this.connection) {
      this.paused = false;
      this.connection.stream.resume();
    }
  }
}
