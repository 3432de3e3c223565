/**
 * V8 flags each service runs with (`npm start` passes them; images set them through NODE_OPTIONS). The workers
 * hold many small, short-lived objects per row or request; a smaller young generation keeps their peak RSS down
 * at the same speed: the URL checker ~160 MB instead of ~230 MB (`npm run bench -- urlcheck`), a report worker
 * streaming a million rows ~125 MB instead of ~145 MB (`npm run bench -- ads`, whose reader runs with these).
 */
export const SERVICE_NODE_FLAGS: Readonly<Record<string, readonly string[]>> = {
  'report-worker': ['--max-semi-space-size=8'],
  'url-checker': ['--max-semi-space-size=16'],
};
