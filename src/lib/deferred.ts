/** A promise with its resolve/reject exposed, for bridging callbacks and events into `await`. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
  settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const d = { settled: false } as Deferred<T>;
  d.promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  d.resolve = (value) => {
    if (d.settled) return;
    d.settled = true;
    resolve(value);
  };
  d.reject = (reason) => {
    if (d.settled) return;
    d.settled = true;
    reject(reason);
  };
  // An unobserved rejection of a deferred nobody awaits is not a crash.
  d.promise.catch(() => {});
  return d;
}
