import assert from 'assert';
import { execFileSync } from 'child_process';
import { resolve } from 'path';

const LOGGER = resolve(__dirname, '../../agent/logger.js');

describe('the agent never dies of one stray error', () => {
  it('an unhandled rejection and an exception thrown in a timer are logged, counted, and the process goes on', () => {
    const script = `
      const winston = require('winston');
      const { RecentErrors, surviveStrayErrors } = require(${JSON.stringify(LOGGER)});
      const recent = new RecentErrors();
      const log = winston.createLogger({ transports: [recent] });
      surviveStrayErrors(log, recent);
      Promise.reject(new Error('store went away'));
      setTimeout(() => { throw new Error('timer blew up'); }, 10);
      setTimeout(() => {
        process.stdout.write(JSON.stringify({ faults: recent.faults, messages: recent.entries.map((e) => e.message.split('\\n')[0]) }));
      }, 100);
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { faults: Record<string, number>; messages: string[] };
    assert.deepStrictEqual(out.faults, { 'unhandled-rejection': 1, 'uncaught-exception': 1 });
    assert.ok(
      out.messages.some((m) => /unhandled-rejection \(the agent goes on\): Error: store went away/.test(m)),
      out.messages.join('\n'),
    );
    assert.ok(
      out.messages.some((m) => /uncaught-exception \(the agent goes on\): Error: timer blew up/.test(m)),
      out.messages.join('\n'),
    );
  });
});
