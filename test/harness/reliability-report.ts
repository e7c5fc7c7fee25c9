import { writeFileSync } from 'fs';
import { cpus } from 'os';
import { resolve } from 'path';

const FILE = resolve(__dirname, '../../../bench/RELIABILITY.md');
const sections = new Map<string, string[]>();

/**
 * Records one suite's figures and rewrites bench/RELIABILITY.md with every
 * section recorded by this run (a section from an earlier run never lingers).
 */
export function recordReliability(section: string, lines: string[]): void {
  sections.set(section, lines);
  const body = [...sections].map(([title, ls]) => `## ${title}\n\n${ls.map((l) => `- ${l}`).join('\n')}\n`).join('\n');
  writeFileSync(
    FILE,
    `# Reliability figures\n\nWritten by the test suite (\`npm test\`), ${new Date().toISOString()}, on ${cpus().length} cores. Every figure is measured by a test that fails if a leak, duplicate or crash is found.\n\n${body}`,
  );
}
