import type { OutputColumnType } from './types.ts';

/**
 * Number formats per column type, in the pattern language Excel and Google Sheets share. Money shows the currency
 * symbol in a `[$…]` block (portable between both, unlike locale-bound `$`) and the currency's minor digits (JPY 0,
 * KWD 3); without a currency it is a plain 2-decimal number.
 */

export interface CurrencyStyle {
  symbol: string;
  digits: number;
}

const currencyCache = new Map<string, CurrencyStyle>();

export function currencyStyle(code: string): CurrencyStyle {
  let style = currencyCache.get(code);
  if (!style) {
    const fmt = new Intl.NumberFormat('en', { style: 'currency', currency: code });
    const symbol = fmt.formatToParts(1).find((p) => p.type === 'currency')?.value ?? code;
    style = { symbol, digits: fmt.resolvedOptions().maximumFractionDigits ?? 2 };
    currencyCache.set(code, style);
  }
  return style;
}

function decimals(n: number): string {
  return n > 0 ? `.${'0'.repeat(n)}` : '';
}

export type SheetsNumberFormatType = 'NUMBER' | 'CURRENCY' | 'PERCENT' | 'DATE';

export interface ColumnFormat {
  /** The pattern (Excel `numFmt`, Sheets `numberFormat.pattern`). */
  pattern: string;
  /** Google Sheets' `numberFormat.type`. */
  sheetsType: SheetsNumberFormatType;
}

/** The column's number format, or undefined for text-like columns. */
export function columnFormat(type: OutputColumnType, currency: string | undefined): ColumnFormat | undefined {
  switch (type) {
    case 'integer':
      return { pattern: '#,##0', sheetsType: 'NUMBER' };
    case 'number':
      return { pattern: '#,##0.00', sheetsType: 'NUMBER' };
    case 'money': {
      if (!currency) return { pattern: '#,##0.00', sheetsType: 'NUMBER' };
      const { symbol, digits } = currencyStyle(currency);
      // A letter symbol ("CZK") reads better with a space before the amount.
      const gap = /\p{L}$/u.test(symbol) ? ' ' : '';
      return { pattern: `[$${symbol}]${gap}#,##0${decimals(digits)}`, sheetsType: 'CURRENCY' };
    }
    case 'percent':
      return { pattern: '0.00%', sheetsType: 'PERCENT' };
    case 'date':
      return { pattern: 'yyyy-mm-dd', sheetsType: 'DATE' };
    default:
      return undefined;
  }
}

/** Default XLSX column widths (characters) by type, widened to fit the header. */
export function defaultWidth(type: OutputColumnType, header: string): number {
  const base: Record<OutputColumnType, number> = {
    string: 28,
    url: 48,
    integer: 12,
    number: 14,
    money: 14,
    percent: 10,
    date: 12,
    boolean: 8,
  };
  return Math.min(80, Math.max(base[type], header.length + 2));
}
