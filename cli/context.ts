import { apiCall } from './client';

export class UsageError extends Error {}

/** What every command gets: the agent's socket, the output mode, and its own arguments. */
export class Ctx {
  constructor(
    readonly socket: string,
    readonly json: boolean,
    readonly args: string[],
  ) {}

  api<T>(method: string, path: string, body?: unknown): Promise<T> {
    return apiCall<T>(this.socket, method, path, body);
  }

  /** JSON for scripts with -o json, the human form otherwise. */
  print(value: unknown, human: () => string): void {
    process.stdout.write(this.json ? `${JSON.stringify(value, null, 2)}\n` : human());
  }

  /** The value after a flag (-s X), all of them for repeatable flags. */
  flag(names: string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.args.length; i++) if (names.includes(this.args[i]!)) out.push(this.args[++i] ?? '');
    return out;
  }

  positional(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.args.length; i++) {
      const a = this.args[i]!;
      if (a.startsWith('-') && a !== '-') {
        if (!BOOLEAN_FLAGS.has(a)) i++;
      } else out.push(a);
    }
    return out;
  }

  has(flag: string): boolean {
    return this.args.includes(flag);
  }
}

const BOOLEAN_FLAGS = new Set(['--all', '--verbose', '-v', '--recursive']);

export type Command = (ctx: Ctx) => Promise<number>;
