export {
  buildSheets,
  type Cell,
  type ReportSheet,
  type SheetColumn,
  type SheetColumnType,
  type SheetOptions,
  whereUsed,
} from './sheets.ts';
