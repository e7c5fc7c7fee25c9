import { readFileSync } from 'fs';
import { join } from 'path';

/** The one version of agent and CLI: package.json's (dist/api/ sits two levels below it). */
export const VERSION: string = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
