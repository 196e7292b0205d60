// A garbage collector for memory-bound tests (fuzzing): heap figures mean something only after
// a full collection.
import v8 from 'node:v8';
import vm from 'node:vm';

/** A garbage collector, when one can be had (flag given, or switched on at run time). */
export function collector(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}
