// Child process of `npm run bench -- ads`: runs the demo ad platform on a free port and reports where, over IPC.
import { startDemoPlatform } from '@ppc/lib/ads';
import { freePort } from '@ppc/lib/infra';

const platform = await startDemoPlatform({
  port: await freePort(),
  seed: Number(process.argv[2] ?? 1),
  today: '2025-06-15',
});
process.send?.({
  url: platform.url,
  huge: platform.world.byKey.get('huge')!.id,
  agency: platform.world.byKey.get('agency')!.id,
});
process.on('disconnect', () => {
  platform.close().finally(() => process.exit(0));
});
