import winston from 'winston';

/** Human-readable lines to stderr; JSON lines to a file in the state dir for tools. */
export function createLogger(file: string, debug: boolean): winston.Logger {
  const level = debug ? 'debug' : 'info';
  return winston.createLogger({
    level,
    transports: [
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
