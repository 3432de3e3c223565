/**
 * The subset of the Google Ads Query Language the demo platform understands:
 * `SELECT f, ... FROM resource [WHERE cond AND ...] [ORDER BY ...] [LIMIT n] [PARAMETERS ...]`, with conditions
 * `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN (...)`, `NOT IN (...)`, `LIKE`, `BETWEEN a AND b` and
 * `DURING LAST_7_DAYS | LAST_14_DAYS | LAST_30_DAYS | YESTERDAY | TODAY | THIS_MONTH | LAST_MONTH`.
 * ORDER BY is accepted and ignored: rows stream in generation order, so a million rows never need sorting.
 */

export type Literal = string | number | boolean;

export type Condition =
  | { field: string; op: '=' | '!=' | '<' | '<=' | '>' | '>=' | 'LIKE'; value: Literal }
  | { field: string; op: 'IN' | 'NOT IN'; values: Literal[] }
  | { field: string; op: 'BETWEEN'; low: Literal; high: Literal }
  | { field: string; op: 'DURING'; range: string };

export interface GaqlQuery {
  select: string[];
  from: string;
  where: Condition[];
  limit: number | null;
}

export class GaqlError extends Error {
  override name = 'GaqlError';
  /** The Google Ads QueryError enum value this maps to. */
  readonly queryError: string;
  constructor(message: string, queryError = 'UNEXPECTED_INPUT') {
    super(message);
    this.queryError = queryError;
  }
}

type Token = { kind: 'word' | 'string' | 'number' | 'punct'; text: string };

function tokenize(q: string): Token[] {
  const out: Token[] = [];
  const re = /\s*(?:('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|([A-Za-z_][\w.]*)|(!=|<=|>=|[=<>(),]))/gy;
  let pos = 0;
  while (pos < q.length) {
    if (/^\s*$/.test(q.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(q);
    if (!m) throw new GaqlError(`unexpected input at position ${pos}: ${JSON.stringify(q.slice(pos, pos + 20))}`);
    pos = re.lastIndex;
    if (m[1] !== undefined) out.push({ kind: 'string', text: m[1].slice(1, -1).replace(/\\(.)/g, '$1') });
    else if (m[2] !== undefined) out.push({ kind: 'number', text: m[2] });
    else if (m[3] !== undefined) out.push({ kind: 'word', text: m[3] });
    else out.push({ kind: 'punct', text: m[4]! });
  }
  return out;
}

export function parseGaql(query: string): GaqlQuery {
  const t = tokenize(query);
  let i = 0;
  const peek = (): Token | undefined => t[i];
  const isWord = (w: string): boolean => peek()?.kind === 'word' && peek()!.text.toUpperCase() === w;
  const expectWord = (w: string): void => {
    if (!isWord(w))
      throw new GaqlError(
        `expected ${w}${peek() ? ` but found ${JSON.stringify(peek()!.text)}` : ' but the query ended'}`,
      );
    i++;
  };
  const field = (): string => {
    const tok = t[i++];
    if (tok?.kind !== 'word' || !tok.text.includes('.')) {
      throw new GaqlError(
        `expected a field name like resource.field, found ${JSON.stringify(tok?.text ?? 'end of query')}`,
      );
    }
    return tok.text;
  };
  const literal = (): Literal => {
    const tok = t[i++];
    if (!tok) throw new GaqlError('expected a value but the query ended');
    if (tok.kind === 'string') return tok.text;
    if (tok.kind === 'number') return Number(tok.text);
    if (tok.kind === 'word' && /^(TRUE|FALSE)$/i.test(tok.text)) return tok.text.toUpperCase() === 'TRUE';
    if (tok.kind === 'word') return tok.text; // enum literal without quotes
    throw new GaqlError(`expected a value, found ${JSON.stringify(tok.text)}`);
  };

  expectWord('SELECT');
  const select = [field()];
  while (peek()?.text === ',') {
    i++;
    select.push(field());
  }
  expectWord('FROM');
  const fromTok = t[i++];
  if (fromTok?.kind !== 'word' || fromTok.text.includes('.'))
    throw new GaqlError('expected a resource name after FROM');
  const where: Condition[] = [];
  if (isWord('WHERE')) {
    i++;
    for (;;) {
      const f = field();
      const opTok = t[i++];
      if (!opTok) throw new GaqlError(`expected an operator after ${f}`);
      const op = opTok.text.toUpperCase();
      if (op === 'IN' || (op === 'NOT' && isWord('IN'))) {
        if (op === 'NOT') i++;
        if (peek()?.text !== '(') throw new GaqlError('expected ( after IN');
        i++;
        const values = [literal()];
        while (peek()?.text === ',') {
          i++;
          values.push(literal());
        }
        if (t[i++]?.text !== ')') throw new GaqlError('expected ) to close IN (...)');
        where.push({ field: f, op: op === 'NOT' ? 'NOT IN' : 'IN', values });
      } else if (op === 'BETWEEN') {
        const low = literal();
        expectWord('AND');
        where.push({ field: f, op: 'BETWEEN', low, high: literal() });
      } else if (op === 'DURING') {
        const r = t[i++];
        if (r?.kind !== 'word') throw new GaqlError('expected a date range after DURING');
        where.push({ field: f, op: 'DURING', range: r.text.toUpperCase() });
      } else if (['=', '!=', '<', '<=', '>', '>=', 'LIKE'].includes(op)) {
        where.push({ field: f, op: op as '=', value: literal() });
      } else {
        throw new GaqlError(`unsupported operator ${JSON.stringify(opTok.text)}`, 'BAD_OPERATOR');
      }
      if (isWord('AND')) i++;
      else break;
    }
  }
  if (isWord('ORDER')) {
    i++;
    expectWord('BY');
    field();
    if (isWord('ASC') || isWord('DESC')) i++;
    while (peek()?.text === ',') {
      i++;
      field();
      if (isWord('ASC') || isWord('DESC')) i++;
    }
  }
  let limit: number | null = null;
  if (isWord('LIMIT')) {
    i++;
    const n = t[i++];
    if (n?.kind !== 'number' || !/^\d+$/.test(n.text))
      throw new GaqlError('LIMIT needs a whole number', 'LIMIT_VALUE_INVALID');
    limit = Number(n.text);
  }
  if (isWord('PARAMETERS')) i = t.length;
  if (i < t.length) throw new GaqlError(`unexpected ${JSON.stringify(t[i]!.text)} at the end of the query`);
  return { select, from: fromTok.text, where, limit };
}

/** Turns a DURING range into inclusive day numbers, relative to `today` (days since the epoch). */
export function duringRange(range: string, today: number): [number, number] {
  const d = new Date(today * 86_400_000);
  const monthStart = Math.floor(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 86_400_000);
  const lastMonthStart = Math.floor(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1) / 86_400_000);
  switch (range) {
    case 'TODAY':
      return [today, today];
    case 'YESTERDAY':
      return [today - 1, today - 1];
    case 'LAST_7_DAYS':
      return [today - 7, today - 1];
    case 'LAST_14_DAYS':
      return [today - 14, today - 1];
    case 'LAST_30_DAYS':
      return [today - 30, today - 1];
    case 'THIS_MONTH':
      return [monthStart, today];
    case 'LAST_MONTH':
      return [lastMonthStart, monthStart - 1];
    default:
      throw new GaqlError(`unsupported DURING range ${range}`, 'INVALID_VALUE_WITH_DURING_OPERATOR');
  }
}

export function camelCase(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
