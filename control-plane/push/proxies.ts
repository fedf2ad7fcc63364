/**
 * What the control plane knows about each connected sidecar: who it is, which snapshot
 * version it last ACKed, the last NACK and its reason, and when it connected. `GET
 * /api/v1/proxies` shows each as SYNCED (runs the current version), NACKED (refused the
 * last version it answered) or STALE (has not answered the current version yet).
 * A sidecar whose stream broke (no goodbye) is also remembered for a grace period, as the
 * built-in registry keeps its instance: it may be back any moment, on the certificate it
 * had, and a root rotation must not step past it meanwhile (ca/rotation.ts).
 */
export type SyncState = 'SYNCED' | 'STALE' | 'NACKED';

export interface ProxyRecord {
  readonly id: string;
  readonly service: string;
  readonly instanceId: string;
  readonly version: string;
  readonly address: string;
  readonly inboundPort: number;
  readonly adminPort: number;
  readonly connectedAt: number;
  sentVersion?: string;
  ackedVersion?: string;
  ackedAt?: number;
  nackedVersion?: string;
  nackReason?: string;
  nackedAt?: number;
  certExpiry?: number;
  /** From CertStatus: the trust bundle it runs and the root of its leaf (root rotation paces on these). */
  bundleFingerprint?: string;
  rootFingerprint?: string;
  /** From CertStatus: its leaf's SPIFFE ID. */
  spiffeId?: string;
  /** What the snapshot last sent to it was sent without, as it predates those features (see snapshot-features.ts). */
  runsWithout?: readonly string[];
}

export interface ProxyView {
  id: string;
  service: string;
  instance: string;
  version: string;
  address: string;
  state: SyncState;
  ackedVersion: string | null;
  ackedAt: string | null;
  nackedVersion: string | null;
  nackReason: string | null;
  connectedAt: string;
  certExpiry: string | null;
  /**
   * Its leaf's SPIFFE ID, e.g. `spiffe://skein.local/service/orders`: which trust domain it is in
   * while the mesh moves to another. Null without a certificate, or one without a SPIFFE ID, and
   * until it has reported (a sidecar older than this field never does).
   */
  spiffeId: string | null;
  /** Fingerprint of the root that issued its leaf, as `GET /api/v1/ca` lists roots: which side of a rotation it is on. */
  certRootFingerprint: string | null;
  /** Fingerprint of the trust bundle it runs (`bundleFingerprint` of `GET /api/v1/ca`). */
  trustBundleFingerprint: string | null;
  /**
   * What it runs without, the snapshot it was last sent lacking features of the config it does
   * not understand (a sidecar older than them), e.g. `orders: not rate limited by this
   * instance`: which sidecars to upgrade. Empty for one that understands all the config uses.
   */
  runsWithout: readonly string[];
}

export function syncState(record: ProxyRecord, currentVersion: string): SyncState {
  const acked = record.ackedVersion === undefined ? -1 : Number(record.ackedVersion);
  const nacked = record.nackedVersion === undefined ? -1 : Number(record.nackedVersion);
  if (nacked > acked) return 'NACKED';
  return record.ackedVersion === currentVersion ? 'SYNCED' : 'STALE';
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

const instanceKey = (r: ProxyRecord) => `${r.service}/${r.instanceId}`;

export class ProxyTracker {
  private readonly records = new Map<string, ProxyRecord>();
  /** Sidecars whose stream broke, by instance, with when: see `lost()`. */
  private readonly broken = new Map<string, { record: ProxyRecord; at: number }>();

  /** `lostGraceMs`: how long a sidecar whose stream broke counts as `lost()` (the registry grace). */
  constructor(
    private readonly lostGraceMs = 0,
    private readonly now: () => number = Date.now,
  ) {}

  add(record: ProxyRecord): void {
    this.records.set(record.id, record);
    this.broken.delete(instanceKey(record));
  }

  /** `clean`: the sidecar said goodbye (it shut down); otherwise its stream broke. */
  remove(id: string, clean = true): void {
    const record = this.records.get(id);
    this.records.delete(id);
    if (!record || clean || this.lostGraceMs <= 0) return;
    // A reconnect may have overlapped the stream that broke: then nothing is lost.
    const key = instanceKey(record);
    if (this.all().some((r) => instanceKey(r) === key)) return;
    this.broken.set(key, { record, at: this.now() });
  }

  all(): ProxyRecord[] {
    return [...this.records.values()];
  }

  /** Sidecars whose stream broke less than the grace period ago and that have not reconnected, as they last reported. */
  lost(): ProxyRecord[] {
    const since = this.now() - this.lostGraceMs;
    for (const [key, { at }] of this.broken) if (at <= since) this.broken.delete(key);
    return [...this.broken.values()].map((b) => b.record);
  }

  ack(id: string, version: string, at: number): void {
    const record = this.records.get(id);
    if (!record) return;
    record.ackedVersion = version;
    record.ackedAt = at;
  }

  nack(id: string, version: string, reason: string, at: number): void {
    const record = this.records.get(id);
    if (!record) return;
    record.nackedVersion = version;
    record.nackReason = reason;
    record.nackedAt = at;
  }

  view(currentVersion: string): ProxyView[] {
    return this.all()
      .sort((a, b) => (a.service + a.instanceId < b.service + b.instanceId ? -1 : 1))
      .map((r) => ({
        id: r.id,
        service: r.service,
        instance: r.instanceId,
        version: r.version,
        address: `${r.address}:${r.inboundPort}`,
        state: syncState(r, currentVersion),
        ackedVersion: r.ackedVersion ?? null,
        ackedAt: iso(r.ackedAt),
        nackedVersion: r.nackedVersion ?? null,
        nackReason: r.nackReason ?? null,
        connectedAt: new Date(r.connectedAt).toISOString(),
        certExpiry: iso(r.certExpiry),
        spiffeId: r.spiffeId ?? null,
        certRootFingerprint: r.rootFingerprint ?? null,
        trustBundleFingerprint: r.bundleFingerprint ?? null,
        runsWithout: r.runsWithout ?? [],
      }));
  }
}
