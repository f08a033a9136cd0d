import type { FileHandle } from 'node:fs/promises';

/**
 * The lines of a file, read in fixed-size chunks; a line longer than `maxLine` bytes is skipped
 * whole, never held: a corrupt or hostile file (600 MB without a newline) costs one chunk of
 * memory, where readline would build the whole line and fail with "Invalid string length".
 */
export async function* boundedLines(fh: FileHandle, maxLine: number, chunkSize = 64 * 1024): AsyncGenerator<string> {
  const buf = Buffer.alloc(chunkSize);
  let parts: Buffer[] = [];
  let partLen = 0;
  let skipping = false;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, chunkSize, null);
    if (bytesRead === 0) break;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      const end = nl < 0 || nl >= bytesRead ? bytesRead : nl;
      if (!skipping) {
        if (partLen + (end - start) > maxLine) {
          skipping = true;
          parts = [];
          partLen = 0;
        } else {
          parts.push(Buffer.from(buf.subarray(start, end)));
          partLen += end - start;
        }
      }
      if (end === bytesRead) break;
      // a whole line: hand it out (unless it was too long), start the next
      if (!skipping) yield Buffer.concat(parts, partLen).toString('utf8');
      parts = [];
      partLen = 0;
      skipping = false;
      start = end + 1;
    }
  }
  if (!skipping && partLen > 0) yield Buffer.concat(parts, partLen).toString('utf8');
}
