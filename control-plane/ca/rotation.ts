/**
 * Root rotation (`skein ca rotate`) without a failed request: each CA step waits until every
 * sidecar of the fleet has caught up with the previous one, as the sidecars report it in
 * CertStatus (the fingerprint of the bundle they run and of the root that issued their leaf).
 *   stage   → new root in the bundle; sidecars renew and pick up the bigger bundle
 *   switch  once all run that bundle: leaves come from the new root; sidecars renew again
 *   retire  once all run a new-root leaf: the old root leaves the bundle; sidecars renew once more
 * A sidecar that reports a bundle or root other than the CA's current ones is asked to renew
 * (again every `resendMs`), in or out of a rotation: one that was away during a step comes
 * back on what it had and would otherwise keep it until its leaf is due.
 * An empty or thinned fleet is no proof that everyone caught up: right after a start the
 * sidecars have not reconnected yet, so no step is taken for `settleMs`; the fleet itself
 * keeps sidecars whose stream broke for a while (see ProxyTracker.lost). A restart
 * mid-rotation resumes from the step persisted in the data dir.
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

/** The sidecars to wait for, and a way to make them renew now (the `renew-cert` command). */
export interface Fleet {
  /** Connected sidecars, and those whose stream broke a short while ago (they may be back any moment, on the certificate they had). */
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
  /** Right after a start: no step before this time, while sidecars reconnect. */
  readonly settlingUntil: string | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

export interface RotationOptions {
  readonly pollMs?: number;
  readonly resendMs?: number;
  /** After the control plane starts, how long sidecars have to reconnect before a step may be taken (the registry grace). */
  readonly settleMs?: number;
}

const MAX_RESEND_MS = 60_000;
/** Requests to renew after which a sidecar still behind is logged. */
const STUCK_AFTER = 5;

export class RootRotation {
  private timer: NodeJS.Timeout | undefined;
  private startedAt: Date | undefined;
  private finishedAt: Date | undefined;
  /** Sidecars asked to renew and not caught up yet: when last, and how many times. */
  private asked = new Map<string, { at: number; times: number }>();
  private stepping = false;
  private readonly settledAt: number;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly fleet: Fleet,
    private readonly logger: Logger,
    private readonly options: RotationOptions = {},
  ) {
    this.settledAt = Date.now() + (options.settleMs ?? 0);
    // Also outside a rotation: sidecars that come back behind the CA are brought up to date,
    // and a rotation persisted mid-way carries on after a restart.
    this.timer = setInterval(() => void this.tick(), options.pollMs ?? 200);
    this.timer.unref();
  }

  /** Starts a rotation; refused while one is running. */
  async start(): Promise<RotationStatus> {
    await this.ca.stageNewRoot();
    this.startedAt = new Date();
    this.finishedAt = undefined;
    this.logger.info({ bundle: this.ca.bundleFingerprint }, 'root rotation: new root staged in the trust bundle');
    void this.tick();
    return this.status();
  }

  status(): RotationStatus {
    const rotating = this.ca.phase !== 'stable';
    return {
      phase: this.ca.phase,
      rotating,
      bundleFingerprint: this.ca.bundleFingerprint,
      signingRootFingerprint: this.ca.signingRootFingerprint,
      waitingFor: rotating ? this.unconfirmed(this.fleet.proxies()).map((p) => p.id) : [],
      settlingUntil: rotating && Date.now() < this.settledAt ? new Date(this.settledAt).toISOString() : null,
      startedAt: this.startedAt?.toISOString() ?? null,
      finishedAt: this.finishedAt?.toISOString() ?? null,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sidecars not (yet) known to run the current bundle and a leaf of the signing root: not reported, or behind. */
  private unconfirmed(proxies: readonly ProxyCertState[]): ProxyCertState[] {
    const bundle = this.ca.bundleFingerprint;
    const root = this.ca.signingRootFingerprint;
    return proxies.filter((p) => p.bundleFingerprint !== bundle || p.rootFingerprint !== root);
  }

  private async tick(): Promise<void> {
    if (this.stepping) return;
    this.stepping = true;
    try {
      const waiting = this.unconfirmed(this.fleet.proxies());
      this.nudge(waiting);
      if (waiting.length > 0 || this.ca.phase === 'stable' || Date.now() < this.settledAt) return;
      if (this.ca.phase === 'staged') {
        await this.ca.switchToNextRoot();
        this.logger.info({ root: this.ca.signingRootFingerprint }, 'root rotation: every sidecar trusts the new root; leaves now come from it');
      } else {
        await this.ca.retireOldRoots();
        this.logger.info({ bundle: this.ca.bundleFingerprint }, 'root rotation: every sidecar runs a new-root leaf; old root removed from the bundle');
        this.finishedAt = new Date();
      }
    } catch (err) {
      this.logger.error({ err: err instanceof CaError ? err.message : err }, 'root rotation step failed; retrying');
    } finally {
      this.stepping = false;
    }
  }

  /**
   * Asks the sidecars that reported being behind to renew, at most once per `resendMs` each.
   * Not those yet to report: each does right after its Hello, and renewing a whole fleet that
   * reconnects after a restart before it said what it runs would be a storm of CSRs.
   */
  private nudge(waiting: readonly ProxyCertState[]): void {
    const now = Date.now();
    const resend = this.options.resendMs ?? 3_000;
    const behind = new Set(waiting.filter((p) => p.bundleFingerprint !== undefined).map((p) => p.id));
    // Forgetting those that caught up (or left) also asks everyone at once after the next step.
    for (const id of this.asked.keys()) if (!behind.has(id)) this.asked.delete(id);
    const due: string[] = [];
    for (const id of behind) {
      const last = this.asked.get(id);
      // One that does not catch up (a static identity, a leaf its token can no longer renew) is
      // asked less and less often, down to once a minute, rather than every few seconds for ever.
      if (last !== undefined && now - last.at < Math.min(resend * 2 ** (last.times - 1), MAX_RESEND_MS)) continue;
      const times = (last?.times ?? 0) + 1;
      this.asked.set(id, { at: now, times });
      if (times === STUCK_AFTER) this.logger.warn({ proxy: id, times }, 'sidecar still behind the CA after repeated requests to renew; it is asked once a minute at most from now on');
      due.push(id);
    }
    if (due.length > 0) this.fleet.requestRenewal(due);
  }
}
