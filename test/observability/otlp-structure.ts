/**
 * Checks a body against the OTLP/HTTP JSON encoding of ExportTraceServiceRequest
 * (opentelemetry-proto trace/v1 with the OTLP JSON rules: lowerCamelCase field names,
 * trace and span ids as hex strings, 64-bit integers as decimal strings, enums as
 * numbers). Returns every problem with its path; unknown fields are problems too.
 */
type Json = unknown;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const UINT64 = /^\d{1,20}$/;

function obj(v: Json, path: string, problems: string[], allowed: readonly string[]): Record<string, Json> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    problems.push(`${path}: expected an object`);
    return undefined;
  }
  for (const key of Object.keys(v)) if (!allowed.includes(key)) problems.push(`${path}.${key}: not a field of this message`);
  return v as Record<string, Json>;
}

function arr(v: Json, path: string, problems: string[]): Json[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.push(`${path}: expected an array`);
    return [];
  }
  return v;
}

function anyValue(v: Json, path: string, problems: string[]): void {
  const o = obj(v, path, problems, ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue']);
  if (!o) return;
  const keys = Object.keys(o);
  if (keys.length !== 1) problems.push(`${path}: AnyValue must set exactly one value, has ${keys.join(',') || 'none'}`);
  if ('stringValue' in o && typeof o.stringValue !== 'string') problems.push(`${path}.stringValue: expected a string`);
  if ('intValue' in o && !(typeof o.intValue === 'string' ? /^-?\d+$/.test(o.intValue) : Number.isInteger(o.intValue))) problems.push(`${path}.intValue: expected an int64`);
  if ('boolValue' in o && typeof o.boolValue !== 'boolean') problems.push(`${path}.boolValue: expected a boolean`);
  if ('doubleValue' in o && typeof o.doubleValue !== 'number') problems.push(`${path}.doubleValue: expected a number`);
}

function attributes(v: Json, path: string, problems: string[]): void {
  arr(v, path, problems).forEach((kv, i) => {
    const o = obj(kv, `${path}[${i}]`, problems, ['key', 'value']);
    if (!o) return;
    if (typeof o.key !== 'string' || o.key === '') problems.push(`${path}[${i}].key: expected a non-empty string`);
    anyValue(o.value, `${path}[${i}].value`, problems);
  });
}

function nanos(v: Json, path: string, problems: string[]): bigint | undefined {
  if (typeof v !== 'string' || !UINT64.test(v)) {
    problems.push(`${path}: expected a fixed64 as a decimal string`);
    return undefined;
  }
  return BigInt(v);
}

function span(v: Json, path: string, problems: string[]): void {
  const s = obj(v, path, problems, ['traceId', 'spanId', 'traceState', 'parentSpanId', 'flags', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'droppedAttributesCount', 'events', 'droppedEventsCount', 'links', 'droppedLinksCount', 'status']);
  if (!s) return;
  if (typeof s.traceId !== 'string' || !HEX32.test(s.traceId)) problems.push(`${path}.traceId: expected 32 lowercase hex digits`);
  if (typeof s.spanId !== 'string' || !HEX16.test(s.spanId)) problems.push(`${path}.spanId: expected 16 lowercase hex digits`);
  if (s.parentSpanId !== undefined && s.parentSpanId !== '' && (typeof s.parentSpanId !== 'string' || !HEX16.test(s.parentSpanId))) problems.push(`${path}.parentSpanId: expected 16 hex digits or empty`);
  if (typeof s.name !== 'string' || s.name === '') problems.push(`${path}.name: required`);
  if (s.kind !== undefined && !(Number.isInteger(s.kind) && (s.kind as number) >= 0 && (s.kind as number) <= 5)) problems.push(`${path}.kind: expected SpanKind 0..5`);
  const start = nanos(s.startTimeUnixNano, `${path}.startTimeUnixNano`, problems);
  const end = nanos(s.endTimeUnixNano, `${path}.endTimeUnixNano`, problems);
  if (start !== undefined && end !== undefined && end < start) problems.push(`${path}: ends before it starts`);
  attributes(s.attributes, `${path}.attributes`, problems);
  arr(s.events, `${path}.events`, problems).forEach((e, i) => {
    const ev = obj(e, `${path}.events[${i}]`, problems, ['timeUnixNano', 'name', 'attributes', 'droppedAttributesCount']);
    if (!ev) return;
    nanos(ev.timeUnixNano, `${path}.events[${i}].timeUnixNano`, problems);
    if (typeof ev.name !== 'string') problems.push(`${path}.events[${i}].name: expected a string`);
    attributes(ev.attributes, `${path}.events[${i}].attributes`, problems);
  });
  if (s.status !== undefined) {
    const st = obj(s.status, `${path}.status`, problems, ['code', 'message']);
    if (st && st.code !== undefined && ![0, 1, 2].includes(st.code as number)) problems.push(`${path}.status.code: expected 0, 1 or 2`);
  }
}

export function otlpTraceProblems(body: Json): string[] {
  const problems: string[] = [];
  const root = obj(body, '$', problems, ['resourceSpans']);
  if (!root) return problems;
  if (!Array.isArray(root.resourceSpans)) problems.push('$.resourceSpans: required array');
  arr(root.resourceSpans, '$.resourceSpans', problems).forEach((rs, i) => {
    const p = `$.resourceSpans[${i}]`;
    const r = obj(rs, p, problems, ['resource', 'scopeSpans', 'schemaUrl']);
    if (!r) return;
    const res = r.resource === undefined ? undefined : obj(r.resource, `${p}.resource`, problems, ['attributes', 'droppedAttributesCount']);
    if (res) attributes(res.attributes, `${p}.resource.attributes`, problems);
    arr(r.scopeSpans, `${p}.scopeSpans`, problems).forEach((ss, j) => {
      const sp = obj(ss, `${p}.scopeSpans[${j}]`, problems, ['scope', 'spans', 'schemaUrl']);
      if (!sp) return;
      if (sp.scope !== undefined) {
        const scope = obj(sp.scope, `${p}.scopeSpans[${j}].scope`, problems, ['name', 'version', 'attributes', 'droppedAttributesCount']);
        if (scope && typeof scope.name !== 'string') problems.push(`${p}.scopeSpans[${j}].scope.name: expected a string`);
      }
      arr(sp.spans, `${p}.scopeSpans[${j}].spans`, problems).forEach((s, k) => span(s, `${p}.scopeSpans[${j}].spans[${k}]`, problems));
    });
  });
  return problems;
}
