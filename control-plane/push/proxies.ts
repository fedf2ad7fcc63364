/**
 * What the control plane knows about each connected sidecar: who it is, which snapshot
 * version it last ACKed, the last NACK and its reason, and when it connected. `GET
 * /api/v1/proxies` shows each as SYNCED (runs the current version), NACKED (refused the
 * last version it answered) or STALE (has not answered the current version yet).
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
}

export function syncState(record: ProxyRecord, currentVersion: string): SyncState {
  const acked = record.ackedVersion === undefined ? -1 : Number(record.ackedVersion);
  const nacked = record.nackedVersion === undefined ? -1 : Number(record.nackedVersion);
  if (nacked > acked) return 'NACKED';
  return record.ackedVersion === currentVersion ? 'SYNCED' : 'STALE';
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export class ProxyTracker {
  private readonly records = new Map<string, ProxyRecord>();

  add(record: ProxyRecord): void {
    this.records.set(record.id, record);
  }

  remove(id: string): void {
    this.records.delete(id);
  }

  all(): ProxyRecord[] {
    return [...this.records.values()];
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
      }));
  }
}
