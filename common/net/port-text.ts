/**
 * A port written as text (a flag, an annotation, a label): decimal only, where Number() would
 * also take "0x1F90", "8e3", " 80" or "". Undefined outside `min`-65535: 1 where a port is
 * dialled or declared, 0 for a listener's flag, where 0 means any free port.
 */
export function parsePortText(text: string, min: 0 | 1 = 1): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= min && port <= 65535 ? port : undefined;
}
