import { failpoint } from '../failpoint/failpoint';
import { KVStore, getJSON, putJSON } from '../store/kvstore';
import { Rule, ruleLabels } from './rule';
import { validateRules } from './validate';

const KEY = 'policy/v1/repository';

interface Stored {
  revision: number;
  rules: Rule[];
}

/** A change whose datapath update failed: it was rolled back, the previous revision stays in force. */
export class PolicyNotApplied extends Error {
  constructor(
    /** "policy import", "policy delete" */
    readonly what: string,
    readonly revision: number,
    /** why the datapath refused it (and the rollback's own trouble, if any) */
    readonly why: string,
  ) {
    super(`${what} not applied, revision ${revision} stays in force: the datapath update failed: ${why}`);
  }
}

/**
 * The imported rules and their revision. Each import or delete is one store
 * write and one new revision; a rule imported with the same labels as an
 * existing one replaces it, so re-importing a file does not double it. Every
 * change is announced to the subscribers (the regenerator) before the call
 * returns; one that fails to apply it makes the change roll back.
 */
export class PolicyRepository {
  private readonly listeners: Array<() => void> = [];

  private constructor(
    private readonly store: KVStore,
    private state: Stored,
  ) {}

  static async load(store: KVStore): Promise<PolicyRepository> {
    return new PolicyRepository(store, (await getJSON<Stored>(store, KEY)) ?? { revision: 1, rules: [] });
  }

  get revision(): number {
    return this.state.revision;
  }

  get rules(): Rule[] {
    return this.state.rules;
  }

  /** Called, synchronously, after each change; throwing rolls the change back. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Validates everything first: on error nothing is imported. */
  async import(input: unknown): Promise<number> {
    const incoming = validateRules(input);
    const replaced = new Set(incoming.map((r) => JSON.stringify(ruleLabels(r))).filter((k) => k !== '[]'));
    const rules = [...this.state.rules.filter((r) => !replaced.has(JSON.stringify(ruleLabels(r)))), ...incoming];
    await this.commit(rules, 'policy import');
    return this.state.revision;
  }

  /** Deletes the rules carrying every given label ("key=value" matches any source); none given deletes all. */
  async delete(labels: string[]): Promise<{ revision: number; deleted: number }> {
    const keep = labels.length === 0 ? [] : this.state.rules.filter((r) => !hasLabels(r, labels));
    const deleted = this.state.rules.length - keep.length;
    if (deleted > 0) await this.commit(keep, 'policy delete');
    return { revision: this.state.revision, deleted };
  }

  select(labels: string[]): Rule[] {
    return labels.length === 0 ? this.state.rules : this.state.rules.filter((r) => hasLabels(r, labels));
  }

  /** Persists, announces; if the announcement fails, puts the previous revision back (a change not applied never happened). */
  private async commit(rules: Rule[], what: string): Promise<void> {
    const before = this.state;
    const next = { revision: before.revision + 1, rules };
    await this.store.batch([putJSON(KEY, next)]);
    this.state = next;
    failpoint('policy-persisted');
    try {
      this.announce();
    } catch (err) {
      await this.store.batch([putJSON(KEY, before)]);
      this.state = before;
      let again = '';
      try {
        this.announce();
      } catch (e) {
        again = `; rewriting the maps for revision ${before.revision} failed too: ${(e as Error).message}`;
      }
      throw new PolicyNotApplied(what, before.revision, `${(err as Error).message}${again}`);
    }
  }

  private announce(): void {
    for (const l of this.listeners) l();
  }
}

function hasLabels(r: Rule, wanted: string[]): boolean {
  const have = ruleLabels(r);
  return wanted.every((w) => (w.includes(':') ? have.includes(w) : have.some((h) => h.slice(h.indexOf(':') + 1) === w)));
}
