const LEVELS: Record<number, [string, number]> = {
  10: ['TRACE', 90],
  20: ['DEBUG', 90],
  30: ['INFO ', 32],
  40: ['WARN ', 33],
  50: ['ERROR', 31],
  60: ['FATAL', 41],
};
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service', 'instanceId', 'v']);

/** One pino JSON line as `HH:MM:SS LEVEL message key=value…`; anything else passes through untouched. */
export function formatLogLine(line: string, color: boolean): string {
  if (!line.startsWith('{')) return line;
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line);
  } catch {
    return line;
  }
  const [label, code] = LEVELS[rec.level as number] ?? ['INFO ', 32];
  const at = typeof rec.time === 'number' || typeof rec.time === 'string' ? new Date(rec.time) : undefined;
  const time = at && !Number.isNaN(at.getTime()) ? at.toISOString().slice(11, 19) : '--:--:--';
  const extra = Object.entries(rec)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const level = color ? `\x1b[${code}m${label}\x1b[0m` : label;
  return `${time} ${level} ${rec.msg ?? ''}${extra ? ` ${color ? `\x1b[2m${extra}\x1b[0m` : extra}` : ''}`;
}
