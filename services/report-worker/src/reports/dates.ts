import { dayNumber, dayString } from '@ppc/proto';

export { dayNumber, dayString };

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

/** 0 = Sunday … 6 = Saturday, of a day number (1970-01-01 was a Thursday). */
export function weekday(day: number): number {
  return (((day + 4) % 7) + 7) % 7;
}

export function weekdayName(day: number): string {
  return WEEKDAYS[weekday(day)]!;
}

/** Day numbers of `YYYY-MM-DD` codes in a text column, decoded once per distinct date. */
export function dayOfCode(value: (code: number) => string | null): (code: number) => number {
  const memo = new Map<number, number>();
  return (code) => {
    let d = memo.get(code);
    if (d === undefined) {
      const s = value(code);
      d = s === null ? Number.NaN : dayNumber(s);
      memo.set(code, d);
    }
    return d;
  };
}
