/**
 * Edit distance between two words: insertions, deletions, substitutions and swaps of two
 * neighbouring letters each cost 1 (optimal string alignment), so `--role` is 1 from `--roles`
 * and `--rlose` 1 from `--roles`.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidates `word` was probably meant to be: the closest ones by edit distance, at most 1
 * for words of up to 4 letters and 2 beyond (a third of a short word is too much to guess from),
 * or those it is the start of (`--max-session` for `--max-session-ttl`) or that start it.
 *
 * @example suggest('role', ['roles', 'logins']) // ['roles']
 */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const w = word.trim().toLowerCase();
  if (!w) return [];
  const limit = w.length <= 4 ? 1 : 2;
  let best = Infinity;
  let found: string[] = [];
  for (const c of new Set(candidates)) {
    const lc = c.toLowerCase();
    let dist = editDistance(w, lc);
    // a prefix counts as one edit away, however much is left out
    if (dist > limit && w.length >= 3 && (lc.startsWith(w) || w.startsWith(lc))) dist = limit;
    if (dist > limit || dist > best) continue;
    if (dist < best) [best, found] = [dist, []];
    found.push(c);
  }
  return found;
}

/** ` (did you mean X?)`, ` (did you mean X or Y?)`, or nothing. */
export function didYouMean(word: string, candidates: readonly string[], show = (s: string) => s): string {
  const s = suggest(word, candidates).map(show);
  if (s.length === 0) return '';
  return ` (did you mean ${s.length === 1 ? s[0] : `${s.slice(0, -1).join(', ')} or ${s[s.length - 1]}`}?)`;
}
