import { describe, expect, it } from 'vitest';
import { sumBy } from './prom-text.js';

const TEXT = `# HELP skein_requests_total Requests through the sidecar
# TYPE skein_requests_total counter
skein_requests_total{direction="outbound",source="bench-client",destination="bench-upstream",destination_subset="v1",code="200"} 900
skein_requests_total{direction="outbound",source="bench-client",destination="bench-upstream",destination_subset="v1",code="503"} 3
skein_requests_total{direction="outbound",source="bench-client",destination="bench-upstream",destination_subset="v2",code="200"} 100
skein_requests_total{direction="inbound",source="bench-client",destination="bench-upstream",destination_subset="v1",code="200"} 1000
skein_requests_totally_different{direction="outbound",destination_subset="v1"} 5
`;

describe('sumBy', () => {
  it('sums matching samples grouped by a label', () => {
    expect(sumBy(TEXT, 'skein_requests_total', { direction: 'outbound' }, 'destination_subset')).toEqual(new Map([['v1', 903], ['v2', 100]]));
    expect(sumBy(TEXT, 'skein_requests_total', { direction: 'outbound', code: '200' }, 'code')).toEqual(new Map([['200', 1000]]));
  });

  it('finds nothing for an absent series', () => {
    expect(sumBy(TEXT, 'skein_retries_total', {}, 'reason').size).toBe(0);
  });
});
