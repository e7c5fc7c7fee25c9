import winston from 'winston';
import Transport from 'winston-transport';

/** The last warnings and errors, and counts of the errors the agent survived, for `cilium status`. */
export class RecentErrors extends Transport {
  readonly entries: Array<{ time: string; level: string; message: string }> = [];
  /** By kind: 'unhandled-rejection', 'uncaught-exception'. */
  readonly faults: Record<string, number> = {};

  constructor() {
    super({ level: 'warn' });
  }

  override log(info: { level: string; message: unknown }, next: () => void): void {
    this.entries.push({ time: new Date().toISOString(), level: info.level, message: String(info.message) });
    if (this.entries.length > 10) this.entries.shift();
    next();
  }

  fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }
}

/**
 * The agent never dies of one error: a rejection or exception nobody handled
 * (a timer, an event stream, a background task) is logged with its cause and
 * counted; the process goes on serving. Each such path should still handle
 * its own errors; this is the net under them.
 */
export function surviveStrayErrors(log: winston.Logger, recent: RecentErrors): void {
  const report = (kind: string, err: unknown) => {
    recent.fault(kind);
    log.error(`${kind} (the agent goes on): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  };
  process.on('unhandledRejection', (reason) => {
    report('unhandled-rejection', reason);
  });
  process.on('uncaughtException', (err) => {
    report('uncaught-exception', err);
  });
}

/** Human-readable lines to stderr; JSON lines to a file in the state dir for tools. */
export function createLogger(file: string, debug: boolean, recent: RecentErrors): winston.Logger {
  const level = debug ? 'debug' : 'info';
  return winston.createLogger({
    level,
    transports: [
      recent,
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
        format: winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level: lvl, message, ...meta }) => {
            const extra = Object.keys(meta).length ? ` ${JSON.stringify(meta)}` : '';
            return `${String(timestamp)} ${lvl.toUpperCase().padEnd(5)} ${String(message)}${extra}`;
          }),
        ),
      }),
      new winston.transports.File({
        filename: file,
        format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
        maxsize: 50 * 1024 * 1024,
        maxFiles: 3,
      }),
    ],
  });
}
