/**
 * A dispatch handler with undici's callback API (as the attempt loop implements it) that
 * records what an upstream client tells it, for the unit tests of Skein's own clients
 * (HTTP/2, the sidecar mux).
 */
export interface Recorded {
  connected: boolean;
  status: number;
  statusText: string;
  headers: string[];
  body: Buffer[];
  trailers: Record<string, string | string[]> | null;
  error: (Error & { code?: string }) | null;
  /** Settles on onComplete or onError. */
  settled: Promise<void>;
  abort: ((err?: Error) => void) | null;
  resume: (() => void) | null;
  /** How many more onData calls answer false (pause); Infinity for all of them. */
  pauses: number;
  readonly handler: object;
}

export function recordingHandler(pauses = 0): Recorded {
  let done!: () => void;
  const r: Omit<Recorded, 'handler'> = {
    connected: false,
    status: 0,
    statusText: '',
    headers: [],
    body: [],
    trailers: null,
    error: null,
    settled: new Promise<void>((resolve) => (done = resolve)),
    abort: null,
    resume: null,
    pauses,
  };
  const handler = {
    onConnect(abort: (err?: Error) => void) {
      r.connected = true;
      r.abort = abort;
    },
    onHeaders(status: number, raw: string[], resume: () => void, statusText: string) {
      Object.assign(r, { status, headers: raw, resume, statusText });
      return true;
    },
    onData(chunk: Buffer) {
      r.body.push(chunk);
      if (r.pauses <= 0) return true;
      r.pauses--;
      return false;
    },
    onComplete(trailers: Record<string, string | string[]>) {
      r.trailers = trailers;
      done();
    },
    onError(err: Error) {
      if (r.error !== null) throw new Error('onError called twice');
      r.error = err;
      done();
    },
  };
  return Object.assign(r, { handler });
}
