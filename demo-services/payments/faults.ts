/**
 * The payment provider's misbehaviour knobs, set at runtime through `PUT /admin/faults` so a
 * demo scenario can make payments slow or flaky and watch the mesh and the saga cope.
 */
import { z } from 'zod';

export const FaultsBody = z
  .object({
    latencyMs: z.number().int().min(0).max(60_000).optional(),
    errorRate: z.number().min(0).max(1).optional(),
  })
  .strict();

export interface Faults {
  latencyMs: number;
  errorRate: number;
}

export class FaultKnobs {
  private current: Faults;

  constructor(initial: Faults, private readonly random: () => number = Math.random) {
    this.current = { ...initial };
  }

  get(): Faults {
    return { ...this.current };
  }

  set(change: z.infer<typeof FaultsBody>): Faults {
    this.current = { ...this.current, ...change };
    return this.get();
  }

  /** Waits the injected latency, then says whether this call should fail. */
  async apply(): Promise<boolean> {
    const { latencyMs, errorRate } = this.current;
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    return errorRate > 0 && this.random() < errorRate;
  }
}
