import { join } from 'path';
import { USAGE, parseConfig } from './config';
import { startDaemon } from './daemon';
import { RecentErrors, createLogger, surviveStrayErrors } from './logger';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = parseConfig(process.argv.slice(2));
  } catch (err) {
    // The cause alone: a page of usage would bury it (and push it out of a log's tail).
    process.stderr.write(`cilium-agent: ${(err as Error).message}\n(cilium-agent --help lists the flags)\n`);
    process.exit(2);
  }
  if (cfg === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('cilium-agent: must run as root (it creates network devices and serves /run/docker/plugins)\n');
    process.exit(1);
  }
  // Everything the agent creates (state dir, store, log, sockets) is root-only whatever umask it inherited.
  process.umask(0o077);
  const recent = new RecentErrors();
  const log = createLogger(join(cfg.stateDir, 'cilium-agent.log'), cfg.debug, recent);
  surviveStrayErrors(log, recent);
  let daemon;
  try {
    daemon = await startDaemon(cfg, log, recent);
  } catch (err) {
    log.error(`cannot start: ${(err as Error).message}`);
    await new Promise((r) => setTimeout(r, 100)); // let winston flush the file transport
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal} received, shutting down`);
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(`unclean shutdown: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => {
    stop('SIGTERM');
  });
  process.on('SIGINT', () => {
    stop('SIGINT');
  });
}

void main();
