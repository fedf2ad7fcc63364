/**
 * Counts of the CA's answers to CSRs, by outcome (`issued`, or the refusal code), shown in
 * `GET /api/v1/ca` so that refused tokens and foreign-identity CSRs are visible without logs.
 */
import type { SignOutcome } from './sign-service.js';

export class SignStats {
  private readonly counts = new Map<SignOutcome, number>();

  record(outcome: SignOutcome): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }

  view(): Partial<Record<SignOutcome, number>> {
    return Object.fromEntries(this.counts);
  }
}
