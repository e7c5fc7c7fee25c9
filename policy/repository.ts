import { KVStore, getJSON, putJSON } from '../store/kvstore';
import { Rule, ruleLabels } from './rule';
import { validateRules } from './validate';

const KEY = 'policy/v1/repository';

interface Stored {
  revision: number;
  rules: Rule[];
}

/**
 * The imported rules and their revision. Each import or delete is one store
 * write and one new revision; a rule imported with the same labels as an
 * existing one replaces it, so re-importing a file does not double it.
 */
export class PolicyRepository {
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

  /** Validates everything first: on error nothing is imported. */
  async import(input: unknown): Promise<number> {
    const incoming = validateRules(input);
    const replaced = new Set(incoming.map((r) => JSON.stringify(ruleLabels(r))).filter((k) => k !== '[]'));
    const rules = [...this.state.rules.filter((r) => !replaced.has(JSON.stringify(ruleLabels(r)))), ...incoming];
    await this.commit(rules);
    return this.state.revision;
  }

  /** Deletes the rules carrying every given label ("key=value" matches any source); none given deletes all. */
  async delete(labels: string[]): Promise<{ revision: number; deleted: number }> {
    const keep = labels.length === 0 ? [] : this.state.rules.filter((r) => !hasLabels(r, labels));
    const deleted = this.state.rules.length - keep.length;
    if (deleted > 0) await this.commit(keep);
    return { revision: this.state.revision, deleted };
  }

  /** The repository as it is now, for restore(). */
  snapshot(): Readonly<Stored> {
    return this.state;
  }

  /** Puts back a snapshot, revision included: a change the datapath could not apply never happened. */
  async restore(s: Readonly<Stored>): Promise<void> {
    await this.store.batch([putJSON(KEY, s)]);
    this.state = { revision: s.revision, rules: s.rules };
  }

  select(labels: string[]): Rule[] {
    return labels.length === 0 ? this.state.rules : this.state.rules.filter((r) => hasLabels(r, labels));
  }

  private async commit(rules: Rule[]): Promise<void> {
    const next = { revision: this.state.revision + 1, rules };
    await this.store.batch([putJSON(KEY, next)]);
    this.state = next;
  }
}

function hasLabels(r: Rule, wanted: string[]): boolean {
  const have = ruleLabels(r);
  return wanted.every((w) => (w.includes(':') ? have.includes(w) : have.some((h) => h.slice(h.indexOf(':') + 1) === w)));
}
