import { promises as fs } from 'fs';

/** Writes /proc/sys/<key with dots as slashes>; a file write, not a sysctl process. */
export async function setSysctl(key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  try {
    await fs.writeFile(path, value);
  } catch (err) {
    throw new Error(`cannot set ${key}=${value}: ${(err as Error).message}`);
  }
}

export async function sysctlExists(key: string): Promise<boolean> {
  return fs.access(`/proc/sys/${key.replace(/\./g, '/')}`).then(
    () => true,
    () => false,
  );
}
