import type { Destination, DestinationType, OutputFile } from './destination.js';

/** Keeps files in memory: for tests and for storage that must not touch disk. */
export class MemoryDestination implements Destination {
  readonly description = 'memory';
  files = new Map<string, OutputFile>();

  async writeAll(files: OutputFile[]): Promise<void> {
    this.files = new Map(files.map((f) => [f.name, { ...f }]));
  }

  async read(name: string): Promise<string | undefined> {
    return this.files.get(name)?.data;
  }
}

/** `type: memory`: nothing touches disk (the default `storage:`). */
export const memoryDestination: DestinationType<Record<never, never>> = {
  type: 'memory',
  fields: {},
  build: () => new MemoryDestination(),
  paths: () => [],
};
