/**
 * Root rotation (`skein ca rotate`) without a failed request: each CA step waits until every
 * connected sidecar has caught up with the previous one, as the sidecars report it in
 * CertStatus (the fingerprint of the bundle they run and of the root that issued their leaf).
 *   stage   → new root in the bundle; sidecars renew and pick up the bigger bundle
 *   switch  once all run that bundle: leaves come from the new root; sidecars renew again
 *   retire  once all run a new-root leaf: the old root leaves the bundle; sidecars renew once more
 * Sidecars that lag are asked to renew again every `resendMs`. A restart mid-rotation
 * resumes from the step persisted in the data dir.
 */
import type { Logger } from '../../common/log.js';
import type { CertificateAuthority, RotationPhase } from './authority.js';
import { CaError } from './errors.js';

/** What the rotation needs to know about one connected sidecar. */
export interface ProxyCertState {
  readonly id: string;
  readonly bundleFingerprint?: string;
  readonly rootFingerprint?: string;
}

/** The connected sidecars, and a way to make them renew now (the `renew-cert` command). */
export interface Fleet {
  proxies(): readonly ProxyCertState[];
  requestRenewal(ids: readonly string[]): void;
}

export interface RotationStatus {
  readonly phase: RotationPhase;
  readonly rotating: boolean;
  readonly bundleFingerprint: string;
  readonly signingRootFingerprint: string;
  /** Sidecars the next step waits for. */
  readonly waitingFor: readonly string[];
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

export interface RotationOptions {
  readonly pollMs?: number;
  readonly resendMs?: number;
}

export class RootRotation {
  private timer: NodeJS.Timeout | undefined;
  private startedAt: Date | undefined;
  private finishedAt: Date | undefined;
  private lastAsked = new Map<string, number>();
  private stepping = false;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly fleet: Fleet,
    private readonly logger: Logger,
    private readonly options: RotationOptions = {},
  ) {
    // A rotation persisted mid-way carries on after a restart.
    if (ca.phase !== 'stable') this.run();
  }

  /** Starts a rotation; refused while one is running. */
  async start(): Promise<RotationStatus> {
    await this.ca.stageNewRoot();
    this.startedAt = new Date();
    this.finishedAt = undefined;
    this.lastAsked.clear();
    this.logger.info({ bundle: this.ca.bundleFingerprint }, 'root rotation: new root staged in the trust bundle');
    this.run();
    return this.status();
  }

  status(): RotationStatus {
    return {
      phase: this.ca.phase,
      rotating: this.ca.phase !== 'stable',
      bundleFingerprint: this.ca.bundleFingerprint,
      signingRootFingerprint: this.ca.signingRootFingerprint,
      waitingFor: this.ca.phase === 'stable' ? [] : this.laggards(),
      startedAt: this.startedAt?.toISOString() ?? null,
      finishedAt: this.finishedAt?.toISOString() ?? null,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.options.pollMs ?? 200);
    this.timer.unref();
    void this.tick();
  }

  /** Sidecars not yet where the current phase needs them before the next step. */
  private laggards(): string[] {
    const bundle = this.ca.bundleFingerprint;
    const root = this.ca.signingRootFingerprint;
    return this.fleet
      .proxies()
      .filter((p) => p.bundleFingerprint !== bundle || (this.ca.phase === 'switched' && p.rootFingerprint !== root))
      .map((p) => p.id);
  }

  private async tick(): Promise<void> {
    if (this.stepping) return;
    this.stepping = true;
    try {
      const waiting = this.laggards();
      if (waiting.length > 0) {
        this.nudge(waiting);
        return;
      }
      if (this.ca.phase === 'staged') {
        await this.ca.switchToNextRoot();
        this.logger.info({ root: this.ca.signingRootFingerprint }, 'root rotation: every sidecar trusts the new root; leaves now come from it');
        this.lastAsked.clear();
      } else if (this.ca.phase === 'switched') {
        await this.ca.retireOldRoots();
        this.logger.info({ bundle: this.ca.bundleFingerprint }, 'root rotation: every sidecar runs a new-root leaf; old root removed from the bundle');
        this.lastAsked.clear();
        this.nudge(this.fleet.proxies().map((p) => p.id));
        this.finishedAt = new Date();
        this.close();
      }
    } catch (err) {
      this.logger.error({ err: err instanceof CaError ? err.message : err }, 'root rotation step failed; retrying');
    } finally {
      this.stepping = false;
    }
  }

  /** Asks lagging sidecars to renew, at most once per `resendMs` each. */
  private nudge(ids: readonly string[]): void {
    const now = Date.now();
    const resend = this.options.resendMs ?? 3_000;
    const due = ids.filter((id) => now - (this.lastAsked.get(id) ?? 0) >= resend);
    for (const id of due) this.lastAsked.set(id, now);
    if (due.length > 0) this.fleet.requestRenewal(due);
  }
}
