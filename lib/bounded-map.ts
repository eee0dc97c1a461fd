/**
 * Deletes a Map's oldest entries (insertion order) until at most `max` remain: the bound of the
 * caches and indexes that only ever need their newest entries.
 */
export function dropOldestBeyond<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
