/**
 * Where a sidecar's snapshots come from: a static file (static mode) or the control plane's
 * push stream. A source decodes what it receives and hands it to `apply`, which validates and
 * installs it; `apply` throws a ConfigError for a snapshot it refuses, and the source reports
 * that (the control-plane source as a NACK carrying the error's message). The sidecar keeps
 * serving its last good snapshot whatever a source does.
 */
export interface ConfigSource {
  /**
   * Begins delivering snapshots; resolves once started (not necessarily once one arrived).
   * `refused` is told of an update refused before anything reached `apply` (a config file that
   * disappeared or cannot be read, a pushed snapshot that is not JSON), once per such event, so it
   * is counted as a NACK too.
   */
  start(apply: (raw: unknown) => void, refused: (reason: string) => void): Promise<void>;
  /** True once a snapshot has been applied, for `/ready`. */
  readonly hasSnapshot: boolean;
  /** A human-readable state for `/ready` and logs, e.g. "waiting for control plane at 127.0.0.1:15012". */
  readonly status: string;
  /**
   * Whether an operator wrote what it delivers (a static file), so `apply` also refuses what a
   * write to the control plane is refused for (parseAuthoredSnapshot). A pushed snapshot is
   * not: the control plane publishes what its store holds, written by older versions too.
   */
  readonly authored: boolean;
  close(): Promise<void>;
}
