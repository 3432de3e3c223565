import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A STAND-IN FOR GOOGLE SHEETS v4 AND DRIVE v3, for tests: a local HTTP server that speaks the part of their REST
 * wire format the outputs use, with in-memory spreadsheets, so the real googleapis client (pointed at it through
 * `rootUrl`) can be exercised end to end. Served:
 *
 * - `POST /drive/v3/files` (create, a spreadsheet gets a default `Sheet1` tab; parents must be known folders),
 *   `GET /drive/v3/files?q=` (the `appProperties has {…}`, `mimeType =`, `trashed =` and `'…' in parents` terms);
 * - `GET /v4/spreadsheets/{id}`, `POST /v4/spreadsheets/{id}:batchUpdate` (addSheet, deleteSheet,
 *   updateSheetProperties with field masks, updateCells as a clear, repeatCell, autoResizeDimensions; atomic: one
 *   invalid request applies none), `PUT /v4/spreadsheets/{id}/values/{range}` (RAW or USER_ENTERED; the range
 *   must fit the grid, as `updateCells` requires).
 *
 * Errors use Google's JSON error shape. Every request is recorded; `failNext` injects faults (429 with
 * Retry-After, 5xx, 403) in front of matching requests. Missing bearer tokens get 401.
 */

export interface StandInRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** Milliseconds since the epoch when the request arrived. */
  at: number;
  /** The status the stand-in answered with. */
  status?: number;
}

export interface StandInFault {
  /** Serve the request first (its effect lands), then answer with the fault: an answer lost on the way back. */
  applied?: boolean;
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface StandInFormat {
  range: {
    sheetId?: number;
    startRowIndex?: number;
    endRowIndex?: number;
    startColumnIndex?: number;
    endColumnIndex?: number;
  };
  cell: Record<string, unknown>;
  fields: string;
}

export interface StandInTab {
  sheetId: number;
  title: string;
  rowCount: number;
  columnCount: number;
  frozenRowCount: number;
  /** Values by 0-based row index. */
  cells: Map<number, unknown[]>;
  formats: StandInFormat[];
  autoResized: boolean;
}

export interface StandInSpreadsheet {
  id: string;
  title: string;
  mimeType: string;
  parents: string[];
  appProperties: Record<string, string>;
  tabs: StandInTab[];
}

export interface SheetsStandIn {
  /** The `rootUrl` to give googleapis. */
  readonly url: string;
  readonly requests: StandInRequest[];
  readonly spreadsheets: Map<string, StandInSpreadsheet>;
  /** Drive folders that exist (ids). */
  readonly folders: Set<string>;
  /** Spreadsheet and folder ids the caller may not touch (403 PERMISSION_DENIED). */
  readonly denied: Set<string>;
  /** Cells a spreadsheet may hold; Google's limit by default. */
  maxCells: number;
  /** Answers the next `times` requests for which `match` is true with `fault` instead of serving them. */
  failNext(match: (r: StandInRequest) => boolean, fault: StandInFault, times?: number): void;
  /** A spreadsheet owned by the user (not created by a run), with the given tabs. */
  addSpreadsheet(title: string, tabs?: string[]): StandInSpreadsheet;
  /** The tab's values, row by row, up to its last written row. */
  values(spreadsheetId: string, tab: string): unknown[][];
  tab(spreadsheetId: string, tab: string): StandInTab | undefined;
  stop(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

const STATUS_NAME: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/** Google's JSON error body. */
export function googleErrorBody(code: number, message: string, extra: Record<string, unknown> = {}): unknown {
  return { error: { code, message, status: STATUS_NAME[code] ?? 'UNKNOWN', ...extra } };
}

const fail = (code: number, message: string, extra?: Record<string, unknown>) =>
  new HttpError(code, googleErrorBody(code, message, extra));

const SPREADSHEET_MIME = 'application/vnd.google-apps.spreadsheet';

function columnNumber(letters: string): number {
  let n = 0;
  for (const ch of letters) n = n * 26 + (ch.charCodeAt(0) - 64);
  return n;
}

/** `'Tab ''x'''!A1:D10` or `Tab!A1:D10` → tab title and 0-based half-open bounds. */
function parseRange(a1: string): { title: string; r0: number; r1: number; c0: number; c1: number } {
  const m = /^(?:'((?:[^']|'')+)'|([^'!]+))!([A-Z]+)(\d+):([A-Z]+)(\d+)$/.exec(a1);
  if (!m) throw fail(400, `Unable to parse range: ${a1}`);
  const title = m[1] !== undefined ? m[1].replaceAll("''", "'") : m[2]!;
  return {
    title,
    r0: Number(m[4]) - 1,
    r1: Number(m[6]),
    c0: columnNumber(m[3]!) - 1,
    c1: columnNumber(m[5]!),
  };
}

/** Expands a field mask (`title,gridProperties(rowCount,frozenRowCount)`) into dotted paths. */
export function expandFieldMask(mask: string, prefix = ''): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  const parts: string[] = [];
  for (let i = 0; i < mask.length; i++) {
    const ch = mask[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(mask.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(mask.slice(start));
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) continue;
    const open = p.indexOf('(');
    if (open >= 0 && p.endsWith(')')) {
      out.push(...expandFieldMask(p.slice(open + 1, -1), `${prefix}${p.slice(0, open)}.`));
    } else {
      out.push(`${prefix}${p}`);
    }
  }
  return out;
}

function cellCount(tabs: StandInTab[]): number {
  return tabs.reduce((n, t) => n + t.rowCount * t.columnCount, 0);
}

function newTab(sheetId: number, title: string, rowCount = 1000, columnCount = 26): StandInTab {
  return {
    sheetId,
    title,
    rowCount,
    columnCount,
    frozenRowCount: 0,
    cells: new Map(),
    formats: [],
    autoResized: false,
  };
}

function tabJson(t: StandInTab, index: number) {
  return {
    properties: {
      sheetId: t.sheetId,
      title: t.title,
      index,
      sheetType: 'GRID',
      gridProperties: {
        rowCount: t.rowCount,
        columnCount: t.columnCount,
        ...(t.frozenRowCount ? { frozenRowCount: t.frozenRowCount } : {}),
      },
    },
  };
}

export async function startSheetsStandIn(): Promise<SheetsStandIn> {
  const requests: StandInRequest[] = [];
  const spreadsheets = new Map<string, StandInSpreadsheet>();
  const folders = new Set<string>();
  const denied = new Set<string>();
  const faults: Array<{ match: (r: StandInRequest) => boolean; fault: StandInFault; times: number }> = [];
  let nextId = 1;
  const state = { maxCells: 10_000_000 };

  const spreadsheet = (id: string): StandInSpreadsheet => {
    if (denied.has(id)) throw fail(403, 'The caller does not have permission');
    const s = spreadsheets.get(id);
    if (!s) throw fail(404, 'Requested entity was not found.');
    return s;
  };

  const createSpreadsheet = (title: string, extra: Partial<StandInSpreadsheet> = {}): StandInSpreadsheet => {
    const id = `ss-${nextId++}-${Math.random().toString(36).slice(2, 10)}`;
    const s: StandInSpreadsheet = {
      id,
      title,
      mimeType: SPREADSHEET_MIME,
      parents: [],
      appProperties: {},
      tabs: [newTab(0, 'Sheet1')],
      ...extra,
    };
    spreadsheets.set(id, s);
    return s;
  };

  const driveFile = (s: StandInSpreadsheet) => ({
    kind: 'drive#file',
    id: s.id,
    name: s.title,
    mimeType: s.mimeType,
    parents: s.parents,
    appProperties: s.appProperties,
  });

  function driveCreate(body: Record<string, unknown>) {
    const parents = (body.parents as string[] | undefined) ?? [];
    for (const p of parents) {
      if (denied.has(p))
        throw fail(403, 'The user does not have sufficient permissions for this file.', {
          errors: [{ reason: 'insufficientFilePermissions', domain: 'global' }],
        });
      if (!folders.has(p)) {
        throw fail(404, `File not found: ${p}.`, {
          errors: [
            {
              domain: 'global',
              reason: 'notFound',
              message: `File not found: ${p}.`,
              location: 'fileId',
              locationType: 'parameter',
            },
          ],
        });
      }
    }
    if (body.mimeType !== SPREADSHEET_MIME) throw fail(400, 'The stand-in only creates spreadsheets');
    const s = createSpreadsheet(String(body.name ?? 'Untitled spreadsheet'), {
      parents,
      appProperties: (body.appProperties as Record<string, string>) ?? {},
    });
    return driveFile(s);
  }

  function driveList(q: string) {
    const terms = q.split(/\s+and\s+(?![^{]*})/);
    const tests: Array<(s: StandInSpreadsheet) => boolean> = [];
    for (const raw of terms) {
      const term = raw.trim();
      const prop = /^appProperties has \{ key='([^']*)' and value='((?:[^'\\]|\\.)*)' \}$/.exec(term);
      const mime = /^mimeType = '([^']*)'$/.exec(term);
      const parent = /^'((?:[^'\\]|\\.)*)' in parents$/.exec(term);
      if (prop) {
        const [k, v] = [prop[1]!, prop[2]!.replace(/\\(.)/g, '$1')];
        tests.push((s) => s.appProperties[k] === v);
      } else if (mime) {
        tests.push((s) => s.mimeType === mime[1]);
      } else if (parent) {
        const folder = parent[1]!.replace(/\\(.)/g, '$1');
        tests.push((s) => s.parents.includes(folder));
      } else if (term !== 'trashed = false') {
        // ('trashed = false' matches everything: nothing is ever trashed here.)
        throw fail(400, `Invalid Value: unsupported query term ${term}`, {
          errors: [{ reason: 'invalid', location: 'q' }],
        });
      }
    }
    return {
      kind: 'drive#fileList',
      files: [...spreadsheets.values()].filter((s) => tests.every((t) => t(s))).map(driveFile),
    };
  }

  function spreadsheetJson(s: StandInSpreadsheet) {
    return {
      spreadsheetId: s.id,
      spreadsheetUrl: `https://docs.google.com/spreadsheets/d/${s.id}/edit`,
      properties: { title: s.title },
      sheets: s.tabs.map(tabJson),
    };
  }

  function batchUpdate(s: StandInSpreadsheet, body: { requests?: Array<Record<string, Record<string, unknown>>> }) {
    const draft = s.tabs.map((t) => ({ ...t, formats: [...t.formats] }));
    const replies: unknown[] = [];
    const find = (sheetId: unknown, at: string) => {
      const t = draft.find((x) => x.sheetId === sheetId);
      if (!t) throw fail(400, `Invalid ${at}: No grid with id: ${String(sheetId)}`);
      return t;
    };
    (body.requests ?? []).forEach((req, i) => {
      const [kind, r] = Object.entries(req)[0] ?? [];
      const at = `requests[${i}].${kind}`;
      switch (kind) {
        case 'addSheet': {
          const p = (r!.properties ?? {}) as {
            sheetId?: number;
            title?: string;
            gridProperties?: Record<string, number>;
          };
          const title = p.title ?? `Sheet${draft.length + 1}`;
          if (draft.some((t) => t.title.toLowerCase() === title.toLowerCase())) {
            throw fail(
              400,
              `Invalid ${at}: A sheet with the name "${title}" already exists. Please enter another name.`,
            );
          }
          const sheetId = p.sheetId ?? Math.floor(Math.random() * 2 ** 31);
          if (draft.some((t) => t.sheetId === sheetId))
            throw fail(400, `Invalid ${at}: Sheet with id ${sheetId} already exists`);
          const t = newTab(sheetId, title, p.gridProperties?.rowCount, p.gridProperties?.columnCount);
          t.frozenRowCount = p.gridProperties?.frozenRowCount ?? 0;
          draft.push(t);
          replies.push({ addSheet: tabJson(t, draft.length - 1) });
          break;
        }
        case 'deleteSheet': {
          const t = find(r!.sheetId, at);
          if (draft.length === 1) throw fail(400, `Invalid ${at}: You can't remove all the sheets in a document.`);
          draft.splice(draft.indexOf(t), 1);
          replies.push({});
          break;
        }
        case 'updateSheetProperties': {
          const p = r!.properties as { sheetId: number; title?: string; gridProperties?: Record<string, number> };
          const t = find(p.sheetId, at);
          for (const path of expandFieldMask(String(r!.fields ?? ''))) {
            if (path === 'title') {
              const title = p.title ?? '';
              if (draft.some((x) => x !== t && x.title.toLowerCase() === title.toLowerCase())) {
                throw fail(
                  400,
                  `Invalid ${at}: A sheet with the name "${title}" already exists. Please enter another name.`,
                );
              }
              t.title = title;
            } else if (path === 'gridProperties.rowCount') {
              t.rowCount = p.gridProperties?.rowCount ?? 0;
            } else if (path === 'gridProperties.columnCount') {
              t.columnCount = p.gridProperties?.columnCount ?? 0;
            } else if (path === 'gridProperties.frozenRowCount') {
              t.frozenRowCount = p.gridProperties?.frozenRowCount ?? 0;
            } else {
              throw fail(400, `Invalid ${at}: the stand-in does not support field ${path}`);
            }
          }
          if (t.rowCount < 1 || t.columnCount < 1)
            throw fail(400, `Invalid ${at}: a sheet needs at least one row and column`);
          if (t.frozenRowCount >= t.rowCount)
            throw fail(400, `Invalid ${at}: You can't freeze all visible rows on the sheet.`);
          if (t.cells.size > 0 && [...t.cells.keys()].some((k) => k >= t.rowCount)) {
            t.cells = new Map([...t.cells].filter(([k]) => k < t.rowCount));
          }
          replies.push({});
          break;
        }
        case 'updateCells': {
          const range = r!.range as StandInFormat['range'];
          const t = find(range.sheetId, at);
          if (r!.rows) throw fail(400, `Invalid ${at}: the stand-in only clears with updateCells`);
          const fields = String(r!.fields ?? '');
          if (range.startRowIndex !== undefined || range.endRowIndex !== undefined) {
            throw fail(400, `Invalid ${at}: the stand-in only clears whole tabs`);
          }
          if (fields === '*' || fields.includes('userEnteredValue')) t.cells = new Map();
          if (fields === '*' || fields.includes('userEnteredFormat')) t.formats = [];
          replies.push({});
          break;
        }
        case 'repeatCell': {
          const range = r!.range as StandInFormat['range'];
          const t = find(range.sheetId, at);
          if ((range.endRowIndex ?? 0) > t.rowCount || (range.endColumnIndex ?? 0) > t.columnCount) {
            throw fail(
              400,
              `Invalid ${at}: Range exceeds grid limits. Max rows: ${t.rowCount}, max columns: ${t.columnCount}`,
            );
          }
          t.formats.push({ range, cell: r!.cell as Record<string, unknown>, fields: String(r!.fields ?? '') });
          replies.push({});
          break;
        }
        case 'autoResizeDimensions': {
          const d = r!.dimensions as { sheetId: number };
          find(d.sheetId, at).autoResized = true;
          replies.push({});
          break;
        }
        default:
          throw fail(
            400,
            `Invalid JSON payload received. Unknown name "${kind}" at 'requests[${i}]': Cannot find field.`,
          );
      }
    });
    if (cellCount(draft) > state.maxCells) {
      throw fail(
        400,
        `Invalid requests[0]: This action would increase the number of cells in the workbook above the limit of ${state.maxCells} cells.`,
      );
    }
    s.tabs = draft;
    return { spreadsheetId: s.id, replies };
  }

  function valuesUpdate(
    s: StandInSpreadsheet,
    pathRange: string,
    query: URLSearchParams,
    body: Record<string, unknown>,
  ) {
    const option = query.get('valueInputOption');
    if (option !== 'RAW' && option !== 'USER_ENTERED') throw fail(400, "Invalid valueInputOption: ''");
    if (body.range !== undefined && body.range !== pathRange) {
      throw fail(400, `Requested writing within range [${pathRange}], but tried writing to [${String(body.range)}]`);
    }
    const { title, r0, r1, c0, c1 } = parseRange(pathRange);
    const t = s.tabs.find((x) => x.title === title);
    if (!t) throw fail(400, `Unable to parse range: ${pathRange}`);
    if (r1 > t.rowCount || c1 > t.columnCount) {
      throw fail(
        400,
        `Range (${pathRange}) exceeds grid limits. Max rows: ${t.rowCount}, max columns: ${t.columnCount}`,
      );
    }
    const values = (body.values as unknown[][]) ?? [];
    if (values.length > r1 - r0 || values.some((row) => row.length > c1 - c0)) {
      throw fail(400, `Requested writing within range [${pathRange}], but tried writing ${values.length} rows`);
    }
    values.forEach((row, i) => {
      const line = t.cells.get(r0 + i) ?? [];
      row.forEach((v, j) => {
        line[c0 + j] = v;
      });
      t.cells.set(r0 + i, line);
    });
    const width = values.reduce((w, r) => Math.max(w, r.length), 0);
    return {
      spreadsheetId: s.id,
      updatedRange: pathRange,
      updatedRows: values.length,
      updatedColumns: width,
      updatedCells: values.reduce((n, r) => n + r.length, 0),
    };
  }

  function route(req: StandInRequest): unknown {
    const auth = req.headers.authorization;
    if (!auth || !/^Bearer \S+$/.test(auth)) {
      throw fail(401, 'Request is missing required authentication credential. Expected OAuth 2 access token.');
    }
    const json = () => (req.body ? (JSON.parse(req.body) as Record<string, unknown>) : {});
    if (req.path === '/drive/v3/files' && req.method === 'POST') return driveCreate(json());
    if (req.path === '/drive/v3/files' && req.method === 'GET') return driveList(req.query.get('q') ?? '');
    let m = /^\/v4\/spreadsheets\/([^/:]+):batchUpdate$/.exec(req.path);
    if (m && req.method === 'POST') return batchUpdate(spreadsheet(decodeURIComponent(m[1]!)), json());
    m = /^\/v4\/spreadsheets\/([^/:]+)\/values\/([^/:]+(?::[^/]+)?)$/.exec(req.path);
    if (m && req.method === 'PUT') {
      return valuesUpdate(spreadsheet(decodeURIComponent(m[1]!)), decodeURIComponent(m[2]!), req.query, json());
    }
    m = /^\/v4\/spreadsheets\/([^/:]+)$/.exec(req.path);
    if (m && req.method === 'GET') return spreadsheetJson(spreadsheet(decodeURIComponent(m[1]!)));
    throw fail(404, `The stand-in does not serve ${req.method} ${req.path}`);
  }

  const server = createServer(async (incoming, res: ServerResponse) => {
    const parts: Buffer[] = [];
    for await (const c of incoming as AsyncIterable<Buffer>) parts.push(c);
    const url = new URL(incoming.url ?? '/', 'http://stand-in');
    const req: StandInRequest = {
      method: incoming.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: incoming.headers,
      body: Buffer.concat(parts).toString(),
      at: Date.now(),
    };
    requests.push(req);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      req.status = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
      res.end(JSON.stringify(body));
    };
    const fault = faults.find((f) => f.times > 0 && f.match(req));
    if (fault) {
      fault.times -= 1;
      if (fault.fault.applied) {
        try {
          route(req);
        } catch {}
      }
      send(
        fault.fault.status,
        fault.fault.body ?? googleErrorBody(fault.fault.status, 'Injected fault'),
        fault.fault.headers,
      );
      return;
    }
    try {
      send(200, route(req));
    } catch (err) {
      if (err instanceof HttpError) send(err.status, err.body);
      else send(500, googleErrorBody(500, `stand-in bug: ${(err as Error).message}`));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  return {
    url,
    requests,
    spreadsheets,
    folders,
    denied,
    get maxCells() {
      return state.maxCells;
    },
    set maxCells(n: number) {
      state.maxCells = n;
    },
    failNext(match, fault, times = 1) {
      faults.push({ match, fault, times });
    },
    addSpreadsheet(title, tabs = ['Sheet1']) {
      const s = createSpreadsheet(title);
      s.tabs = tabs.map((t, i) => newTab(i, t));
      return s;
    },
    tab(spreadsheetId, title) {
      return spreadsheets.get(spreadsheetId)?.tabs.find((t) => t.title === title);
    },
    values(spreadsheetId, title) {
      const t = spreadsheets.get(spreadsheetId)?.tabs.find((x) => x.title === title);
      if (!t) return [];
      let last = -1;
      for (const k of t.cells.keys()) if (k > last) last = k;
      return Array.from({ length: last + 1 }, (_, i) => t.cells.get(i) ?? []);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
